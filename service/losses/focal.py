"""Focal losses (Lin et al. 2017, "Focal Loss for Dense Object Detection", RetinaNet).

They down-weight well-classified examples by (1 - p_t) ** gamma so that training focuses on
the hard ones. PyTorch has no function for them; the references are named per loss.
"""

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from service import checks
from service.losses.classification import CLASS_RANKS, CLASS_SHAPES, INDEX_SHAPES, IgnoreIndex
from service.spec import Arrays, LossOptions, LossSpec, Params, TensorParam, TensorSpec


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def modulating_factor(q: torch.Tensor, gamma: float) -> torch.Tensor:
    """q ** gamma where q = 1 - p_t, with a gradient of 0, not NaN, where q = 0.

    For gamma < 1 the slope of q ** gamma at q = 0 is infinite and autograd multiplies it by
    0; the loss's true gradient there is 0 (its limit), so q = 0 is routed around the power.
    """
    positive = q > 0
    return torch.where(positive, torch.where(positive, q, 1) ** gamma, 0.0 if gamma else 1.0)


def sigmoid_focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss, but "mean" by default like every loss here.

    loss = -alpha_t * (1 - p_t) ** gamma * log(p_t), per element, where p = sigmoid(input),
    p_t = p * target + (1 - p) * (1 - target), alpha_t = alpha * target + (1 - alpha) *
    (1 - target), or 1 when alpha < 0. input: logits of any shape; target: input's shape, in
    [0, 1]. Returns input's shape for "none", else a scalar.
    """
    p = torch.sigmoid(input)
    # -log(p_t) from logits: binary_cross_entropy_with_logits stays finite where log(p) is not.
    ce = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    # 1 - p_t from sigmoid(-input), not 1 - sigmoid(input), which rounds to 0 for a confident
    # logit in float32 and makes the gradient of (1 - p_t) ** gamma (gamma < 1) infinite.
    one_minus_p_t = torch.sigmoid(-input) * target + p * (1 - target)
    loss = ce * modulating_factor(one_minus_p_t, gamma)
    if alpha >= 0:
        alpha_t = alpha * target + (1 - alpha) * (1 - target)
        loss = alpha_t * loss
    return reduce(loss, reduction)


def focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    alpha: torch.Tensor | None = None,
    *,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-class (softmax) focal loss; with gamma = 0 and no alpha it is cross_entropy.

    loss = -alpha_t * (1 - p_t) ** gamma * log(p_t), per element, where p_t =
    softmax(input)[target] along the class dimension and alpha_t is 1, alpha (0-d) or
    alpha[target] ((C)). input: logits (C), (N, C) or (N, C, d1, ..., dK); target: class
    indices (), (N) or (N, d1, ..., dK). Ignored targets contribute 0 and "mean" averages over
    the others. Returns target's shape for "none", else a scalar.
    """
    class_dim = 0 if input.dim() == 1 else 1
    kept = target != ignore_index
    safe = target.where(kept, 0).unsqueeze(class_dim)
    log_p_t = F.log_softmax(input, dim=class_dim).gather(class_dim, safe).squeeze(class_dim)
    # 1 - p_t as -expm1(log p_t): exact for p_t near 1, where 1 - exp(log p_t) cancels.
    loss = -modulating_factor(-torch.expm1(log_p_t), gamma) * log_p_t
    if alpha is not None:
        loss = (alpha if alpha.dim() == 0 else alpha[safe.squeeze(class_dim)]) * loss
    loss = loss.where(kept, 0)
    if reduction == "mean":
        return loss.sum() / kept.sum()
    return reduce(loss, reduction)


class SigmoidFocalParams(Params):
    alpha: float = Field(default=0.25, le=1.0)
    """Weight of the positive class in [0, 1]; a negative value switches the weighting off."""
    gamma: float = Field(default=2.0, ge=0.0)
    """Focusing exponent on (1 - p_t); 0 gives binary cross entropy."""


class FocalParams(IgnoreIndex):
    gamma: float = Field(default=2.0, ge=0.0)
    """Focusing exponent on (1 - p_t); 0 with no alpha gives cross entropy."""


def _check_sigmoid_focal(t: Arrays, p: Params, o: LossOptions) -> None:
    checks.same_shape("target", t["target"], "input", t["input"].shape)
    checks.probabilities("target", t["target"])


def _check_focal(t: Arrays, p: FocalParams, o: LossOptions) -> None:
    input, alpha = t["input"], t.get("alpha")
    if alpha is not None and alpha.ndim:
        checks.class_weight("alpha", alpha, checks.class_count(input))
    checks.class_indices(
        t["target"], input, ignore_index=p.ignore_index, weight=None, reduction=o.reduction
    )


sigmoid_focal = LossSpec(
    name="sigmoid_focal_loss",
    summary="Focal loss of logits against binary targets in [0, 1] (RetinaNet): binary cross"
    " entropy down-weighted by (1 - p_t) ** gamma.",
    reference="torchvision.ops.sigmoid_focal_loss",
    tensors=(
        TensorSpec("input", "logits", "any", grad=True),
        TensorSpec("target", "probabilities", "input's shape"),
    ),
    params=SigmoidFocalParams,
    check=_check_sigmoid_focal,
    call=sigmoid_focal_loss,
)

focal = LossSpec(
    name="focal_loss",
    summary="Multi-class focal loss of logits against class indices: cross entropy"
    " down-weighted by (1 - p_t) ** gamma.",
    reference="Lin et al. 2017 (RetinaNet), softmax form: -alpha_t (1 - p_t)^gamma log(p_t)",
    tensors=(
        TensorSpec("input", "logits", CLASS_SHAPES, grad=True, ranks=CLASS_RANKS, dims=2),
        TensorSpec("target", "class indices", INDEX_SHAPES, dtype="int"),
    ),
    tensor_params=(
        TensorParam(
            "alpha",
            "Class weighting: null (none), one number, or one weight per class.",
            "() or (C)",
            range(2),
            type="number or tensor",
        ),
    ),
    params=FocalParams,
    check=_check_focal,
    call=focal_loss,
    divisor=lambda t, p, o: float(np.count_nonzero(t["target"] != p.ignore_index)),
)

LOSSES = (sigmoid_focal, focal)
