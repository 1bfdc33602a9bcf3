"""A grade's parameters: those every metric shares (the task, the input's kind, the classes),
and each metric's own. Names follow torchmetrics where it has them; defaults are chosen and
written down in docs/grades.md, not inherited."""

import itertools
import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from service.spec import Int64, Params

Task = Literal["binary", "multiclass", "multilabel", "regression"]
InputKind = Literal["logits", "probabilities", "predictions"]
Average = Literal["micro", "macro", "weighted", "none"]
CurveAverage = Literal["macro", "weighted", "none"]
Norm = Literal["l1", "l2", "max"]
MAX_BINS = 10_000
"""The most calibration bins or curve thresholds a state may have."""


class Shared(Params):
    """What every metric of a request shares: the data's task and form."""

    task: Task
    """binary: input (N), target (N) in {0, 1}; multiclass: input (N, C), or (N) with
    predictions, target (N) class indices; multilabel: input and target (N, L), target in
    {0, 1}; regression: input and target of one shape."""
    input_kind: InputKind
    """What input holds: logits (softmax or sigmoid is applied), probabilities (used as
    they are), or predictions (class indices, 0/1 labels, or regression values). Never
    guessed."""
    num_classes: Annotated[int, Field(ge=2, le=1 << 20)] | None = None
    """C, or L for multilabel: taken from input's shape when null; required for multiclass
    predictions, where the input does not show it."""
    ignore_index: Int64 | None = None
    """Targets equal to it are left out (a whole sample, or one label of a multilabel one)."""
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    """binary and multilabel: a probability above it predicts the positive class (as
    torchmetrics: p > threshold; with logits, sigmoid(logit) > threshold)."""


class AccuracyParams(Params):
    top_k: Annotated[int, Field(ge=1)] = 1
    """multiclass: a sample counts as correct when its target is among the k most probable."""
    average: Average = "micro"
    """micro: correct over all samples (torchmetrics defaults to macro; micro is what
    'accuracy' means to most people). macro: the mean of per-class accuracies; weighted: by
    support; none: one per class."""


class ConfusionParams(Params):
    average: Average = "macro"
    """How precision, recall and F1 are averaged over classes (as scikit-learn: classes with
    no true and no predicted sample are left out of macro)."""


class CalibrationParams(Params):
    n_bins: Annotated[int, Field(ge=1, le=MAX_BINS)] = 15
    """Equal-width bins of the top-1 confidence in [0, 1]."""
    norm: Norm = "l1"
    """l1: expected calibration error (ECE); max: maximum (MCE); l2: root mean square (RMS)."""


class CurveParams(Params):
    thresholds: int | list[float] = 100
    """The probability thresholds of the binned curves: a count, spread evenly over [0, 1]
    (torch.linspace), or a list, ascending, in [0, 1]. Fixed thresholds are what lets curves
    of parts merge; exact curves do not."""
    average: CurveAverage = "macro"
    """Over classes (or labels): macro, weighted by positives, or none (one per class)."""

    @field_validator("thresholds", mode="before")
    @classmethod
    def _split(cls, thresholds: Any) -> Any:
        """/v2 parameters are scalars: a list comes as "0.1,0.5,0.9"."""
        if isinstance(thresholds, str):
            try:
                return [float(item) for item in thresholds.split(",")]
            except ValueError:
                raise ValueError(
                    "thresholds must be a count, or numbers separated by commas"
                ) from None
        return thresholds

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, thresholds: int | list[float]) -> int | list[float]:
        if isinstance(thresholds, int):
            if not 2 <= thresholds <= MAX_BINS:
                raise ValueError(f"a count of thresholds is 2 to {MAX_BINS}, not {thresholds}")
            return thresholds
        if not 1 <= len(thresholds) <= MAX_BINS:
            raise ValueError(f"thresholds holds {len(thresholds)} values; 1 to {MAX_BINS} may be")
        for index, (low, high) in enumerate(itertools.pairwise(thresholds)):
            if not low < high:
                raise ValueError(f"thresholds[{index + 1}] = {high} is not above {low}")
        if thresholds[0] < 0 or thresholds[-1] > 1:
            raise ValueError("thresholds must lie in [0, 1]")
        return thresholds


class NoParams(Params):
    pass


def metrics_mapping(value: Any) -> Any:
    """/v2's `metrics` parameter is a string: JSON text of the mapping, or names with commas."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("metrics is not JSON text of an object") from None
    return [name.strip() for name in text.split(",")]
