"""Classification losses: cross_entropy, nll_loss, binary_cross_entropy(_with_logits)."""

import numpy as np
import torch.nn.functional as F
from pydantic import Field

from service import checks
from service.errors import Invalid
from service.spec import (
    Arrays,
    Int64,
    LossOptions,
    LossSpec,
    Params,
    TensorParam,
    TensorSpec,
)

CLASS_SHAPES = "(C), (N, C) or (N, C, d1, ..., dK)"
CLASS_RANKS = range(1, 9)
INDEX_SHAPES = "() for input (C); (N) or (N, d1, ..., dK)"

CLASS_WEIGHT = TensorParam(
    "weight",
    "A rescaling weight for each class.",
    "(C)",
    range(1, 2),
)
ELEMENT_WEIGHT = TensorParam(
    "weight",
    "A rescaling weight for each element, broadcast to input's shape.",
    "broadcastable",
    batch=0,
)


class IgnoreIndex(Params):
    ignore_index: Int64 = -100
    """A class-index target value that is ignored and does not count toward the mean."""


class CrossEntropyParams(IgnoreIndex):
    label_smoothing: float = Field(default=0.0, ge=0.0, le=1.0)
    """Mixes the target with the uniform distribution: (1 - s) * target + s / C."""


def _check_cross_entropy(t: Arrays, p: CrossEntropyParams, o: LossOptions) -> Arrays | None:
    input, target, weight = t["input"], t["target"], t.get("weight")
    if weight is not None:
        checks.class_weight("weight", weight, checks.class_count(input))
    if target.shape != input.shape:
        checks.class_indices(
            target, input, ignore_index=p.ignore_index, weight=weight, reduction=o.reduction
        )
        return None
    if "ignore_index" in p.model_fields_set:
        raise Invalid.at(
            ("ignore_index",),
            "ignore_index applies to class-index targets, but target has input's shape"
            " and holds class probabilities",
            "ignore_index_with_probabilities",
        )
    checks.probabilities("target", target)
    return t | {"target": target.astype(float, copy=False)}


def class_divisor(t: Arrays, p: IgnoreIndex, o: LossOptions) -> float:
    """Class-index targets: the weight of the targets not ignored (their count without a
    weight); probability targets: the elements of the result, N * d1 * ... * dK."""
    input, target, weight = t["input"], t["target"], t.get("weight")
    if target.shape == input.shape:
        return float(target.size // checks.class_count(input))
    kept = target != p.ignore_index
    return float(np.count_nonzero(kept) if weight is None else weight[target[kept]].sum())


def _check_nll(t: Arrays, p: IgnoreIndex, o: LossOptions) -> None:
    input, weight = t["input"], t.get("weight")
    if weight is not None:
        checks.class_weight("weight", weight, checks.class_count(input))
    checks.class_indices(
        t["target"], input, ignore_index=p.ignore_index, weight=weight, reduction=o.reduction
    )


def _check_binary(t: Arrays, p: Params, o: LossOptions) -> None:
    input = t["input"]
    checks.same_shape("target", t["target"], "input", input.shape)
    checks.probabilities("target", t["target"])
    for name in ("weight", "pos_weight"):
        if name in t:
            checks.broadcasts(name, t[name], "input", input.shape)


def _check_probabilities(t: Arrays, p: Params, o: LossOptions) -> None:
    checks.probabilities("input", t["input"])
    _check_binary(t, p, o)


cross_entropy = LossSpec(
    name="cross_entropy",
    summary="Cross entropy between logits and class indices or class probabilities.",
    reference="torch.nn.functional.cross_entropy",
    tensors=(
        TensorSpec("input", "logits", CLASS_SHAPES, grad=True, ranks=CLASS_RANKS, dims=2),
        TensorSpec(
            "target",
            "class indices or class probabilities",
            f"class indices: {INDEX_SHAPES}; probabilities: input's shape",
            dtype="int or float",
        ),
    ),
    tensor_params=(CLASS_WEIGHT,),
    params=CrossEntropyParams,
    check=_check_cross_entropy,
    call=F.cross_entropy,
    divisor=class_divisor,
)

nll_loss = LossSpec(
    name="nll_loss",
    summary="Negative log likelihood of class indices under log-probabilities (log_softmax).",
    reference="torch.nn.functional.nll_loss",
    tensors=(
        TensorSpec(
            "input", "log-probabilities", CLASS_SHAPES, grad=True, ranks=CLASS_RANKS, dims=2
        ),
        TensorSpec("target", "class indices", INDEX_SHAPES, dtype="int"),
    ),
    tensor_params=(CLASS_WEIGHT,),
    params=IgnoreIndex,
    check=_check_nll,
    call=F.nll_loss,
    divisor=class_divisor,
)

binary_cross_entropy = LossSpec(
    name="binary_cross_entropy",
    summary="Binary cross entropy between probabilities in [0, 1] and targets in [0, 1];"
    " each log is clamped at -100.",
    reference="torch.nn.functional.binary_cross_entropy",
    tensors=(
        TensorSpec("input", "probabilities", "any", grad=True),
        TensorSpec("target", "probabilities", "input's shape"),
    ),
    tensor_params=(ELEMENT_WEIGHT,),
    check=_check_probabilities,
    call=F.binary_cross_entropy,
)

binary_cross_entropy_with_logits = LossSpec(
    name="binary_cross_entropy_with_logits",
    summary="Binary cross entropy of logits (sigmoid fused, numerically stable) against targets"
    " in [0, 1].",
    reference="torch.nn.functional.binary_cross_entropy_with_logits",
    tensors=(
        TensorSpec("input", "logits", "any", grad=True),
        TensorSpec("target", "probabilities", "input's shape"),
    ),
    tensor_params=(
        ELEMENT_WEIGHT,
        TensorParam(
            "pos_weight",
            "A weight of the positive term per class, broadcast against input's last dimension.",
            "broadcastable, usually (C)",
        ),
    ),
    check=_check_binary,
    call=F.binary_cross_entropy_with_logits,
)

LOSSES = (cross_entropy, nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits)
