"""numpy <-> torch: tensors onto a device in the computation's dtype, results back to numpy."""

import math
from warnings import filterwarnings

import numpy as np
import torch

from service.types import DTypeName

# Inputs read from a message's bytes (gRPC's raw contents) are read-only numpy views, taken
# without a copy; the engine never writes its inputs, so torch's warning says nothing here.
NOT_WRITABLE = "The given NumPy array is not writable"
filterwarnings("ignore", NOT_WRITABLE, UserWarning)

DTYPES: dict[DTypeName, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}

FLOAT32_OVERFLOW = 2.0**128 - 2.0**103
"""The least magnitude a float64 array value turns into infinity at in float32: half an ulp
above float32's largest number (3.4028234663852886e38), as numpy and torch round. Below it a
value rounds to a finite float32: orjson writes float32's largest as 3.4028235e38, which is
above that number but rounds back to it."""


def beyond_float32(array: np.ndarray) -> np.ndarray:
    """Where a float64 array's values would become infinities in float32."""
    beyond: np.ndarray = np.abs(array) >= FLOAT32_OVERFLOW
    return beyond


def to_torch(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Floats in `dtype`, integers as int64 (class indices), without a copy where possible."""
    tensor = torch.from_numpy(array)
    target = dtype if tensor.is_floating_point() else torch.int64
    if tensor.dtype == target and device.type == "cpu":  # as it is: .to() would cost 1 us
        return tensor
    return tensor.to(device=device, dtype=target)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Detached and on the CPU: one call, where detach().cpu().numpy() took three."""
    return tensor.numpy(force=True)


def warnings(named: dict[str, np.ndarray]) -> list[str]:
    """A warning for each array that holds NaN or infinity, by the name given."""
    found = (nonfinite(name, array) for name, array in named.items())
    return [warning for warning in found if warning]


def nonfinite(name: str, array: np.ndarray) -> str | None:
    """A warning naming how many values of `array` are NaN or infinite, or None if none are."""
    if array.ndim == 0 and math.isfinite(array):  # a loss: 0.3 us, where numpy's took 2.5
        return None
    # A finite sum means every value is finite (NaN and infinity propagate): one pass without
    # a temporary; only a sum that is not (or overflows) counts the values.
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(array.sum()):
            return None
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if not bad:
        return None
    return f"{name}: {bad} of {array.size} values are not finite (NaN or infinity), written as null"
