"""Reading a request body: media type, transfer coding and encoding first, then at most
max_body_bytes (after inflating) while it streams, at a minimum rate, within the worker's
budget of bytes being received."""

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from service.config import Settings
from service.dataplane import Gone
from service.errors import (
    BadRequest,
    PayloadTooLarge,
    RequestTimeout,
    Unavailable,
    Unimplemented,
    UnsupportedMediaType,
)

ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
"""Content-Encoding -> zlib's wbits: gzip's header, or deflate's zlib wrapper (RFC 9110)."""
INFLATE_ON_LOOP = 1 << 18
"""Bytes a chunk may inflate to on the event loop (about 0.1 ms); what it inflates to beyond
that is inflated in a worker thread (zlib lets go of the GIL), so that a body that inflates a
thousandfold holds up no other request."""
INFLATING = 2
"""Bodies one worker inflates in threads at once; the others wait their turn. Sixteen bombs at
once: refused in 1.1 s with /healthz at 2 ms (p50) meanwhile; unbounded, 1.9 s and 7 ms."""


def is_json(content_type: str) -> bool:
    """application/json or application/<anything>+json, with any parameters."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


_BODY_HEADERS = {
    b"content-type": 0,
    b"content-encoding": 1,
    b"content-length": 2,
    b"transfer-encoding": 3,
}


def _body_headers(request: Request) -> tuple[str, str, str]:
    """Content-Type ("" if none), Content-Encoding ("identity") and Content-Length ("") in one
    pass over the headers (ASGI lowercases their names), the first of each: three lookups
    through Starlette's Headers took 5 us. Transfer-Encoding must be chunked alone."""
    found: list[str | None] = [None, None, None, None]
    for name, value in request.scope["headers"]:
        index = _BODY_HEADERS.get(name)
        if index is not None and found[index] is None:
            found[index] = value.decode("latin-1")
    content_type, encoding, length, coding = found
    if coding is not None:
        _check_coding(coding)
    return content_type or "", encoding or "identity", length or ""


def _check_coding(header: str) -> None:
    """RFC 9112: a body whose last transfer coding is not chunked has no length (400); one
    with other codings before it, which this server does not undo, is a 501. Both close."""
    codings = [coding.strip().lower() for coding in header.split(",")]
    if codings[-1] != "chunked":
        raise BadRequest(
            f"Transfer-Encoding '{header}' does not end in chunked: the body has no length",
            headers={"Connection": "close"},
        )
    if len(codings) > 1:
        raise Unimplemented(
            f"Transfer-Encoding '{header}' is not supported: send the body chunked alone (or"
            " with a Content-Length), compressed with Content-Encoding if you like",
            headers={"Connection": "close"},
        )


async def read_json_body(request: Request, settings: Settings) -> bytearray:
    """The whole body, or 415 for a non-JSON content type (see read_body)."""
    content_type, encoding, length = _body_headers(request)
    if not is_json(content_type):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not '{content_type}'"
            if content_type
            else "Content-Type must be application/json; the request has none"
        )
    return await _read(request, settings, encoding, length)


@dataclass(slots=True)
class Receiving:
    """The bytes of the bodies this worker is receiving at once, against max_receiving_bytes:
    what bounds the memory that stalled uploads hold; and the threads that inflate them."""

    limit: int
    held: int = 0
    inflating: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(INFLATING)
    )


async def read_body(request: Request, settings: Settings) -> bytearray:
    """The whole body, inflated (gzip, deflate), or: 415 for another Content-Encoding; 413
    past max_body_bytes (the inflated size counts); 400 for a body that does not inflate; 408
    when it stalls for body_timeout or, past its first body_timeout, arrives slower than
    min_body_rate; 503 when the worker is receiving max_receiving_bytes already; Gone when the
    client disconnects first.

    The limits hold while the body streams in, so an oversized upload is never buffered whole.
    An upload that the server's shutdown cuts (past shutdown_timeout) is a 503 that closes.
    """
    _, encoding, length = _body_headers(request)
    return await _read(request, settings, encoding, length)


