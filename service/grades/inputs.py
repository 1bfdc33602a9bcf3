"""A grade's input checked (numpy, before torch sees it) and put in one form (torch).

Classification comes in three tasks and three input kinds; `prepare` turns each into a Batch:
multiclass as probabilities (N, C), predicted classes (N) and targets (N); binary and
multilabel as probabilities (N, L) of the positive class, predictions (N, L) and targets (N, L),
binary being multilabel with L = 1. Left-out targets (ignore_index) are dropped (multiclass) or
weighted 0 (one label of a multilabel sample).
"""

from dataclasses import dataclass

import numpy as np
import torch

from service import checks
from service.errors import Invalid
from service.grades.params import InputKind, Shared, Task
from service.spec import Arrays

ROW_SUM_TOLERANCE = 1e-3
"""How far a row of multiclass probabilities may sum from 1."""


@dataclass(frozen=True, slots=True)
class Batch:
    task: Task
    scores: torch.Tensor | None
    """Probabilities: (N, C) multiclass, (N, L) binary and multilabel; None for predictions."""
    predicted: torch.Tensor
    """(N) class indices, or (N, L) booleans."""
    target: torch.Tensor
    """(N) class indices, or (N, L) 0/1 as int64."""
    weight: torch.Tensor | None
    """float64, (N), or (N, L) with left-out labels 0; None: every sample weighs 1."""
    logits: torch.Tensor | None
    """The input, where it holds logits (log loss takes them as they are)."""
    classes: int
    """C, or L."""


def classes(input: np.ndarray | torch.Tensor, shared: Shared) -> int:
    """C (multiclass: input's columns, or num_classes for predictions) or L (multilabel), 1
    for binary, 0 for regression."""
    if shared.task in ("multiclass", "multilabel"):
        return int(input.shape[1]) if input.ndim == 2 else int(shared.num_classes or 0)
    return 1 if shared.task == "binary" else 0


def supports(
    shared: Shared, name: str, tasks: tuple[Task, ...], kinds: tuple[InputKind, ...]
) -> None:
    """Whether metric `name`, which takes these tasks and input kinds, takes the request's."""
    if shared.task not in tasks:
        raise Invalid.at(
            ("task",),
            f"{name} grades the tasks {', '.join(tasks)}, not {shared.task}",
            "task_unsupported",
        )
    if shared.input_kind not in kinds:
        raise Invalid.at(
            ("input_kind",),
            f"{name} needs input_kind {' or '.join(kinds)}, not {shared.input_kind}",
            "input_kind_unsupported",
        )


def check(arrays: Arrays, shared: Shared, dtype: str) -> Arrays:
    """The rules of the task and the input kind for the tensors, once for every metric; the
    arrays with integer scores (logits or probabilities written as 0 and 1) and integer
    regression data as floats of the computation's dtype."""
    input, target = arrays["input"], arrays["target"]
    if shared.task == "regression":
        checks.same_shape("target", target, "input", input.shape)
        if shared.ignore_index is not None:
            raise Invalid.at(
                ("ignore_index",),
                "ignore_index leaves out class labels; regression targets are values, and"
                " none is left out (drop such samples, or give them sample_weight 0)",
                "ignore_index_regression",
            )
    elif shared.task == "multiclass":
        _multiclass(input, target, shared)
    else:
        _labels(input, target, shared)
    if "sample_weight" in arrays:
        weight = arrays["sample_weight"]
        if weight.shape != input.shape[:1]:
            raise Invalid.at(
                ("sample_weight",),
                f"sample_weight has shape {weight.shape}; it needs one weight per sample,"
                f" shape ({input.shape[0]},)",
                "shape_mismatch",
            )
        checks.at_least_zero("sample_weight", weight, "a sample's weight")
    floats = {"input"} if shared.input_kind != "predictions" else set()
    floats |= {"input", "target"} if shared.task == "regression" else set()
    return arrays | {
        name: arrays[name].astype(dtype) for name in floats if arrays[name].dtype.kind != "f"
    }


def _multiclass(input: np.ndarray, target: np.ndarray, shared: Shared) -> None:
    if shared.input_kind == "predictions":
        _rank(input, 1, "(N) class indices, for multiclass predictions")
        if shared.num_classes is None:
            raise Invalid.at(
                ("num_classes",),
                "num_classes is required for multiclass predictions: the input does not show it",
                "missing",
            )
        _indices("input", input, shared.num_classes, None)
    else:
        _rank(input, 2, "(N, C) for multiclass")
        found = int(input.shape[1])
        if found < 2:
            raise Invalid.at(
                ("input",),
                f"input has {found} class; multiclass needs at least 2",
                "too_few_classes",
            )
        if shared.num_classes is not None and shared.num_classes != found:
            raise Invalid.at(
                ("num_classes",),
                f"num_classes is {shared.num_classes} but input has {found} columns",
                "shape_mismatch",
            )
        if shared.input_kind == "probabilities":
            _probabilities(input, rows=True)
    checks.same_shape("target", target, "one class index per sample", input.shape[:1])
    _indices("target", target, classes(input, shared), shared.ignore_index)


