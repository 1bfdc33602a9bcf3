"""Pictures of grades and label-quality scores, with matplotlib (the `[plot]` extra).

A grade's picture has one panel per table it holds: the reliability diagram (calibration),
the ROC and PR curves (macro average in bold, the weakest classes beside it), and the
confusion matrix, as a heat map up to 30 classes and as its most confused pairs beyond.
"""

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from loss_service_client._errors import InvalidCall
from loss_service_client._grades import Grades

MATRIX_CLASSES = 30
"""Up to this many classes the confusion matrix is drawn whole; beyond, its worst pairs."""
PAIRS = 20
CURVES = 5
"""The weakest classes drawn beside a curve's average."""
LABELLED = 10
"""The most suspect samples named in the label-quality close-up."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidCall(
            "--plot needs matplotlib: pip install 'loss-service-client[plot]'"
        ) from None
    return plt


PLOTTED = ("calibration_error", "auroc", "average_precision", "confusion_matrix")
NOTHING = "nothing to plot: --plot draws " + ", ".join(PLOTTED)


def check_plottable(metrics: Any) -> None:
    """InvalidCall unless the metrics asked for (names, or {key: {"metric": ...}}) include one
    that --plot draws; and matplotlib is there."""
    _pyplot()
    if isinstance(metrics, str):
        names = [m.strip() for m in metrics.split(",")]
    elif isinstance(metrics, dict):
        names = [str(v.get("metric", k)) if isinstance(v, dict) else k for k, v in metrics.items()]
    else:
        names = list(metrics)
    if not set(names) & set(PLOTTED):
        raise InvalidCall(NOTHING)


def grades(found: Grades, path: Path) -> list[str]:
    """Draws every panel the grades allow into `path` (classes by their names where the
    labels were names); the panels' names."""
    classes = found.classes
    plt = _pyplot()
    panels: list[tuple[str, Callable[[Any], None]]] = []
    for key, grade in found.items():
        if "reliability" in grade.tables:
            panels.append((f"reliability ({key})", partial(_reliability, grade=grade)))
        if "roc" in grade.tables:
            panels.append(
                (f"ROC ({key})", partial(_curve, grade=grade, which="roc", classes=classes))
            )
        if "pr" in grade.tables:
            panels.append(
                (
                    f"precision-recall ({key})",
                    partial(_curve, grade=grade, which="pr", classes=classes),
                )
            )
        if grade.metric == "confusion_matrix":
            panels.append((f"confusion ({key})", partial(_confusion, grade=grade, classes=classes)))
    if not panels:
        raise InvalidCall(NOTHING)
    columns = 3 if len(panels) == 3 else min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 5.5 * rows), squeeze=False)
    for ax, (title, draw) in zip(axes.flat, panels, strict=False):
        draw(ax)
        ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [title for title, _ in panels]


