"""The data plane: a decoded request -> a computation slot -> validation and the work budget ->
the engine -> an encoded result.

Every wire adapter (v1 JSON, /v1/batch, /v2 Open Inference Protocol) calls it with two
functions of its own: `decode`, which turns its body into a Request, and `encode`, which turns
the Result into its answer. Both run in the slot. Where they run is decided by what they
cost: decoding by the body's size, computing and encoding by the request's estimated work,
so that the event loop only parses small bodies and routes. A request that waits (for a slot
or a thread) is dropped when its client leaves, which the adapter tells by `left`. The data
plane knows nothing of HTTP, JSON or the binary layout.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread

from service.config import Settings
from service.engine import Engine, Result
from service.errors import PayloadTooLarge, Unavailable
from service.kinds import Kind
from service.spec import WORK_BYTES, WORK_SECONDS, Arrays, Cost, Params, Spec

T = TypeVar("T")
INLINE_BYTES = 1 << 20
"""Bodies up to this size are decoded on the event loop: at most about 2 ms (17-digit floats
parse at some 600 MB/s). A worker thread would cost more than it frees: the hop took 0.26 ms
in the server, and the parser holds the GIL, so the loop waits for it either way."""
INLINE_SECONDS = 1e-3
"""Computations estimated to take no longer are run on the event loop, for the same reason;
longer ones run in a thread, where torch releases the GIL and the loop serves others."""


Left = Callable[[], Awaitable[None]]
"""Returns when the request's client has gone away: the adapter's way of telling."""


class Gone(Exception):
    """The client went away before its answer was ready: while its body arrived, or while
    its request waited for a slot or a thread."""


async def unless_left(work: Awaitable[T], left: Left) -> T:
    """`work`, cancelled when `left()` returns first (then Gone). Racing costs two tasks, so
    only waits are raced: while work runs on the event loop, nothing could notice anyway."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(left())
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise Gone
    return task.result()


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request: its tensors as numpy arrays, its parameters and its options."""

    arrays: Arrays
    params: Params
    options: Any


@dataclass(slots=True)
class Allowance:
    """The work one request (all a batch's items together) may take: max_work."""

    limit: float
    used: float = 0.0
    seconds: float = 0.0

    def spend(self, spec: Spec, cost: Cost) -> None:
        self.used += cost.work
        self.seconds += cost.seconds
        if self.used > self.limit:
            members = {"work": self.used, "max_work": self.limit}
            fixed = ""
            if cost.fixed:
                members["fixed_work"] = cost.fixed
                fixed = f"; {cost.fixed:.3g} of it does not shrink with the batch"
            raise PayloadTooLarge(
                f"{spec.name} would take about {cost.seconds:.3g} s of one core and"
                f" {cost.bytes / 2**20:.0f} MiB (work {cost.work:.3g}{fixed}); the limit is"
                f" max_work ({self.limit:g}, in units of {WORK_SECONDS:g} s or"
                f" {WORK_BYTES / 2**30:g} GiB)",
                members=members,
            )


class DataPlane:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.max_concurrency = settings.max_concurrency
        self.max_work = settings.max_work
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._queue_timeout = settings.queue_timeout
        self._busy = 0
        self._full_since: float | None = None

    async def run(
        self,
        kind: Kind,
        spec: Spec,
        decode: Callable[[], Request],
        encode: Callable[[Request, Result], T],
        *,
        size: int,
        left: Left,
    ) -> T:
        """encode(request, result) of decode(), in a slot: decoded where its `size` (the
        body's bytes) says, validated, refused past max_work, then computed and encoded where
        its estimated work says; Gone when the client leaves while it waits."""
        allowance = Allowance(self.max_work)
        async with self.slot(left):
            request = await self.place(
                lambda: self.admit(spec, decode, allowance), inline=size <= INLINE_BYTES, left=left
            )
            return await self.place(
                lambda: encode(request, self.compute(kind, spec, request)),
                inline=allowance.seconds <= INLINE_SECONDS,
                left=left,
            )

    def admit(self, spec: Spec, decode: Callable[[], Request], allowance: Allowance) -> Request:
        """The decoded request with its arrays validated, once its cost fits the allowance."""
        request = decode()
        arrays = spec.validate(request.arrays, request.params, request.options)
        allowance.spend(spec, spec.cost(arrays, request.params, request.options))
        return Request(arrays, request.params, request.options)

    def compute(self, kind: Kind, spec: Spec, request: Request) -> Result:
        return kind.run(self.engine, spec, request.arrays, request.params, request.options)

    @staticmethod
    async def place(work: Callable[[], T], *, inline: bool, left: Left) -> T:
        """work() here, or in a worker thread: Gone if the client leaves before it is done
        (a computation in a thread runs to its end; its result is dropped)."""
        if inline:
            return work()
        return await unless_left(anyio.to_thread.run_sync(work), left)

    def slot(self, left: Left) -> "_Slot":
        """Holds one of max_concurrency computation slots (`async with`); 503 after waiting
        queue_timeout, Gone if the client leaves while it waits (it leaves the queue)."""
        return _Slot(self, left)

    async def _acquire(self, left: Left) -> None:
        try:
            if self._slots.locked():  # only a wait needs wait_for's task
                await unless_left(
                    asyncio.wait_for(self._slots.acquire(), self._queue_timeout), left
                )
            else:
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable(
                f"all {self.max_concurrency} computation slots are busy; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        self._busy += 1
        if self._busy == self.max_concurrency:
            self._full_since = time.monotonic()

    def _release(self) -> None:
        self._busy -= 1
        self._full_since = None
        self._slots.release()

    def saturated_for(self) -> float:
        """How long every slot has been busy without one coming free (0 when one is free)."""
        return 0.0 if self._full_since is None else time.monotonic() - self._full_since


class _Slot:
    """DataPlane.slot's `async with`: a class, where a generator context cost 4 us more."""

    def __init__(self, plane: DataPlane, left: Left) -> None:
        self.plane, self.left = plane, left

    async def __aenter__(self) -> None:
        await self.plane._acquire(self.left)

    async def __aexit__(self, *_: object) -> None:
        self.plane._release()
