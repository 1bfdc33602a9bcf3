"""States, their merge, and the one formula from a state to each metric's values and tables.

A State is what an answer carries: the metric, the settings it was computed with, and named
float64 arrays. Two states merge only where metric and settings are equal; each array merges
as MERGES declares: "sum" elementwise, or "moments", Chan, Golub and LeVeque's pairwise update
of weighted means and centred (co)moments (raw power sums would lose the digits of data with a
large offset, y = 1e6 +- 1). The client merges nothing itself: POST /v1/grades/finalize merges
states and applies these formulas, so there is one copy of each.

Undefined ratios follow torchmetrics and scikit-learn: a precision, recall or rate over no
samples is 0; a value over no weight at all is NaN (null in JSON, with a warning).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Merge = Literal["sum", "moments"]
Arrays = dict[str, np.ndarray]
Values = dict[str, np.ndarray]
Tables = dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True)
class State:
    metric: str
    settings: Mapping[str, Any]
    arrays: Arrays


def merge(states: Sequence[State], merges: Mapping[str, Merge]) -> State:
    """The states of parts as the whole's (states[0] alone when there is one). The caller has
    checked that their metric and settings are equal."""
    first = states[0]
    arrays = dict(first.arrays)
    for other in states[1:]:
        arrays = _merge(arrays, other.arrays, merges)
    return State(first.metric, first.settings, arrays)


def _merge(a: Arrays, b: Arrays, merges: Mapping[str, Merge]) -> Arrays:
    merged = {name: a[name] + b[name] for name, how in merges.items() if how == "sum"}
    if "moments" not in merges.values():
        return merged
    na, nb = a["n"], b["n"]
    n = na + nb
    share = na * nb / n if n > 0 else 0.0
    part = nb / n if n > 0 else 0.0
    dx = b["mean_pred"] - a["mean_pred"]
    dy = b["mean_target"] - a["mean_target"]
    return merged | {
        "mean_pred": a["mean_pred"] + dx * part,
        "mean_target": a["mean_target"] + dy * part,
        "m2_pred": a["m2_pred"] + b["m2_pred"] + dx * dx * share,
        "m2_target": a["m2_target"] + b["m2_target"] + dy * dy * share,
        "comoment": a["comoment"] + b["comoment"] + dx * dy * share,
    }


def _divide(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, 0 where bottom is 0 (torchmetrics' _safe_divide)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom != 0, top / np.where(bottom != 0, bottom, 1), 0.0)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, NaN where bottom is 0: a value over no weight."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.float64(top) / np.float64(bottom))


def _average(score: np.ndarray, average: str, weights: np.ndarray) -> np.ndarray:
    """Per-class scores averaged with these weights (ones for macro, support for weighted);
    'none' keeps them all."""
    if average == "none":
        return score
    return np.asarray(_divide((weights * score).sum(), weights.sum()))


def _macro_weights(s: Mapping[str, Any], a: Arrays, *, top_k: int = 1) -> np.ndarray:
    """Ones, but 0 for a class that no sample has as target or prediction (multiclass), as
    torchmetrics and scikit-learn leave it out of macro; every label counts for multilabel."""
    tp, fp, fn = a["tp"], a["fp"], a["fn"]
    if s["task"] != "multiclass":
        return np.ones_like(tp)
    absent = (tp + fp + fn == 0) if top_k == 1 else (tp + fn == 0)
    return np.where(absent, 0.0, 1.0)


def _weights(s: Mapping[str, Any], a: Arrays, average: str, top_k: int = 1) -> np.ndarray:
    return a["tp"] + a["fn"] if average == "weighted" else _macro_weights(s, a, top_k=top_k)


# accuracy


def accuracy(state: State) -> tuple[Values, Tables]:
    """multiclass: tp / (tp + fn) per class (a recall; micro: all correct over all samples).
    binary and multilabel: (tp + tn) / all, per label."""
    s, a = state.settings, state.arrays
    tp, fp, fn, tn = a["tp"], a["fp"], a["fn"], a["tn"]
    if s["task"] == "multiclass":
        per_class, micro = _divide(tp, tp + fn), _ratio(tp.sum(), (tp + fn).sum())
    else:
        per_class = _divide(tp + tn, tp + tn + fp + fn)
        micro = _ratio((tp + tn).sum(), (tp + tn + fp + fn).sum())
    average = s["average"]
    value = (
        micro
        if average == "micro"
        else _average(per_class, average, _weights(s, a, average, s["top_k"]))
    )
    table = {"accuracy": per_class, "support": tp + fn}
    return {"accuracy": value}, {"per_class": table}


# the confusion matrix, and what it gives


def _stat_scores(s: Mapping[str, Any], matrix: np.ndarray) -> Arrays:
    if s["task"] == "multiclass":
        tp = np.diag(matrix)
        return {"tp": tp, "fp": matrix.sum(0) - tp, "fn": matrix.sum(1) - tp}
    return {"tp": matrix[:, 1, 1], "fp": matrix[:, 0, 1], "fn": matrix[:, 1, 0]}


def confusion(state: State) -> tuple[Values, Tables]:
    """precision tp / (tp + fp), recall tp / (tp + fn), F1 2 tp / (2 tp + fp + fn), each per
    class and averaged; micro from the summed counts. Binary and multiclass also give Cohen's
    kappa and the Matthews correlation (Gorodkin's R_K), from the (C, C) matrix."""
    s, matrix = state.settings, state.arrays["matrix"]
    c = _stat_scores(s, matrix)
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    table = {
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
        "support": tp + fn,
    }
    average = s["average"]
    if average == "micro":
        t, p, n = tp.sum(), fp.sum(), fn.sum()
        values = {
            "precision": _divide(t, t + p),
            "recall": _divide(t, t + n),
            "f1": _divide(2 * t, 2 * t + p + n),
        }
    else:
        weights = _weights(s, c, average)
        values = {
            name: _average(table[name], average, weights) for name in ("precision", "recall", "f1")
        }
    if s["task"] != "multilabel":
        square = matrix if s["task"] == "multiclass" else matrix[0][::-1, ::-1]
        values |= {"cohen_kappa": _kappa(square), "matthews_corrcoef": _matthews(square)}
    return {name: np.asarray(v) for name, v in values.items()}, {"per_class": table}


def _kappa(matrix: np.ndarray) -> np.ndarray:
    total = matrix.sum()
    observed = _ratio(np.trace(matrix), total)
    expected = _ratio((matrix.sum(0) * matrix.sum(1)).sum(), total**2)
    return _ratio(observed - expected, 1 - expected)


def _matthews(matrix: np.ndarray) -> np.ndarray:
    """As scikit-learn: 0 where a marginal is constant."""
    total, correct = matrix.sum(), np.trace(matrix)
    predicted, actual = matrix.sum(0), matrix.sum(1)
    covariance = correct * total - (predicted * actual).sum()
    # each factor is >= 0, 0 where every sample has one prediction (or one target); weighted
    # sums can round it to -1e-16, whose root would be NaN
    spread = max(total**2 - (predicted**2).sum(), 0.0) * max(total**2 - (actual**2).sum(), 0.0)
    return _divide(covariance, np.sqrt(spread))


# calibration


def calibration(state: State) -> tuple[Values, Tables]:
    """Per bin b with weight share s_b, gap_b = |mean confidence - accuracy|: ECE sum s_b
    gap_b (l1), MCE max gap_b (max), RMS sqrt(sum s_b gap_b^2) (l2); `calibration_error` is
    the one `norm` names."""
    a = state.arrays
    count = a["count"]
    kept = count > 0
    share = count[kept] / count.sum() if kept.any() else count[kept]
    gap = np.abs(a["confidence"][kept] - a["correct"][kept]) / count[kept]
    nan = np.asarray(np.nan)
    norms = {
        "l1": np.asarray((gap * share).sum()) if kept.any() else nan,
        "max": np.asarray(gap.max()) if kept.any() else nan,
        "l2": np.asarray(np.sqrt((gap**2 * share).sum())) if kept.any() else nan,
    }
    values = {
        "calibration_error": norms[state.settings["norm"]],
        "ece": norms["l1"],
        "mce": norms["max"],
        "rms": norms["l2"],
    }
    n_bins = state.settings["n_bins"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table = {
            "lower": np.append(np.linspace(0, 1, n_bins + 1)[:-1], 1.0),
            "count": count,
            "confidence": a["confidence"] / count,
            "accuracy": a["correct"] / count,
        }
    return values, {"reliability": table}


def brier(state: State) -> tuple[Values, Tables]:
    return {"brier_score": _ratio(state.arrays["squares"], state.arrays["weight"])}, {}


def log_loss(state: State) -> tuple[Values, Tables]:
    return {"log_loss": _ratio(state.arrays["loss"], state.arrays["weight"])}, {}


# binned curves


def thresholds(settings: Mapping[str, Any]) -> np.ndarray:
    """The thresholds: a count spread evenly over [0, 1], or the list."""
    given = settings["thresholds"]
    if isinstance(given, int):
        return np.linspace(0, 1, given)
    return np.asarray(given, dtype=np.float64)


def _rates(state: State) -> Arrays:
    """Each class's curves (C, T), thresholds ascending."""
    a = state.arrays
    tp, fp = a["tp"].T, a["fp"].T
    positives, negatives = a["positives"][:, None], a["negatives"][:, None]
    return {
        "tpr": _divide(tp, positives),
        "fpr": _divide(fp, negatives),
        "precision": _divide(tp, tp + fp),
    }


def _averaged(state: State, per_class: np.ndarray) -> np.ndarray:
    average = state.settings["average"]
    if average == "none" or per_class.size == 1:
        return per_class if average == "none" else np.asarray(per_class[0])
    kept = ~np.isnan(per_class)
    weights = state.arrays["positives"] if average == "weighted" else np.ones_like(per_class)
    return np.asarray(_divide((per_class[kept] * weights[kept]).sum(), weights[kept].sum()))


def auroc(state: State) -> tuple[Values, Tables]:
    """Per class the area under the binned ROC curve (trapezoids, thresholds descending);
    macro or weighted by positives over classes, as torchmetrics."""
    r = _rates(state)
    fpr, tpr = r["fpr"][:, ::-1], r["tpr"][:, ::-1]
    areas = np.trapezoid(tpr, fpr, axis=1)
    table = {"thresholds": thresholds(state.settings), "fpr": r["fpr"], "tpr": r["tpr"]}
    return {"auroc": _averaged(state, areas)}, {"roc": table, "per_class": {"auroc": areas}}


def average_precision(state: State) -> tuple[Values, Tables]:
    """Per class -sum (R_{j+1} - R_j) P_j over the thresholds ascending, with (R, P) = (0, 1)
    appended, as torchmetrics' binned average precision."""
    r = _rates(state)
    precision = np.concatenate([r["precision"], np.ones((len(r["tpr"]), 1))], 1)
    recall = np.concatenate([r["tpr"], np.zeros((len(r["tpr"]), 1))], 1)
    ap = -((recall[:, 1:] - recall[:, :-1]) * precision[:, :-1]).sum(1)
    table = {
        "thresholds": thresholds(state.settings),
        "precision": r["precision"],
        "recall": r["tpr"],
    }
    return {"average_precision": _averaged(state, ap)}, {
        "pr": table,
        "per_class": {"average_precision": ap},
    }


def regression(state: State) -> tuple[Values, Tables]:
    """mse = sse / n, mae = sae / n, r2 = 1 - sse / m2_target (1 or 0 where the target is
    constant, as scikit-learn), pearson = comoment / sqrt(m2_pred m2_target)."""
    a = state.arrays
    if a["m2_target"] > 0:
        r2 = np.asarray(1 - a["sse"] / a["m2_target"])
    else:
        r2 = np.asarray(1.0 if a["sse"] == 0 else 0.0)
    values = {
        "mse": _ratio(a["sse"], a["n"]),
        "mae": _ratio(a["sae"], a["n"]),
        "r2": np.asarray(r2) if a["n"] > 0 else np.asarray(np.nan),
        "pearson": _ratio(a["comoment"], np.sqrt(a["m2_pred"] * a["m2_target"])),
    }
    return values, {}


Finalize = Callable[[State], tuple[Values, Tables]]