async def _read(request: Request, settings: Settings, encoding: str, declared: str) -> bytearray:
    """read_body, with its headers read already."""
    encoding = encoding.strip().lower()
    if encoding not in (*ENCODINGS, "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding '{encoding}' is not supported; send gzip, deflate or identity"
        )
    limit = settings.max_body_bytes
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    inflate = zlib.decompressobj(ENCODINGS[encoding]) if encoding in ENCODINGS else None
    receiving: Receiving = request.app.state.receiving
    expected = int(declared) if declared.isdigit() and inflate is None else None
    body = Buffer(expected)
    try:
        with _Pace(settings) as pace:
            more = True
            while more:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise Gone
                chunk, more = message.get("body", b""), message.get("more_body", False)
                pace.received(len(chunk))
                parts = [chunk]
                if inflate is not None:
                    held = body.filled
                    parts = await _inflate(inflate, chunk, held, limit, receiving, encoding)
                size = sum(map(len, parts))
                if body.filled + size > limit:
                    raise _too_large(limit)
                if receiving.held + size > receiving.limit:
                    raise Unavailable(
                        f"this worker is receiving max_receiving_bytes ({receiving.limit}) of"
                        " bodies already; retry shortly",
                        headers={"Retry-After": "1"},
                    )
                receiving.held += size
                for part in parts:
                    body.add(part)
        if inflate is not None and not inflate.eof:
            raise BadRequest(f"the body ends before its {encoding} stream does")
    finally:
        receiving.held -= body.filled
    return body.whole()


class Buffer:
    """A body as it arrives, in one buffer. Up to GROWN_BY_APPENDING bytes it is appended to,
    which is cheapest alone; past that its capacity grows GROWTH-fold (up to the
    Content-Length, where it is known), so each byte is copied about once more as it grows.
    A bytearray appended to all the way grows by an eighth at a time, and beside other
    uploads in the heap each growth moves it: with eight clients sending 16 MB bodies that
    was some 130 MB of copying per body, the event loop's largest cost. A list of chunks
    joined at the end would hold the body twice."""

    def __init__(self, expected: int | None) -> None:
        self.data = bytearray()
        self.filled = 0
        self.expected = expected

    def add(self, part: bytes) -> None:
        end = self.filled + len(part)
        if end > len(self.data):
            if end <= GROWN_BY_APPENDING:  # the buffer is full here: filled == len(data)
                self.data += part
                self.filled = end
                return
            capacity = max(end, GROWTH * len(self.data))
            if self.expected is not None and end <= self.expected:
                capacity = min(capacity, self.expected)
            grown = bytearray(capacity)
            memoryview(grown)[: self.filled] = memoryview(self.data)[: self.filled]
            self.data = grown
        self.data[self.filled : end] = part
        self.filled = end

    def whole(self) -> bytearray:
        """The body, its spare capacity let go."""
        del self.data[self.filled :]
        return self.data


GROWN_BY_APPENDING = 1 << 20
GROWTH = 4
"""How much a buffer's capacity grows past GROWN_BY_APPENDING: each allocation is zeroed, so
fewer and larger ones cost less (a 16 MB body: 4 and 16 MB, 20 MB zeroed and 5 MB copied,
where doubling zeroed 30 MB and copied 15 MB), while a body not yet sent holds at most four
times what has arrived."""


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body exceeds max_body_bytes ({limit} bytes)")


async def _inflate(
    inflate: "zlib._Decompress",
    chunk: bytes,
    held: int,
    limit: int,
    receiving: Receiving,
    encoding: str,
) -> list[bytes]:
    """What the chunk inflates to, in parts, or a 413 as soon as the body (`held` bytes so
    far) passes `limit`: a 1 MB body that inflates to 1 GB is refused once the limit is
    passed, not a gigabyte later. Past INFLATE_ON_LOOP bytes the chunk inflates in a thread,
    in parts of that size, so that no long copy holds the GIL."""
    room = limit - held
    try:
        parts = [inflate.decompress(chunk, min(room + 1, INFLATE_ON_LOOP))]
        if inflate.unconsumed_tail and len(parts[0]) <= room:
            rest = room - len(parts[0])
            limiter = receiving.inflating
            parts += await anyio.to_thread.run_sync(_inflate_rest, inflate, rest, limiter=limiter)
    except zlib.error as error:
        raise BadRequest(f"the body is not valid {encoding}: {error}") from None
    if inflate.unconsumed_tail or sum(map(len, parts)) > room:
        raise _too_large(limit)
    return parts


