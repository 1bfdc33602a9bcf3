"""References in float64 on the CPU: loss and gradients by autograd, as numpy."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

TOLERANCE = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 2e-5, "atol": 1e-5}}


def reference(
    fn: Callable[..., torch.Tensor],
    tensors: dict[str, Any],
    grad: Sequence[str] = (),
    **kwargs: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """fn(**tensors, **kwargs) in float64, with the gradient of its sum for each name in grad."""
    inputs = {
        name: _tensor(value).requires_grad_(name in grad) if value is not None else None
        for name, value in tensors.items()
    }
    loss = fn(**inputs, **kwargs)
    grads = {}
    if grad:
        loss.sum().backward()
        grads = {name: inputs[name].grad.numpy() for name in grad}
    return loss.detach().numpy(), grads


def _tensor(value: Any) -> torch.Tensor:
    array = np.asarray(value)
    if array.dtype.kind in "iu":
        return torch.from_numpy(array.astype(np.int64))
    return torch.from_numpy(array.astype(np.float64))


def assert_matches(
    body: dict[str, Any], expected: np.ndarray, grads: dict[str, np.ndarray], dtype: str
) -> None:
    """A 200 body against the float64 reference, within the dtype's rounding.

    Where the reference is not finite the service answers null (CTC's impossible alignments)
    or a finite limit (the focal losses' gradient at p_t = 1, where autograd gives 0 * inf);
    either way a null comes with a warning.
    """
    tolerance = TOLERANCE[dtype]
    loss = np.asarray(body["loss"], dtype=np.float64)
    assert list(loss.shape) == body["shape"] == list(expected.shape)
    _close(loss, expected, tolerance)
    assert body.get("grad", {}).keys() == grads.keys()
    nulls = not np.isfinite(loss).all()
    for name, expected_grad in grads.items():
        actual = np.asarray(body["grad"][name], dtype=np.float64)
        assert actual.shape == expected_grad.shape
        _close(actual, expected_grad, tolerance)
        nulls = nulls or not np.isfinite(actual).all()
    assert ("warnings" in body) == nulls, body


def _close(actual: np.ndarray, expected: np.ndarray, tolerance: dict[str, float]) -> None:
    defined = np.isfinite(expected)
    np.testing.assert_allclose(actual[defined], expected[defined], **tolerance)
