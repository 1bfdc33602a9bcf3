"""The metrics, each declared once: the tasks and inputs it takes, its parameters, its state's
arrays (their shapes and merges), how a batch becomes a state (service.grades.states, torch)
and a state its values and tables (service.grades.values, numpy), and its cost.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from service.errors import Invalid
from service.grades import states, values
from service.grades.inputs import Batch
from service.grades.params import (
    AccuracyParams,
    CalibrationParams,
    ConfusionParams,
    CurveParams,
    InputKind,
    NoParams,
    Task,
)
from service.spec import Params

CLASSIFICATION: tuple[Task, ...] = ("binary", "multiclass", "multilabel")
SCORES: tuple[InputKind, ...] = ("logits", "probabilities")
EVERY_KIND: tuple[InputKind, ...] = ("logits", "probabilities", "predictions")
Shapes = Callable[[int, Mapping[str, Any]], dict[str, tuple[int, ...]]]
"""shapes(classes, settings): each state array's shape."""


@dataclass(frozen=True)
class Data:
    """A request's tensors, with the classification Batch made once for all its metrics."""

    input: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor | None
    prepare: Callable[[], Batch]

    @cached_property
    def batch(self) -> Batch:
        return self.prepare()


@dataclass(frozen=True, eq=False)
class Metric:
    name: str
    summary: str
    reference: str
    tasks: tuple[Task, ...]
    kinds: tuple[InputKind, ...]
    params: type[Params]
    """Its own parameters, beside the shared ones (service.grades.params.Shared)."""
    merges: Mapping[str, values.Merge]
    """Each state array's merge, in the state's order."""
    shapes: Shapes
    state: Callable[[Data, Any], states.State]
    finalize: values.Finalize
    values: tuple[str, ...]
    """The values it gives, by name."""
    passes: float
    """Its cost in passes over the input's elements (spec.NS_PER_ELEMENT each)."""
    check: Callable[[int, Any, Any], None] = lambda classes, shared, own: None
    """check(classes, shared, own): rules between its parameters and the data's shape."""
    only: Mapping[str, tuple[Task, ...]] = field(default_factory=dict)
    """Values given for some tasks alone, with those tasks."""
    signed: frozenset[str] = frozenset()
    """State arrays that may be negative (means, co-moments); every other is >= 0."""

    def values_of(self, task: str) -> tuple[str, ...]:
        """The values it gives for a task."""
        return tuple(v for v in self.values if task in self.only.get(v, (task,)))

    def entry(self) -> dict[str, Any]:
        """What the catalogue says of its state."""
        return {
            "tasks": list(self.tasks),
            "input_kinds": list(self.kinds),
            "values": list(self.values),
            "state": {name: {"merge": how} for name, how in self.merges.items()},
            "formula": (self.finalize.__doc__ or "").strip().replace("\n    ", " "),
        }


