"""References in float64 on the CPU: loss and gradients by autograd, as numpy."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

TOLERANCE = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 2e-5, "atol": 2e-6}}


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
    """A 200 body against the float64 reference, within the dtype's rounding."""
    tolerance = TOLERANCE[dtype]
    loss = np.asarray(body["loss"], dtype=np.float64)
    assert list(loss.shape) == body["shape"] == list(expected.shape)
    np.testing.assert_allclose(loss, expected, **tolerance)
    assert body.get("grad", {}).keys() == grads.keys()
    for name, expected_grad in grads.items():
        actual = np.asarray(body["grad"][name], dtype=np.float64)
        # Where autograd's reference is NaN (0 * inf), the service must give a finite limit.
        defined = np.isfinite(expected_grad)
        assert np.isfinite(actual).all(), body
        np.testing.assert_allclose(actual[defined], expected_grad[defined], **tolerance)