def _indices(name: str, array: np.ndarray, classes: int, ignore_index: int | None) -> None:
    """Integers in [0, classes), or ignore_index."""
    checks.integers(name, array, "class index")
    rule = f"is not a class index in [0, {classes})"
    bad = (array < 0) | (array >= classes)
    if ignore_index is not None:
        rule += f" and is not ignore_index ({ignore_index})"
        bad &= array != ignore_index
    checks.reject_first(name, array, bad, rule, "class_index_out_of_range")


def _labels(input: np.ndarray, target: np.ndarray, shared: Shared) -> None:
    """binary (N) and multilabel (N, L): targets 0 or 1 (or ignore_index)."""
    if shared.task == "binary":
        _rank(input, 1, "(N) for binary")
    else:
        _rank(input, 2, "(N, L) for multilabel")
        if input.shape[1] < 2:
            raise Invalid.at(
                ("input",),
                f"input has {input.shape[1]} label; multilabel needs 2 or more (one label is"
                " task binary, with input and target (N))",
                "too_few_labels",
            )
    checks.same_shape("target", target, "input", input.shape)
    kept = target != shared.ignore_index if shared.ignore_index is not None else True
    rule = "is not a label, 0 or 1" + (
        f", and is not ignore_index ({shared.ignore_index})"
        if shared.ignore_index is not None
        else ""
    )
    checks.reject_first(
        "target", target, kept & (target != 0) & (target != 1), rule, "binary_label"
    )
    if shared.input_kind == "predictions":
        checks.reject_first(
            "input",
            input,
            (input != 0) & (input != 1),
            "is not a prediction, 0 or 1",
            "binary_label",
        )
    elif shared.input_kind == "probabilities":
        _probabilities(input, rows=False)


def _rank(input: np.ndarray, rank: int, shape: str) -> None:
    if input.ndim != rank:
        raise Invalid.at(
            ("input",),
            f"input has {input.ndim} dimensions (shape {input.shape}); expected {shape}",
            "rank",
        )


def _probabilities(input: np.ndarray, *, rows: bool) -> None:
    checks.probabilities("input", input)
    if not rows:
        return
    sums = input.sum(1, dtype=np.float64)
    far = np.abs(sums - 1) > ROW_SUM_TOLERANCE
    if far.any():
        row = int(np.argmax(far))
        raise Invalid.at(
            ("input", row),
            f"input[{row}] sums to {sums[row]:.6g}; each row of probabilities must sum to 1"
            f" (within {ROW_SUM_TOLERANCE:g}): send logits with input_kind logits",
            "probabilities_sum",
        )


def prepare(
    input: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None, shared: Shared
) -> Batch:
    """A checked classification input in one form (see the module's docstring)."""
    weight = None if sample_weight is None else sample_weight.to(torch.float64)
    logits = input if shared.input_kind == "logits" else None
    if shared.task == "multiclass":
        if shared.ignore_index is not None:
            kept = target != shared.ignore_index
            if not bool(kept.all()):
                input, target = input[kept], target[kept]
                weight = None if weight is None else weight[kept]
                logits = None if logits is None else logits[kept]
        if shared.input_kind == "predictions":
            scores, predicted = None, input.to(torch.int64)
        else:
            scores = torch.softmax(input, 1) if logits is not None else input
            predicted = scores.argmax(1)
        found = classes(input, shared)
        return Batch("multiclass", scores, predicted, target, weight, logits, found)
    if input.ndim == 1:  # binary: one label
        input, target = input.unsqueeze(1), target.unsqueeze(1)
        logits = None if logits is None else input
    if weight is not None:
        weight = weight.unsqueeze(1).expand(target.shape)
    if shared.ignore_index is not None:
        kept = target != shared.ignore_index
        if not bool(kept.all()):
            weight = kept.to(torch.float64) * (1.0 if weight is None else weight)
            target = torch.where(kept, target, 0)
    target = target.to(torch.int64)
    if shared.input_kind == "predictions":
        scores, predicted = None, input != 0
    else:
        scores = torch.sigmoid(input) if logits is not None else input
        predicted = scores > shared.threshold
    return Batch(shared.task, scores, predicted, target, weight, logits, int(input.shape[1]))