def _reliability(ax: Any, grade: Any) -> None:
    """Accuracy per confidence bin (bars as wide as the bin), each bin's mean confidence as a
    black tick, the gap between them hatched: red where the model is over-confident, green
    where under-confident. Each bar's foot gives its share of the samples. (Confidences of
    exactly 1, binned apart as torchmetrics bins them, are drawn in the top bin.)"""
    table = grade.tables["reliability"]
    count = np.asarray(table["count"], dtype=float)
    n_bins = len(count) - 1
    correct = np.nan_to_num(np.asarray(table["accuracy"], dtype=float)) * count
    confident = np.nan_to_num(np.asarray(table["confidence"], dtype=float)) * count
    for sums in (count, correct, confident):
        sums[n_bins - 1] += sums[n_bins]
    count, correct, confident = count[:n_bins], correct[:n_bins], confident[:n_bins]
    width = 1 / n_bins
    lower = np.arange(n_bins) * width
    kept = count > 0
    accuracy = correct[kept] / count[kept]
    confidence = confident[kept] / count[kept]
    left = lower[kept]
    # binary: the positive class's probability against the share of positives
    binary = grade.state["settings"]["task"] == "binary"
    observed = "share positive" if binary else "accuracy"
    above, below = ("too high", "too low") if binary else ("over-confident", "under-confident")
    ax.bar(left, accuracy, width, align="edge", color="#4C72B0", edgecolor="white", label=observed)
    over = confidence > accuracy
    # over-confidence lies above the bar, on white; under-confidence inside it, on blue,
    # where only a nearly opaque fill keeps the legend's colour
    gaps = ((over, "#E8A0A2", "#C44E52", above), (~over, "#8FD19E", "#3E8E50", below))
    for mask, color, edge, label in gaps:
        if mask.any():
            ax.bar(
                left[mask],
                np.abs(confidence - accuracy)[mask],
                width,
                bottom=np.minimum(confidence, accuracy)[mask],
                align="edge",
                color=color,
                alpha=0.9,
                hatch="//",
                edgecolor=edge,
                label=label,
            )
    mean = "mean probability" if binary else "mean confidence"
    ax.hlines(confidence, left, left + width, color="black", lw=1.5, label=mean)
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    share = count[kept] / max(count.sum(), 1)
    for x, part, height in zip(left, share, np.minimum(accuracy, confidence), strict=True):
        if part >= 0.005:
            ax.text(
                x + width / 2,
                0.01,
                f"{part:.0%}",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=6.5,
                color="white" if height > 0.12 else "#333333",
            )
    values = grade.values
    ax.text(
        0.03,
        0.95,
        f"ECE {values['ece']:.4f}\nMCE {values['mce']:.4f}\nRMS {values['rms']:.4f}",
        transform=ax.transAxes,
        va="top",
        fontsize=9,
        bbox={"fc": "white", "ec": "#cccccc"},
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel=f"{'probability of the positive class' if binary else 'confidence'}"
        " (at each bar's foot: its share of the samples)",
        ylabel=observed,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.8), fontsize=8)


def _curve(ax: Any, grade: Any, which: str, classes: Any) -> None:
    """Every class faint, the weakest CURVES classes named, the macro average in bold."""
    table = grade.tables[which]
    x_name, y_name = ("fpr", "tpr") if which == "roc" else ("recall", "precision")
    x, y = np.atleast_2d(table[x_name]), np.atleast_2d(table[y_name])
    score = np.atleast_1d(grade.tables["per_class"][grade.metric])
    for row in range(len(x)):
        ax.plot(x[row], y[row], color="#999999", lw=0.5, alpha=0.35)
    if len(x) > 1:
        for row in np.argsort(score)[: min(CURVES, len(x))]:
            ax.plot(x[row], y[row], lw=1.2, label=f"{_name(classes, row)}: {score[row]:.3f}")
    mean_x, mean_y = x.mean(0), y.mean(0)
    value = grade.values[grade.metric]
    label = f"{'macro ' if len(x) > 1 else ''}{grade.metric} {float(np.mean(value)):.4f}"
    ax.plot(mean_x, mean_y, color="black", lw=2.2, label=label)
    if which == "roc":
        ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=x_name, ylabel=y_name)
    ax.legend(loc="lower right" if which == "roc" else "best", fontsize=8)


def _labels(ax: Any, grade: Any, classes: Any) -> None:
    """Multilabel: each label's F1 as a bar (the weakest PAIRS labels, weakest at the top), its
    precision and recall as marks."""
    table = grade.tables["per_class"]
    f1 = np.asarray(table["f1"], dtype=float)
    order = np.argsort(f1, kind="stable")[:PAIRS][::-1]
    rows = np.arange(len(order))
    ax.barh(rows, f1[order], color="#4C72B0", label="F1")
    ax.plot(
        np.asarray(table["precision"])[order], rows, "o", color="#C44E52", ms=4, label="precision"
    )
    ax.plot(np.asarray(table["recall"])[order], rows, "s", color="#55A868", ms=4, label="recall")
    ax.set_yticks(rows, [_name(classes, int(i)) for i in order], fontsize=8)
    ax.set(xlim=(0, 1.3), xlabel="per label (the weakest at the top)")  # room for the legend
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.legend(loc="lower right", fontsize=8)


def _name(classes: Any, index: int) -> str:
    return str(classes[index]) if classes is not None else f"class {index}"