def _per_class(classes: int, settings: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return dict.fromkeys(("tp", "fp", "fn", "tn"), (classes,))


def _matrix(classes: int, settings: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {"matrix": (classes, classes) if settings["task"] == "multiclass" else (classes, 2, 2)}


def _bins(classes: int, settings: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return dict.fromkeys(("count", "confidence", "correct"), (settings["n_bins"] + 1,))


def _sums(*names: str) -> Shapes:
    return lambda classes, settings: dict.fromkeys(names, ())


def _curves(classes: int, settings: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    t = settings["thresholds"]
    count = t if isinstance(t, int) else len(t)
    return {"tp": (count, classes), "fp": (count, classes)} | dict.fromkeys(
        ("positives", "negatives"), (classes,)
    )


def _top_k(classes: int, shared: Any, own: Any) -> None:
    if own.top_k == 1:
        return
    if shared.task != "multiclass" or shared.input_kind == "predictions":
        raise Invalid.at(
            ("top_k",),
            f"top_k = {own.top_k} needs multiclass logits or probabilities: it ranks classes",
            "top_k_unsupported",
        )
    if own.top_k > classes:
        raise Invalid.at(
            ("top_k",), f"top_k = {own.top_k} is more than the {classes} classes", "top_k_range"
        )


def _thresholds(data: Data, given: int | list[float]) -> torch.Tensor:
    """The curve thresholds in the scores' dtype (torch.linspace for a count, as torchmetrics)."""
    scores = data.batch.scores
    assert scores is not None
    if isinstance(given, int):
        return torch.linspace(0, 1, given, dtype=scores.dtype, device=scores.device)
    return torch.tensor(given, dtype=scores.dtype, device=scores.device)


def _curves_metric(name: str, summary: str, reference: str, finalize: values.Finalize) -> Metric:
    """AUROC and AP: one state, the one-vs-rest counts at fixed thresholds."""
    return Metric(
        name=name,
        summary=summary,
        reference=reference,
        tasks=CLASSIFICATION,
        kinds=SCORES,
        params=CurveParams,
        merges=dict.fromkeys(("tp", "fp", "positives", "negatives"), "sum"),
        shapes=_curves,
        state=lambda data, own: states.curves(data.batch, _thresholds(data, own.thresholds)),
        finalize=finalize,
        values=(name,),
        passes=8,
    )


MOMENTS: Mapping[str, values.Merge] = {
    "n": "sum",
    "mean_pred": "moments",
    "mean_target": "moments",
    "m2_pred": "moments",
    "m2_target": "moments",
    "comoment": "moments",
    "sse": "sum",
    "sae": "sum",
}

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            name="accuracy",
            summary="Accuracy, and top-k accuracy: micro (correct over all samples) by default,"
            " or per class and averaged.",
            reference="torchmetrics.functional.classification.accuracy",
            tasks=CLASSIFICATION,
            kinds=EVERY_KIND,
            params=AccuracyParams,
            merges=dict.fromkeys(("tp", "fp", "fn", "tn"), "sum"),
            shapes=_per_class,
            state=lambda data, own: states.stat_scores(data.batch, own.top_k),
            finalize=values.accuracy,
            values=("accuracy",),
            passes=2,
            check=_top_k,
        ),
        Metric(
            name="confusion_matrix",
            summary="The confusion matrix, and from it precision, recall and F1 (per class and"
            " averaged), Cohen's kappa and the Matthews correlation.",
            reference="sklearn.metrics.confusion_matrix, precision_recall_fscore_support,"
            " cohen_kappa_score, matthews_corrcoef",
            tasks=CLASSIFICATION,
            kinds=EVERY_KIND,
            params=ConfusionParams,
            merges={"matrix": "sum"},
            shapes=_matrix,
            state=lambda data, own: states.confusion(data.batch),
            finalize=values.confusion,
            values=("precision", "recall", "f1", "cohen_kappa", "matthews_corrcoef"),
            passes=2,
            only=dict.fromkeys(("cohen_kappa", "matthews_corrcoef"), ("binary", "multiclass")),
        ),
        Metric(
            name="calibration_error",
            summary="Calibration error of the top-1 confidence in equal bins (ECE, MCE, RMS),"
            " and the reliability table.",
            reference="torchmetrics.functional.classification.calibration_error",
            tasks=("binary", "multiclass"),
            kinds=SCORES,
            params=CalibrationParams,
            merges=dict.fromkeys(("count", "confidence", "correct"), "sum"),
            shapes=_bins,
            state=lambda data, own: states.calibration(data.batch, own.n_bins),
            finalize=values.calibration,
            values=("calibration_error", "ece", "mce", "rms"),
            passes=3,
        ),
        Metric(
            name="brier_score",
            summary="The Brier score: the mean over samples of the squared distance between"
            " the probabilities and the one-hot target, summed over classes (Brier 1950).",
            reference="sklearn.metrics.brier_score_loss (multiclass: scale_by_half=False)",
            tasks=("binary", "multiclass"),
            kinds=SCORES,
            params=NoParams,
            merges={"squares": "sum", "weight": "sum"},
            shapes=_sums("squares", "weight"),
            state=lambda data, own: states.brier(data.batch),
            finalize=values.brier,
            values=("brier_score",),
            passes=3,
        ),
        Metric(
            name="log_loss",
            summary="Log loss: the mean cross entropy of the probabilities (or logits) against"
            " the targets, from the cross_entropy and binary_cross_entropy declarations.",
            reference="sklearn.metrics.log_loss",
            tasks=("binary", "multiclass"),
            kinds=SCORES,
            params=NoParams,
            merges={"loss": "sum", "weight": "sum"},
            shapes=_sums("loss", "weight"),
            state=lambda data, own: states.log_loss(data.batch),
            finalize=values.log_loss,
            values=("log_loss",),
            passes=3,
        ),
        _curves_metric(
            "auroc",
            "Area under the ROC curve, binned at fixed thresholds (one-vs-rest), and the curves.",
            "torchmetrics.functional.classification.auroc (thresholds=...)",
            values.auroc,
        ),
        _curves_metric(
            "average_precision",
            "Average precision, binned at fixed thresholds (one-vs-rest), and the"
            " precision-recall curves.",
            "torchmetrics.functional.classification.average_precision (thresholds=...)",
            values.average_precision,
        ),
        Metric(
            name="regression",
            summary="MSE, MAE (from the mse_loss and l1_loss declarations), R2 and Pearson's r"
            " of predictions against targets, every element one observation.",
            reference="sklearn.metrics.mean_squared_error, mean_absolute_error, r2_score;"
            " scipy.stats.pearsonr",
            tasks=("regression",),
            kinds=("predictions",),
            params=NoParams,
            merges=MOMENTS,
            signed=frozenset(("mean_pred", "mean_target", "comoment")),
            shapes=_sums(
                "n", "mean_pred", "mean_target", "m2_pred", "m2_target", "comoment", "sse", "sae"
            ),
            state=lambda data, own: states.moments(data.input, data.target, data.weight),
            finalize=values.regression,
            values=("mse", "mae", "r2", "pearson"),
            passes=6,
        ),
    )
}
