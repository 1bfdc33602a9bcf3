"""The data plane without HTTP: the computation slots, and decode -> engine -> encode."""

import asyncio
import threading
import time

import numpy as np
import pytest

from service.config import Settings
from service.dataplane import INLINE_BYTES, DataPlane, Gone, Request
from service.engine import Engine, Result
from service.errors import Unavailable
from service.kinds import KINDS


def plane(**settings: object) -> DataPlane:
    config = Settings.model_validate(settings)
    return DataPlane(Engine(config), config)


async def stays() -> None:
    """A client that never leaves."""
    await asyncio.Event().wait()


def test_the_gate_answers_503_with_retry_after_when_full() -> None:
    gate = plane(max_concurrency=1, queue_timeout=0.01)

    async def scenario() -> None:
        async with gate.slot(stays):
            with pytest.raises(Unavailable) as raised:
                async with gate.slot(stays):
                    pass
            assert raised.value.headers == {"Retry-After": "1"}
            assert raised.value.detail == "all 1 computation slots are busy; retry shortly"
        async with gate.slot(stays):  # released again
            pass

    asyncio.run(scenario())


@pytest.mark.parametrize("size", [10, INLINE_BYTES + 1], ids=["on the loop", "in a thread"])
def test_run_decodes_computes_and_encodes_in_a_slot(size: int) -> None:
    losses = KINDS[0]
    spec = losses.specs["cross_entropy"]
    params, options = spec.parse_options({"grad": True, "dtype": "float64"})
    arrays = {"input": np.array([[1.0, 2.0, 3.0]]), "target": np.array([2])}
    seen: list[Result] = []

    def encode(request: Request, result: Result) -> str:
        seen.append(result)
        return "encoded"

    gate = plane()
    answer = asyncio.run(
        gate.run(
            losses, spec, lambda: Request(arrays, params, options), encode, size=size, left=stays
        )
    )
    assert answer == "encoded"
    (result,) = seen
    assert set(result.outputs) == {"loss", "grad_input"}


def test_a_request_whose_client_leaves_while_queued_leaves_the_queue() -> None:
    gate = plane(max_concurrency=1, queue_timeout=10)

    async def scenario() -> None:
        leaving = asyncio.Event()
        async with gate.slot(stays):
            queued = asyncio.ensure_future(gate.slot(leaving.wait).__aenter__())
            await asyncio.sleep(0.01)
            leaving.set()
            with pytest.raises(Gone):
                await queued
        async with gate.slot(stays):  # nobody took the slot: the queue is empty
            assert gate.saturated_for() > 0

    asyncio.run(scenario())


def test_work_in_a_thread_whose_client_leaves_is_gone_and_its_result_dropped() -> None:
    finished = threading.Event()

    def work() -> None:
        time.sleep(0.05)
        finished.set()

    async def left() -> None:
        await asyncio.sleep(0.01)

    async def scenario() -> None:
        with pytest.raises(Gone):
            await DataPlane.place(work, inline=False, left=left)
        assert not finished.is_set()  # answered before the thread ended

    asyncio.run(scenario())
    assert finished.wait(5)  # a thread is not interrupted: it runs to its end
