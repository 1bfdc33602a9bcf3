"""One parity check: a request through the real app, by /v1 or /v2, against the torch
reference in float64."""

from collections.abc import Callable
from typing import Any

import numpy as np

from service.losses import REGISTRY
from tests.losses.strategies import as_computed
from tests.reference import assert_matches, reference
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
    return result
