"""Losses between distributions: kl_div, poisson_nll_loss, gaussian_nll_loss."""

import torch
import torch.nn.functional as F
from pydantic import Field

from service import checks
from service.errors import Invalid
from service.spec import Arrays, LossOptions, LossSpec, Params, TensorSpec


class KLDivParams(Params):
    log_target: bool = False
    """Whether target holds log-probabilities rather than probabilities."""


class PoissonParams(Params):
    log_input: bool = True
    """input is the log of the rate (loss exp(input) - target * input), else the rate itself."""
    full: bool = False
    """Add the Stirling approximation of log(target!)."""
    eps: float = Field(default=1e-8, gt=0.0)
    """Added to the rate inside the log when log_input is false."""


class GaussianParams(Params):
    full: bool = False
    """Add the constant 0.5 * log(2 pi)."""
    eps: float = Field(default=1e-6, gt=0.0)
    """Lower clamp of var, for stability."""


def kl_div(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    log_target: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """F.kl_div: target * (log target - input) per element.

    "mean" is computed as the sum over the element count, which is what PyTorch's "mean" is,
    without the warning PyTorch logs on every call that "batchmean" is usually meant.
    """
    if reduction == "mean":
        return F.kl_div(input, target, reduction="sum", log_target=log_target) / input.numel()
    return F.kl_div(input, target, reduction=reduction, log_target=log_target)


def gaussian_nll_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    var: torch.Tensor,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> torch.Tensor:
    """F.gaussian_nll_loss; a 0-d var is one variance for every element, like a float var."""
    if var.dim() == 0:
        var = var.expand_as(input)
    return F.gaussian_nll_loss(input, target, var, full=full, eps=eps, reduction=reduction)


def _kl_divisor(t: Arrays, p: KLDivParams, o: LossOptions) -> float:
    """ "mean": the elements; "batchmean": the batch, input's first dimension."""
    input = t["input"]
    if o.reduction == "batchmean":
        return float(input.shape[0] if input.ndim else 1)
    return float(input.size)


def _check_kl(t: Arrays, p: KLDivParams, o: LossOptions) -> None:
    target = t["target"]
    checks.same_shape("target", target, "input", t["input"].shape)
    if p.log_target:
        checks.reject_first(
            "target", target, target > 0, "is not a log-probability (<= 0)", "log_probability"
        )
    else:
        checks.probabilities("target", target)


def _check_poisson(t: Arrays, p: PoissonParams, o: LossOptions) -> None:
    checks.same_shape("target", t["target"], "input", t["input"].shape)
    checks.at_least_zero("target", t["target"], "a Poisson count")
    if not p.log_input:
        checks.at_least_zero("input", t["input"], "a rate (log_input is false)")


def _check_gaussian(t: Arrays, p: GaussianParams, o: LossOptions) -> None:
    input, var = t["input"], t["var"]
    checks.same_shape("target", t["target"], "input", input.shape)
    checks.at_least_zero("var", var, "a variance")
    if var.ndim == 0 or var.shape in (input.shape, input.shape[:-1]):
        return
    differing = [v for i, v in zip(input.shape, var.shape, strict=False) if i != v]
    if var.ndim != input.ndim or differing != [1]:
        raise Invalid.at(
            ("var",),
            f"var has shape {var.shape}; for input of shape {input.shape} it must be input's"
            " shape, input's shape without its last dimension, input's shape with one"
            " dimension set to 1, or a number",
            "shape_mismatch",
        )


LOSSES = (
    LossSpec(
        name="kl_div",
        summary="Kullback-Leibler divergence of target from input, input holding"
        " log-probabilities and target probabilities (or log-probabilities with log_target).",
        reference="torch.nn.functional.kl_div",
        tensors=(
            TensorSpec("input", "log-probabilities", "any", grad=True),
            TensorSpec("target", "probabilities, or log-probabilities", "input's shape"),
        ),
        params=KLDivParams,
        check=_check_kl,
        call=kl_div,
        divisor=_kl_divisor,
        reductions=("none", "mean", "sum", "batchmean"),
    ),
    LossSpec(
        name="poisson_nll_loss",
        summary="Negative log likelihood of counts target under a Poisson distribution whose"
        " rate is input (or exp(input) with log_input).",
        reference="torch.nn.functional.poisson_nll_loss",
        tensors=(
            TensorSpec("input", "log-rates, or rates", "any", grad=True),
            TensorSpec("target", "counts (>= 0)", "input's shape"),
        ),
        params=PoissonParams,
        check=_check_poisson,
        call=F.poisson_nll_loss,
    ),
    LossSpec(
        name="gaussian_nll_loss",
        summary="Negative log likelihood of target under Gaussians with mean input and"
        " variance var (>= 0).",
        reference="torch.nn.functional.gaussian_nll_loss",
        tensors=(
            TensorSpec("input", "means", "any", grad=True),
            TensorSpec("target", "observations", "input's shape"),
            TensorSpec(
                "var",
                "variances (>= 0)",
                "input's shape, without its last dimension, with one dimension 1, or ()",
                grad=True,
            ),
        ),
        params=GaussianParams,
        check=_check_gaussian,
        call=gaussian_nll_loss,
    ),
)
