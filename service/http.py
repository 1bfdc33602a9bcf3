"""uvicorn's httptools protocol with the connection hygiene it lacks, so that the service needs
no proxy in front: a deadline for a request's headers (408), limits on their size and count
(431), a cap on open connections that keeps room for the health probes (503), and a write
timeout: a response the client stops reading is dropped.

uvicorn itself brings the keep-alive idle timeout and the graceful-shutdown timeout; the body's
timeouts and minimum rate are the app's (service.api.body). Everything is a LOSS_SERVICE_*
setting; `serve` passes this class to uvicorn as its `http` protocol.
"""

import asyncio
import logging
import resource
from functools import cache
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.config import Settings

HEALTH = frozenset({b"/healthz", b"/readyz", b"/v2/health/live", b"/v2/health/ready"})
RESERVE = 32
"""Connections beyond max_connections that are kept for the health probes."""
END_OF_HEADERS = b"\r\n\r\n"
log = logging.getLogger("loss_service.http")


@cache
def _settings() -> Settings:
    return Settings()


@cache
def connection_cap(configured: int) -> int:
    """max_connections, lowered where the process's file descriptors would run out first:
    the probes' reserve and a few descriptors of the process's own must fit under the limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - RESERVE - 32))


class GuardedHttpTools(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self.header_timeout = settings.header_timeout
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.max_connections = connection_cap(settings.max_connections)
        self.write_timeout = settings.write_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._header_count = 0
        self._reading_headers = True
        self._refused = False
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.max_connections + RESERVE:
            self.transport.close()  # not even room for a probe: the file descriptor goes back
            return
        self._await_headers()

    def _await_headers(self) -> None:
        self._reading_headers, self._header_bytes, self._header_count = True, 0, 0
        self._tail = b""
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_late(self) -> None:
        if self._reading_headers and not self.transport.is_closing():
            self._refuse(408, f"the request's headers took longer than {self.header_timeout} s")

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_headers:
            seen = self._tail + data
            end = seen.find(END_OF_HEADERS)
            self._header_bytes += (
                len(data) if end < 0 else end + len(END_OF_HEADERS) - len(self._tail)
            )
            self._tail = seen[-3:]
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, f"the request's headers exceed {self.max_header_bytes} bytes")
                return
        super().data_received(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refuse(431, f"the request has more than {self.max_headers} headers")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._reading_headers = False
        if self._deadline is not None:
            self._deadline.cancel()
        path = httptools.parse_url(self.url).path
        if len(self.connections) > self.max_connections and path not in HEALTH:
            self._refuse(503, f"this worker has more than {self.max_connections} connections")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_headers()  # the next request on this connection has the same deadline

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

    def _unread(self) -> None:
        """Drops the connection and what waits in its buffer; the response's sends then end,
        and with them the memory the response held."""
        log.info("a response was not read within write_timeout (%s s): dropped", self.write_timeout)
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._deadline, self._stalled):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def _refuse(self, status: int, detail: str) -> None:
        """A problem document with `status`, then the connection closes."""
        self._refused = True
        body = (
            b'{"type":"about:blank","title":"'
            + STATUS_LINE[status][13:-2]
            + b'","status":'
            + str(status).encode()
            + b',"detail":"'
            + detail.encode()
            + b'"}'
        )
        head = [
            STATUS_LINE[status],
            b"content-type: application/problem+json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