def _inflate_rest(inflate: "zlib._Decompress", room: int) -> list[bytes]:
    """The rest of the chunk inflated, INFLATE_ON_LOOP bytes at a time, until it ends or passes
    `room` bytes."""
    parts: list[bytes] = []
    while inflate.unconsumed_tail and room >= 0:
        parts.append(inflate.decompress(inflate.unconsumed_tail, INFLATE_ON_LOOP))
        room -= len(parts[-1])
    return parts


class _Pace:
    """Holds a body to arriving: 408 when no message comes for body_timeout or, past its first
    body_timeout, the body averages less than min_body_rate. One timer serves the whole body,
    re-armed from the last message when it fires; a timer per message cost 16 us each, 5 ms
    of a 20 MiB body."""

    def __init__(self, settings: Settings) -> None:
        self.timeout, self.rate = settings.body_timeout, settings.min_body_rate
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a body is read in a task")
        self.task = task
        self.start = self.last = self.loop.time()
        self.size = 0
        self.stalled = False

    def __enter__(self) -> "_Pace":
        self.cancelling = self.task.cancelling()
        self.timer = self.loop.call_at(self.last + self.timeout, self._due)
        return self

    def received(self, size: int) -> None:
        self.last = self.loop.time()
        self.size += size
        elapsed = self.last - self.start
        if elapsed > self.timeout and self.size / elapsed < self.rate:
            raise RequestTimeout(
                f"the body arrives at {self.size / elapsed:.0f} bytes/s, slower than"
                f" min_body_rate ({self.rate} bytes/s)",
                headers={"Connection": "close"},
            )

    def _due(self) -> None:
        due = self.last + self.timeout
        if self.loop.time() < due:  # a message came since: wait body_timeout from it
            self.timer = self.loop.call_at(due, self._due)
        else:
            self.stalled = True
            self.task.cancel()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.timer.cancel()
        if kind is not asyncio.CancelledError:
            return
        # As asyncio.timeout does: a cancellation of ours is the 408. Any other is the server's
        # at shutdown, when the drain has outlasted shutdown_timeout: the client can retry.
        ours = self.stalled and self.task.cancelling() == self.cancelling + 1
        while self.task.cancelling() > self.cancelling:
            self.task.uncancel()
        if ours:
            raise RequestTimeout(
                f"no byte of the body came for body_timeout ({self.timeout} s)",
                headers={"Connection": "close"},
            ) from None
        raise Unavailable(
            "the server is shutting down and the body was not all received; retry",
            headers={"Connection": "close", "Retry-After": "1"},
        ) from None


class Body:
    """A request body handed to the code that parses it, which takes it: the endpoint keeps
    no reference, so the body is freed as soon as its tensors have been read."""

    def __init__(self, data: bytearray) -> None:
        self._data: bytearray | None = data
        self._size = len(data)

    def __len__(self) -> int:
        return self._size

    def take(self) -> bytearray:
        data, self._data = self._data, None
        if data is None:
            raise RuntimeError("the body was taken already")
        return data


CLIENT_GONE = 499
"""The status logged (and counted) for a request whose client left first; nobody reads it."""


def gone() -> Response:
    """The answer to a request whose client left (Gone): logged and counted, never read."""
    return Response(status_code=CLIENT_GONE)


def client_left(request: Request) -> Callable[[], Awaitable[None]]:
    """The data plane's `left` for an HTTP request: returns when the ASGI server says the
    client disconnected (the body is read by then, so nothing else is received)."""

    async def left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return left
