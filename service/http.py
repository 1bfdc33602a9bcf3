"""uvicorn's httptools protocol with the connection hygiene it lacks, so that the service needs
no proxy in front: a deadline for a request's head (408), limits on its size and on the number
of its headers (431), a cap on open connections with the health probes' own port (503), a
deadline for discarding a refused body, and a write timeout: a response the client stops
reading is dropped. docs/server.md says why this subclass, and not another server, measured.

Every request is held to the limits alone, pipelined or not: the parser's callbacks say where
each request's head begins and ends, so the bytes of a body, refused or not, are never counted
as a head, and no refusal overtakes the answers to the requests before it on the connection.

What it relies on of uvicorn (tests/e2e/test_http11.py holds it to it): httptools' callbacks
(on_message_begin, on_header, on_headers_complete, on_message_complete), uvicorn's
on_response_complete, send_400_response, `app`, `cycle`, `pipeline`, `connections` and
`server_state`, and asyncio's protocol methods. uvicorn itself brings pipelining, the keep-alive
idle timeout and the graceful shutdown; the body's timeouts and minimum rate are the app's
(service.api.body). Everything is a LOSS_SERVICE_* setting; `serve` passes this class to uvicorn
as its `http` protocol (service.server).
"""

import asyncio
import logging
import resource
import secrets
import weakref
from functools import cache
from typing import TYPE_CHECKING, Any

import httptools
import orjson
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.config import Settings
from service.errors import ServiceError
from service.probes import refuse_beyond_probes

if TYPE_CHECKING:  # at run time it comes in the app's state: prometheus_client is imported
    from service.metrics import Metrics  # only once serve has chosen its folder

RESERVE = 32
"""Connections beyond max_connections kept for the health probes on the service's own port,
and the most connections the probe port takes."""
END_OF_HEAD = b"\r\n\r\n"
IDLE, HEAD, BODY = range(3)
"""Where the parser is: between requests, in a request's head, in its body."""
log = logging.getLogger("loss_service.http")


@cache
def _environment() -> Settings:
    return Settings()


@cache
def connection_cap(configured: int) -> int:
    """max_connections, lowered where the process's file descriptors would run out first:
    both reserves and a few descriptors of the process's own must fit under the limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - 2 * RESERVE - 32))


_probe_connections: "weakref.WeakKeyDictionary[ServerState, set[GuardedHttpTools]]" = (
    weakref.WeakKeyDictionary()
)
"""Each server's connections on the probe port (uvicorn counts all of them together)."""


