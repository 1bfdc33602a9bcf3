"""Margin losses: ranking, hinge, soft-margin and multi-class/multi-label margin losses."""

from typing import Literal

import torch.nn.functional as F

from service import checks
from service.losses.classification import CLASS_WEIGHT, ELEMENT_WEIGHT
from service.spec import (
    Arrays,
    Cost,
    LossOptions,
    LossSpec,
    Params,
    TensorSpec,
    linear,
    per_sample,
)

SIGNS = TensorSpec("target", "1 or -1", "input's shape")
SCORES = "(C) or (N, C)"


class Margin(Params):
    margin: float = 0.0
    """The margin by which the preferred side must win."""


class HingeMargin(Params):
    margin: float = 1.0
    """Dissimilar pairs (target -1) cost max(0, margin - input)."""


class MultiMarginParams(Params):
    p: Literal[1, 2] = 1
    """1 for the hinge, 2 for the squared hinge."""
    margin: float = 1.0
    """The margin by which the target class must beat each other class."""


def _check_signs(t: Arrays, p: Params, o: LossOptions) -> None:
    for name in ("input2", "target"):
        if name in t:
            first = "input1" if "input1" in t else "input"
            checks.same_shape(name, t[name], first, t[first].shape)
    checks.signs("target", t["target"])


def _check_multilabel_soft(t: Arrays, p: Params, o: LossOptions) -> None:
    input, target = t["input"], t["target"]
    checks.same_shape("target", target, "input", input.shape)
    checks.reject_first(
        "target", target, (target != 0) & (target != 1), "is not a label, 0 or 1", "binary_label"
    )
    if "weight" in t:
        checks.broadcasts("weight", t["weight"], "input", input.shape)


def _check_multilabel(t: Arrays, p: Params, o: LossOptions) -> None:
    input, target = t["input"], t["target"]
    checks.same_shape("target", target, "input", input.shape)
    classes = checks.class_count(input)
    checks.reject_first(
        "target",
        target,
        (target < -1) | (target >= classes),
        f"is neither a class index in [0, {classes}) nor the end marker -1",
        "class_index_out_of_range",
    )


def _check_multi_margin(t: Arrays, p: MultiMarginParams, o: LossOptions) -> None:
    input = t["input"]
    if "weight" in t:
        checks.class_weight("weight", t["weight"], checks.class_count(input))
    checks.class_indices(t["target"], input)


NS_PER_PAIR = 3.0
"""multilabel_margin_loss per (target label, class) pair of a sample, on one core."""


def _multilabel_cost(t: Arrays, p: Params, o: LossOptions) -> Cost:
    """Quadratic in C: each sample compares each of its up to C target labels with each class."""
    input = t["input"]
    classes = checks.class_count(input)
    pairs = (input.size // classes) * classes * classes
    inputs = linear(t, p, o)
    factor = 2.0 if o.grad else 1.0
    return Cost(pairs * NS_PER_PAIR * factor * 1e-9 + inputs.seconds, inputs.bytes)


LOSSES = (
    LossSpec(
        name="margin_ranking_loss",
        summary="Ranking hinge max(0, -target * (input1 - input2) + margin): target 1 means"
        " input1 should rank higher, -1 lower.",
        reference="torch.nn.functional.margin_ranking_loss",
        tensors=(
            TensorSpec("input1", "scores", "any", grad=True),
            TensorSpec("input2", "scores", "input1's shape", grad=True),
            TensorSpec("target", "1 or -1", "input1's shape"),
        ),
        params=Margin,
        check=_check_signs,
        call=F.margin_ranking_loss,
    ),
    LossSpec(
        name="hinge_embedding_loss",
        summary="input (a distance) for similar pairs (target 1), max(0, margin - input) for"
        " dissimilar ones (target -1).",
        reference="torch.nn.functional.hinge_embedding_loss",
        tensors=(TensorSpec("input", "distances", "any", grad=True), SIGNS),
        params=HingeMargin,
        check=_check_signs,
        call=F.hinge_embedding_loss,
    ),
    LossSpec(
        name="soft_margin_loss",
        summary="Logistic loss log(1 + exp(-target * input)) of scores against targets 1 or -1.",
        reference="torch.nn.functional.soft_margin_loss",
        tensors=(TensorSpec("input", "scores", "any", grad=True), SIGNS),
        check=_check_signs,
        call=F.soft_margin_loss,
    ),
    LossSpec(
        name="multilabel_soft_margin_loss",
        summary="Multi-label logistic loss of scores (N, C) against 0/1 labels, averaged over"
        " the classes.",
        reference="torch.nn.functional.multilabel_soft_margin_loss",
        tensors=(
            TensorSpec("input", "scores", SCORES, grad=True, ranks=range(1, 3), dims=2),
            TensorSpec("target", "labels, 0 or 1", "input's shape", dims=2),
        ),
        tensor_params=(ELEMENT_WEIGHT,),
        check=_check_multilabel_soft,
        call=F.multilabel_soft_margin_loss,
        divisor=per_sample("input"),
    ),
    LossSpec(
        name="multilabel_margin_loss",
        summary="Multi-label hinge loss of scores against the class indices listed first in"
        " each target row, ended by -1.",
        reference="torch.nn.functional.multilabel_margin_loss",
        tensors=(
            TensorSpec("input", "scores", SCORES, grad=True, ranks=range(1, 3), dims=2),
            TensorSpec("target", "class indices, then -1", "input's shape", dtype="int", dims=2),
        ),
        check=_check_multilabel,
        call=F.multilabel_margin_loss,
        cost=_multilabel_cost,
        divisor=per_sample("input"),
    ),
    LossSpec(
        name="multi_margin_loss",
        summary="Multi-class hinge loss: each class's score must trail the target class's by"
        " margin.",
        reference="torch.nn.functional.multi_margin_loss",
        tensors=(
            TensorSpec("input", "scores", SCORES, grad=True, ranks=range(1, 3), dims=2),
            TensorSpec("target", "class indices", "() or (N)", dtype="int"),
        ),
        tensor_params=(CLASS_WEIGHT,),
        params=MultiMarginParams,
        check=_check_multi_margin,
        call=F.multi_margin_loss,
        divisor=per_sample("input"),
    ),
)
