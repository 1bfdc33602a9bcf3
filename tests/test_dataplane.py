"""The data plane without HTTP: the computation slots, and decode -> engine -> encode."""

import asyncio

import numpy as np
import pytest

from service.config import Settings
from service.dataplane import DataPlane, Request
from service.engine import Engine, Result
from service.errors import Unavailable
from service.kinds import KINDS


def plane(**settings: object) -> DataPlane:
    config = Settings.model_validate(settings)
    return DataPlane(Engine(config), config)


def test_the_gate_answers_503_with_retry_after_when_full() -> None:
    gate = plane(max_concurrency=1, queue_timeout=0.01)

    async def scenario() -> None:
        async with gate.slot():
            with pytest.raises(Unavailable) as raised:
                async with gate.slot():
                    pass
            assert raised.value.headers == {"Retry-After": "1"}
            assert raised.value.detail == "all 1 computation slots are busy; retry shortly"
        async with gate.slot():  # released again
            pass

    asyncio.run(scenario())


@pytest.mark.parametrize("size", [10, 1 << 20], ids=["on the loop", "in a thread"])
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
        gate.run(losses, spec, lambda: Request(arrays, params, options), encode, size=size)
    )
    assert answer == "encoded"
    (result,) = seen
    assert set(result.outputs) == {"loss", "grad_input"}
