"""Regression losses: l1_loss, mse_loss, smooth_l1_loss, huber_loss."""

import torch.nn.functional as F
from pydantic import Field

from service import checks
from service.spec import (
    Arrays,
    Divisor,
    LossOptions,
    LossSpec,
    Params,
    TensorParam,
    TensorSpec,
)

PAIR = (
    TensorSpec("input", "predictions", "any", grad=True),
    TensorSpec("target", "targets", "input's shape"),
)
WEIGHT = TensorParam(
    "weight",
    "A weight per element, of input's shape (functional-only in PyTorch).",
    "input's shape",
    batch=0,
)


class Beta(Params):
    beta: float = Field(default=1.0, ge=0.0)
    """Where the loss turns from quadratic to linear; 0 gives l1_loss."""


class Delta(Params):
    delta: float = Field(default=1.0, gt=0.0)
    """Where the loss turns from quadratic to linear; the slope beyond it."""


def _check_pair(t: Arrays, p: Params, o: LossOptions) -> None:
    """Equal shapes: PyTorch would broadcast (4, 1) against (4) with only a warning."""
    input = t["input"]
    checks.same_shape("target", t["target"], "input", input.shape)
    if "weight" in t:
        checks.same_shape("weight", t["weight"], "input", input.shape)


def _weight_sum(t: Arrays, p: Params, o: LossOptions) -> float:
    """PyTorch's weighted l1 and mse "mean" divides by the weights' sum (huber's does not)."""
    return float(t["weight"].sum() if "weight" in t else t["input"].size)


def _pair_loss(
    name: str,
    summary: str,
    *,
    params: type[Params] = Params,
    tensor_params: tuple[TensorParam, ...] = (),
    divisor: Divisor | None = None,
) -> LossSpec:
    return LossSpec(
        name=name,
        summary=summary,
        reference=f"torch.nn.functional.{name}",
        tensors=PAIR,
        call=getattr(F, name),
        params=params,
        tensor_params=tensor_params,
        check=_check_pair,
        divisor=divisor,
    )


LOSSES = (
    _pair_loss(
        "l1_loss",
        "Absolute error |input - target| between predictions and targets of the same shape.",
        tensor_params=(WEIGHT,),
        divisor=_weight_sum,
    ),
    _pair_loss(
        "mse_loss",
        "Squared error (input - target)^2 between predictions and targets of the same shape.",
        tensor_params=(WEIGHT,),
        divisor=_weight_sum,
    ),
    _pair_loss(
        "smooth_l1_loss",
        "Squared error / (2 beta) within beta of the target, |error| - beta / 2 beyond it.",
        params=Beta,
    ),
    _pair_loss(
        "huber_loss",
        "Squared error / 2 within delta of the target, delta (|error| - delta / 2) beyond it.",
        params=Delta,
        tensor_params=(WEIGHT,),
    ),
)
