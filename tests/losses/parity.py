"""One parity check: a request through the real app, by /v1 or /v2, against the torch
reference in float64."""

from collections.abc import Callable
from typing import Any

import numpy as np

from service.losses import REGISTRY
from tests.losses.strategies import as_computed
from tests.reference import TOLERANCE, assert_matches, reference
from tests.transports import Transport


def check(
    via: Transport,
    name: str,
    fn: Callable[..., Any],
    tensors: dict[str, np.ndarray | None],
    params: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """Sends tensors, params and options to loss `name`; compares loss and gradients with fn."""
    sent = {k: v for k, v in tensors.items() if v is not None}
    result = via.compute(name, sent, params, options)
    dtype = options["dtype"]
    inputs = {k: as_computed(v, dtype) if v is not None else None for k, v in tensors.items()}
    wanted = [t.name for t in REGISTRY[name].tensors if t.grad] if options["grad"] else []
    expected, grads = reference(fn, inputs, wanted, reduction=options["reduction"], **params)
    assert (result.get("reduction", options["reduction"]), result["dtype"], result["device"]) == (
        options["reduction"],
        dtype,
        "cpu",
    )
    assert_matches(result, expected, grads, dtype)
    _check_divisor(name, fn, inputs, params, options, result)
    return result


def _check_divisor(
    name: str,
    fn: Callable[..., Any],
    inputs: dict[str, Any],
    params: dict[str, Any],
    options: dict[str, Any],
    result: dict[str, Any],
) -> None:
    """A mean comes with its divisor: mean * divisor is the sum (ctc_loss's mean, of
    loss / target_length over the batch, is checked in test_ctc)."""
    if options["reduction"] not in ("mean", "batchmean"):
        assert "divisor" not in result
        return
    divisor = result["divisor"]
    mean = np.asarray(result["loss"], dtype=np.float64)
    if name == "ctc_loss" or not np.isfinite(mean):
        return
    total, _ = reference(fn, inputs, [], reduction="sum", **params)
    np.testing.assert_allclose(mean * divisor, total, **TOLERANCE[options["dtype"]])