def _confusion(ax: Any, grade: Any, classes: Any) -> None:
    """A heat map of each row's shares up to MATRIX_CLASSES classes, the most confused pairs
    beyond; multilabel (a 2 x 2 matrix per label), each label's precision, recall and F1."""
    matrix = np.asarray(grade.state["arrays"]["matrix"], dtype=float)
    if matrix.ndim == 3:
        _labels(ax, grade, classes)
        return
    c = len(matrix)
    names = (
        [str(n) for n in classes]
        if classes is not None and len(classes) == c
        else [str(i) for i in range(c)]
    )
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    if c <= MATRIX_CLASSES:
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.figure.colorbar(image, ax=ax, fraction=0.046, label="share of the row (recall)")
        ticks = np.arange(c)
        long = c > 10 or max(map(len, names)) > 4
        ax.set_xticks(
            ticks, names, rotation=60 if long else 0, ha="right" if long else "center", fontsize=8
        )
        ax.set_yticks(ticks, names, fontsize=8)
        if c <= 12:
            for i in range(c):
                for j in range(c):
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black",
                    )
        ax.set(xlabel="predicted", ylabel="target")
        return
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    # the most confused first: by count, then by the share of the target's samples
    flat = np.lexsort((-share.ravel(), -off.ravel()))[:PAIRS]
    pairs = [
        (int(i), int(j))
        for i, j in zip(*np.unravel_index(flat, off.shape), strict=True)
        if off[i, j] > 0
    ]
    labels = [f"{names[i]} → {names[j]}" for i, j in pairs][::-1]
    counts = [off[i, j] for i, j in pairs][::-1]
    bars = ax.barh(range(len(pairs)), counts, color="#C44E52")
    for bar, (i, j) in zip(bars, pairs[::-1], strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {share[i, j]:.1%} of {names[i]}'s samples",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(range(len(pairs)), labels, fontsize=8)
    ax.set(xlabel="samples (target → predicted)", xlim=(0, max(counts, default=1) * 1.45))
    ax.text(
        0.99,
        0.01,
        f"{len(pairs)} most confused of {c} classes",
        transform=ax.transAxes,
        ha="right",
        fontsize=8,
        color="grey",
    )


def scores(values: np.ndarray, suspects: np.ndarray, name: str, path: Path) -> None:
    """Two panels: the histogram of one label-quality score over every sample (log scale),
    with the line under which the suspects fall; and the lowest scores close up, in order,
    the suspects in red, the lowest LABELLED listed by sample index."""
    plt = _pyplot()
    figure, (whole, close) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]}
    )
    finite = values[np.isfinite(values)]
    whole.hist(finite, bins=60, color="#4C72B0", alpha=0.85, label="all samples")
    whole.set_yscale("log")
    whole.set(xlabel=f"{name} (lower: more likely mislabelled)", ylabel="samples")
    whole.set_title(
        f"label quality: {name} of {len(values)} samples", loc="left", fontweight="bold"
    )
    if len(suspects):
        line = float(values[suspects].max())
        whole.axvline(line, color="#C44E52", ls="--", lw=1.2)
        whole.text(
            line,
            0.97,
            f"  the {len(suspects)} most suspect: <= {line:.4g}",
            transform=whole.get_xaxis_transform(),
            color="#C44E52",
            va="top",
            fontsize=9,
        )
    lowest = np.argsort(values, kind="stable")[: max(3 * len(suspects), 30)]
    rank = np.arange(len(lowest))
    marked = np.isin(lowest, suspects)
    close.scatter(
        rank[~marked], values[lowest][~marked], s=12, color="#4C72B0", label="next lowest"
    )
    close.scatter(rank[marked], values[lowest][marked], s=22, color="#C44E52", label="suspects")
    named = "\n".join(f"sample {i}: {values[i]:.4g}" for i in lowest[:LABELLED])
    close.text(
        0.03,
        0.97,
        f"lowest {LABELLED}:\n{named}",
        transform=close.transAxes,
        va="top",
        fontsize=7.5,
        family="monospace",
        bbox={"fc": "white", "ec": "#cccccc"},
    )
    close.set(xlabel="rank, lowest first", ylabel=name)
    close.set_title("the lowest scores, close up", loc="left", fontweight="bold")
    close.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
