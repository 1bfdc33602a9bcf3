"""Memory that large requests free goes back to the system.

glibc keeps what a large request frees in its heaps: in the measurement in docs/operations.md,
eight rounds of four 62 MB requests took an idle worker from 259 MB to about 1 GB, and there it
stayed. malloc_trim(0) hands the free pages back (3 to 25 ms, in a worker thread). It runs once
no large request has been in flight for a second: trimming after every one made the next one
fault its pages in again (a 1024x1000 binary gradient took 22 ms instead of 11), and under
load the memory is used again anyway; it is idle memory that must go back. Fixed malloc thresholds
(MALLOC_TRIM_THRESHOLD_) held memory as well but slowed every large request by about a third;
jemalloc did as well as this, but needs LD_PRELOAD and a library outside Python.
"""

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

IDLE = 1.0
"""Seconds without a large request in flight before freed memory goes back."""
log = logging.getLogger("loss_service.memory")


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        log.info("this C library has no malloc_trim: freed memory stays with the process")
        return None
    return trim


class GiveBack:
    """A pure ASGI middleware: counts the requests in flight that declare a body of at least
    `threshold` bytes; once none has been in flight for IDLE seconds, trims the heaps in a
    thread."""

    def __init__(self, app: ASGIApp, threshold: int) -> None:
        self.app = app
        self.threshold = threshold
        self.trim = malloc_trim() if threshold else None
        self.in_flight = 0
        self._due: asyncio.TimerHandle | None = None
        self._trimming: asyncio.Future[int] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trim is None or scope["type"] != "http" or not self._large(scope):
            await self.app(scope, receive, send)
            return
        if self._due is not None:
            self._due.cancel()
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._due = asyncio.get_running_loop().call_later(IDLE, self._give_back)

    def _large(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) >= self.threshold
        return False

    def _give_back(self) -> None:
        if self.trim is not None and (self._trimming is None or self._trimming.done()):
            self._trimming = asyncio.get_running_loop().run_in_executor(None, self.trim, 0)