class GuardedHttpTools(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The app's own settings and metrics (service.app's lifespan state), else the
        # environment's settings, and refusals go uncounted.
        settings = self.app_state.get("settings") or _environment()
        self.metrics: Metrics | None = self.app_state.get("metrics")
        self.log_format = settings.log_format
        self.header_timeout = settings.header_timeout
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.max_connections = connection_cap(settings.max_connections)
        self.write_timeout = settings.write_timeout
        self.probe_port = settings.probe_port
        self._probes = _probe_connections.setdefault(self.server_state, set())
        self._probe = False
        self._phase = IDLE
        self._head_bytes = 0
        self._headers = 0
        self._tail = b""
        self._deadline: asyncio.TimerHandle | None = None
        self._since = 0.0
        """When the deadline was armed: a refused head's duration counts from there."""
        self._stalled: asyncio.TimerHandle | None = None
        self._refused = False
        self._refusal: bytes | None = None
        """A refusal written once the answers to the requests before it are."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._probe = _local_port(transport) == self.probe_port
        if self._probe:
            self._probes.add(self)
            full = len(self._probes) > RESERVE
        else:
            full = len(self.connections) - len(self._probes) > self.max_connections + RESERVE
        if full:
            self.transport.close()  # not even room for a probe: the file descriptor goes back
            return
        self._await(IDLE)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase != BODY:  # the bytes up to the end of the head are the head's
            seen = self._tail + data
            end = seen.find(END_OF_HEAD)
            self._head_bytes += len(data) if end < 0 else end + len(END_OF_HEAD) - len(self._tail)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"the request's headers exceed {self.max_header_bytes} bytes")
                return
        super().data_received(data)
        # A head that goes on in the next read may end across the two.
        self._tail = data[-3:] if self._phase == HEAD else b""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._headers = HEAD, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._headers += 1
        if self._headers > self.max_headers:
            self._refuse(431, f"the request has more than {self.max_headers} headers")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._phase, self._head_bytes = BODY, 0
        self._cancel_deadline()
        path = httptools.parse_url(self.url).path
        if self._probe:
            refusal = refuse_beyond_probes(path)
        elif len(self.connections) - len(self._probes) > self.max_connections:
            refusal = refuse_beyond_probes(
                path, f"this worker has more than {self.max_connections} connections"
            )
        else:
            refusal = None
        if refusal is None:
            super().on_headers_complete()
            return
        # Answered in its turn, after the requests before it on the connection, counted and
        # logged as the app's answers are.
        answer: ASGIApp = refusal
        if self.metrics is not None:
            answer = self.metrics.observed(refusal, self.log_format)
        app, self.app = self.app, answer
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._phase = IDLE
        if self._idle():  # a refused body has been discarded: the next head has its deadline
            self._await(IDLE)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or not self._idle():
            return
        if self._refusal is not None:
            self._close_with(self._refusal)
        else:
            self._await(self._phase)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refuses, as a problem document in its turn."""
        self._refuse(
            400,
            "the request is not valid HTTP/1.1: its request line, a header or its"
            " framing is malformed",
        )

    def pause_writing(self) -> None:
        """The socket's buffer is full: the client has write_timeout to read on."""
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.write_timeout, self._unread)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._stalled is not None:
            self._stalled.cancel()
        self._probes.discard(self)
        super().connection_lost(exc)

    def _idle(self) -> bool:
        """Whether every request received so far has been answered."""
        return not self.pipeline and (self.cycle is None or self.cycle.response_complete)

    def _await(self, phase: int) -> None:
        """Arms the deadline for what comes next: a head (IDLE or HEAD), or the rest of a body
        the app refused before reading it (BODY), which the parser discards."""
        self._cancel_deadline()
        late = self._head_late if phase != BODY else self._discard_late
        self._since = self.loop.time()
        self._deadline = self.loop.call_later(self.header_timeout, late)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_late(self) -> None:
        if not self.transport.is_closing() and self._phase != BODY and self._idle():
            self._refuse(408, f"the request's headers took longer than {self.header_timeout} s")

    def _discard_late(self) -> None:
        """The refused body did not end within header_timeout of its answer: the answer has
        gone out, so the connection just closes."""
        if not self.transport.is_closing() and self._phase == BODY and self._idle():
            log.info("a refused body went on past header_timeout: the connection is closed")
            self.transport.close()

    def _unread(self) -> None:
        """Drops the connection and what waits in its buffer; the response's sends then end,
        and with them the memory the response held."""
        log.info("a response was not read within write_timeout (%s s): dropped", self.write_timeout)
        self.transport.abort()

    def _refuse(self, status: int, detail: str) -> None:
        """A problem document with `status`, then the connection closes; nothing more is read.
        It waits for the answers to the requests before it on the connection; the first
        refusal is the one given (the parser may go on to find faults in the bytes after)."""
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        body = _problem(status, detail)
        refusal = _response(status, body, self._count(status, len(body)))
        if self._idle():
            self._close_with(refusal)
        else:
            self._refusal = refusal

    def _count(self, status: int, size: int) -> str:
        """Counts and logs a refusal the app never sees; its request id."""
        if self.metrics is None:
            return secrets.token_hex(16)
        seconds = self.loop.time() - self._since
        return self.metrics.refused(status, seconds, size, self.log_format)

    def _close_with(self, refusal: bytes) -> None:
        self.transport.write(refusal)
        self.transport.close()


def _local_port(transport: asyncio.BaseTransport) -> int | None:
    address = transport.get_extra_info("sockname")
    return address[1] if isinstance(address, tuple) else None


def _problem(status: int, detail: str) -> bytes:
    """A problem document."""
    error = ServiceError(detail)
    error.status = status
    return orjson.dumps(error.problem())


def _response(status: int, body: bytes, request_id: str) -> bytes:
    """A whole response with Connection: close."""
    head = [
        STATUS_LINE[status],
        b"content-type: application/problem+json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"x-request-id: " + request_id.encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body
