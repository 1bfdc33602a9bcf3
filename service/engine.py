"""The engine: validated numpy arrays in (spec.validate's, which the data plane calls), loss and
gradients out, on a chosen device and dtype.

It knows nothing of HTTP or JSON. It owns the device list and torch's thread count; the data
plane (service.dataplane) decides when and where it runs.
"""

from dataclasses import dataclass

import numpy as np
import torch

from service import checks
from service.config import Settings
from service.errors import Invalid
from service.grades import Grade, Graded
from service.losses import LossSpec
from service.spec import Arrays, LossOptions, Options, Params, Spec
from service.tensors.torch import DTYPES, beyond_float32, to_numpy, to_torch


@dataclass(frozen=True, slots=True)
class Result:
    """The result tensors by the names /v2 gives its outputs, and where they were computed:
    a loss's "loss" and "grad_{tensor}" for each gradient asked for, an activation's "output",
    label quality's scores and "predicted"."""

    outputs: dict[str, np.ndarray]
    device: str
    divisor: float | None = None
    """A loss's "mean" (or "batchmean"): what the sum was divided by."""
    grades: dict[str, Grade] | None = None
    """A grade's metrics by key: values, tables, and the state with its settings."""


class Engine:
    def __init__(self, settings: Settings) -> None:
        torch.set_num_threads(settings.torch_threads)
        cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        self.devices: list[str] = ["cpu", *cuda]
        self.default_device = self._resolve(settings.device, ("LOSS_SERVICE_DEVICE",))

    def device(self, name: str | None) -> torch.device:
        """The device for a request's `device` field; None means the server's default."""
        return self.default_device if name is None else self._resolve(name, ("device",))

    def _resolve(self, name: str, loc: tuple[str]) -> torch.device:
        if name == "auto":
            name = self.devices[1] if len(self.devices) > 1 else "cpu"
        elif name == "cuda":
            name = "cuda:0"
        if name not in self.devices:
            raise Invalid.at(
                loc,
                f"{loc[0]} '{name}' is not available; this server has: {', '.join(self.devices)}",
                "device_unavailable",
            )
        return torch.device(name)

    def compute(
        self, spec: LossSpec, arrays: Arrays, params: Params, options: LossOptions
    ) -> Result:
        """The loss, and by autograd the gradient of its sum for each prediction tensor."""
        divisor = None
        if options.reduction in ("mean", "batchmean"):
            divisor = spec.mean_divisor(arrays, params, options)
        tensors, device = self._on_device(arrays, options)
        wanted = [t.name for t in spec.tensors if t.grad] if options.grad else []
        for name in wanted:
            tensors[name].requires_grad_()
        # No tensor requires grad unless one is wanted, so autograd records nothing else.
        loss = spec.call(**tensors, **vars(params), reduction=options.reduction)
        if wanted:
            # For reduction "none" the gradient of the sum, as API.md defines it: a gradient
            # of ones, which spares the sum's node (backward() alone for a scalar).
            torch.autograd.backward(loss, torch.ones_like(loss) if loss.dim() else None)
        grads = {f"grad_{name}": to_numpy(_grad(tensors[name])) for name in wanted}
        return Result({"loss": to_numpy(loss)} | grads, str(device), divisor)

    def apply(self, spec: Spec, arrays: Arrays, params: Params, options: Options) -> Result:
        """An activation's output."""
        tensors, device = self._on_device(arrays, options)
        with torch.inference_mode():
            output = spec.call(**tensors, **vars(params))
        return Result({"output": to_numpy(output)}, str(device))

    def score(self, spec: Spec, arrays: Arrays, params: Params, options: Options) -> Result:
        """Several named results of one pass (label quality's scores)."""
        tensors, device = self._on_device(arrays, options)
        with torch.inference_mode():
            outputs: dict[str, torch.Tensor] = spec.call(**tensors, **vars(params))
        return Result({name: to_numpy(t) for name, t in outputs.items()}, str(device))

    def grade(self, spec: Spec, arrays: Arrays, params: Params, options: Options) -> Result:
        """Each metric's grade (service.grades)."""
        tensors, device = self._on_device(arrays, options)
        with torch.inference_mode():
            graded: Graded = spec.call(**tensors, **vars(params))
        return Result(graded.outputs, str(device), grades=graded.grades)

    def _on_device(
        self, arrays: Arrays, options: Options
    ) -> tuple[dict[str, torch.Tensor], torch.device]:
        """The arrays (spec.validate's) on the device, floats in the requested dtype."""
        device = self.device(options.device)
        dtype = DTYPES[options.dtype]
        if dtype == torch.float32:
            _fit_float32(arrays)
        return {name: to_torch(a, device, dtype) for name, a in arrays.items()}, device

    def warm_up(self) -> None:
        """One tiny forward and backward, so the first request does not pay for torch's setup."""
        x = torch.zeros(1, 2, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(x, torch.zeros(1, dtype=torch.int64))
        torch.autograd.backward(loss)


def _grad(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.grad is None:  # every tensor asked for takes part in every loss
        raise RuntimeError("autograd gave no gradient")
    return tensor.grad


def _fit_float32(arrays: Arrays) -> None:
    """Numbers beyond float32's range would become infinities, and the loss NaN. (The JSON
    reader already gives float32 arrays; this guards float64 ones from other adapters.)"""
    for name, array in arrays.items():
        if array.dtype == np.float64 and array.size:
            checks.reject_first(
                name,
                array,
                beyond_float32(array),
                "is beyond float32's range; send dtype float64",
                "float32_overflow",
            )
