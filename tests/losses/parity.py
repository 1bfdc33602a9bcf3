"""One parity check: a request through the real app against the torch reference in float64."""

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from service.losses import REGISTRY
from tests.losses.strategies import as_computed
from tests.reference import assert_matches, reference


def check(
    client: TestClient,
    name: str,
    fn: Callable[..., Any],
    tensors: dict[str, np.ndarray | None],
    params: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """POSTs tensors, params and options to loss `name`; compares loss and gradients with fn."""
    body = {k: v.tolist() for k, v in tensors.items() if v is not None} | params | options
    response = client.post(f"/v1/losses/{name}", json=body)
    assert response.status_code == 200, response.text
    dtype = options["dtype"]
    inputs = {k: as_computed(v, dtype) if v is not None else None for k, v in tensors.items()}
    wanted = [t.name for t in REGISTRY[name].tensors if t.grad] if options["grad"] else []
    expected, grads = reference(fn, inputs, wanted, reduction=options["reduction"], **params)
    result: dict[str, Any] = response.json()
    assert (result["reduction"], result["dtype"], result["device"]) == (
        options["reduction"],
        dtype,
        "cpu",
    )
    assert_matches(result, expected, grads, dtype)
    return result
