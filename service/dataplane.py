"""The data plane: a decoded request -> a computation slot -> the engine -> an encoded result.

Every wire adapter (v1 JSON, /v2 Open Inference Protocol) calls it with two functions of its
own: `decode`, which turns its body into a Request, and `encode`, which turns the Result into
its answer. Both run where the computation runs, in the slot, so that a large body is parsed
off the event loop. The data plane knows nothing of HTTP, JSON or the binary layout.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread

from service.config import Settings
from service.engine import Engine, Result
from service.errors import Unavailable
from service.kinds import Kind
from service.losses.spec import Arrays, Params, Spec

T = TypeVar("T")
INLINE_BYTES = 1 << 16
"""Requests up to this size are computed on the event loop: their work, a fraction of a
millisecond, costs less than the hop to a worker thread."""


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request: its tensors as numpy arrays, its parameters and its options."""

    arrays: Arrays
    params: Params
    options: Any


class DataPlane:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.max_concurrency = settings.max_concurrency
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._queue_timeout = settings.queue_timeout

    async def run(
        self,
        kind: Kind,
        spec: Spec,
        decode: Callable[[], Request],
        encode: Callable[[Request, Result], T],
        *,
        size: int,
    ) -> T:
        """encode(request, result) of decode(), in a slot (see place)."""
        return await self.place(partial(self.execute, kind, spec, decode, encode), size=size)

    async def place(self, work: Callable[[], T], *, size: int) -> T:
        """work() in a slot; on the event loop when `size` (the body's bytes) is small, else
        in a worker thread. A batch places all its items as one work."""
        async with self.slot():
            if size <= INLINE_BYTES:
                return work()
            return await anyio.to_thread.run_sync(work)

    def execute(
        self,
        kind: Kind,
        spec: Spec,
        decode: Callable[[], Request],
        encode: Callable[[Request, Result], T],
    ) -> T:
        """The same, here and now: no slot, no thread."""
        request = decode()
        result = kind.run(self.engine, spec, request.arrays, request.params, request.options)
        return encode(request, result)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Holds one of max_concurrency computation slots; 503 after waiting queue_timeout."""
        try:
            if self._slots.locked():  # only a wait needs wait_for's task
                await asyncio.wait_for(self._slots.acquire(), self._queue_timeout)
            else:
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable(
                f"all {self.max_concurrency} computation slots are busy; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        try:
            yield
        finally:
            self._slots.release()
