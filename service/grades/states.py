"""Each metric's sufficient statistics of one batch, in torch on the batch's device: counts
and sums in float64 (exact for counts up to 2**53), whatever the computation's dtype.

Every state is a dict of named tensors whose merge values.MERGES declares. Log loss, MSE and
MAE take their per-sample values from the loss declarations (cross_entropy,
binary_cross_entropy[_with_logits], mse_loss, l1_loss), not from a second formula.
"""

import torch

from service.grades.inputs import Batch
from service.losses import REGISTRY

F64 = torch.float64
ROWS = 1 << 22
"""Elements of (rows, C) per block when binning for curves: bounds the int64 bin indices."""

State = dict[str, torch.Tensor]


def _count(index: torch.Tensor, weight: torch.Tensor | None, size: int) -> torch.Tensor:
    """The weight at each index in [0, size), in float64."""
    if weight is None:
        return torch.bincount(index, minlength=size).to(F64)
    return torch.bincount(index, weight.to(F64), minlength=size)


def _sum(values: torch.Tensor, weight: torch.Tensor | None, dim: int | None = None) -> torch.Tensor:
    """The weighted sum of values (over dim, or all), in float64."""
    values = values.to(F64)
    if weight is not None:
        values = values * weight
    return values.sum() if dim is None else values.sum(dim)


def stat_scores(batch: Batch, top_k: int = 1) -> State:
    """Per class: the weight of true positives, false positives, false negatives and true
    negatives. Multiclass, a class is predicted for a sample when it is among its top_k."""
    w = batch.weight
    if batch.task != "multiclass":
        target, predicted = batch.target.bool(), batch.predicted
        return {
            "tp": _sum(predicted & target, w, 0),
            "fp": _sum(predicted & ~target, w, 0),
            "fn": _sum(~predicted & target, w, 0),
            "tn": _sum(~predicted & ~target, w, 0),
        }
    c, target = batch.classes, batch.target
    if top_k == 1:
        chosen = batch.predicted.unsqueeze(1)
    else:
        assert batch.scores is not None  # checked: top_k > 1 takes scores
        chosen = batch.scores.topk(top_k, 1).indices
    hit = (chosen == target.unsqueeze(1)).any(1)
    tp = _count(target[hit], None if w is None else w[hit], c)
    support = _count(target, w, c)
    predicted = _count(chosen.reshape(-1), None if w is None else w.repeat_interleave(top_k), c)
    total = support.sum()
    fp, fn = _less(predicted, tp), _less(support, tp)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": _less(total, tp + fp + fn)}


def _less(whole: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """whole - part of weights summed apart: never below 0 (weighted sums in other orders
    can round to -1e-16, which a state may not hold)."""
    return (whole - part).clamp_(min=0)


def confusion(batch: Batch) -> State:
    """Multiclass: the (C, C) matrix, rows targets and columns predictions. Binary and
    multilabel: (L, 2, 2), per label [[tn, fp], [fn, tp]] (torchmetrics' layout)."""
    if batch.task == "multiclass":
        c = batch.classes
        index = batch.target * c + batch.predicted
        return {"matrix": _count(index, batch.weight, c * c).reshape(c, c)}
    s = stat_scores(batch)
    matrix = torch.stack([s["tn"], s["fp"], s["fn"], s["tp"]], 1).reshape(-1, 2, 2)
    return {"matrix": matrix}


def calibration(batch: Batch, n_bins: int) -> State:
    """Per bin of the top-1 confidence: its weight, the confidences' and the correct
    predictions' weighted sums. Bins [b_i, b_i+1) of linspace(0, 1, n_bins + 1), and one more
    for a confidence of exactly 1, as torchmetrics 1.9 bins (torch.bucketize, right=True).
    Binary: the confidence is the positive class's probability, correct is the target."""
    assert batch.scores is not None
    if batch.task == "multiclass":
        confidence, w = batch.scores.max(1).values, batch.weight
        correct = batch.predicted == batch.target
    else:
        confidence, correct = batch.scores[:, 0], batch.target[:, 0].bool()
        w = None if batch.weight is None else batch.weight[:, 0]
    edges = torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype, device=confidence.device)
    bins = torch.bucketize(confidence, edges, right=True) - 1
    confident, right = confidence.to(F64), correct.to(F64)
    if w is not None:
        confident, right = w * confident, w * right
    return {
        "count": _count(bins, w, n_bins + 1),
        "confidence": _count(bins, confident, n_bins + 1),
        "correct": _count(bins, right, n_bins + 1),
    }


def brier(batch: Batch) -> State:
    """The weighted sum of squared errors between the probabilities and the one-hot target,
    summed over classes (Brier 1950; 0 to 2 multiclass, 0 to 1 binary), and the weight."""
    assert batch.scores is not None
    p = batch.scores
    if batch.task == "multiclass":  # each sample's sum in the computation's dtype
        mine = p.gather(1, batch.target.unsqueeze(1)).squeeze(1)
        squares = (p * p).sum(1) - 2 * mine + 1
        return {"squares": _sum(squares, batch.weight), "weight": _total(batch)}
    squares = (p.to(F64) - batch.target.to(F64)) ** 2
    return {"squares": _sum(squares, batch.weight), "weight": _total(batch)}


def log_loss(batch: Batch) -> State:
    """The weighted sum of each sample's cross entropy (binary: of each label's), and the
    weight. Probabilities are clipped to [eps, 1 - eps] of their dtype, as scikit-learn's
    log_loss clips."""
    assert batch.scores is not None
    if batch.task == "multiclass":
        if batch.logits is not None:
            logits = batch.logits
        else:
            eps = torch.finfo(batch.scores.dtype).eps
            logits = batch.scores.clamp(eps, 1 - eps).log()
        loss = REGISTRY["cross_entropy"].call(logits, batch.target, reduction="none")
    elif batch.logits is not None:
        target = batch.target.to(batch.logits.dtype)
        call = REGISTRY["binary_cross_entropy_with_logits"].call
        loss = call(batch.logits, target, reduction="none")
    else:
        eps = torch.finfo(batch.scores.dtype).eps
        p = batch.scores.clamp(eps, 1 - eps)
        loss = REGISTRY["binary_cross_entropy"].call(p, batch.target.to(p.dtype), reduction="none")
    return {"loss": _sum(loss, batch.weight), "weight": _total(batch)}


def _total(batch: Batch) -> torch.Tensor:
    if batch.weight is not None:
        return batch.weight.sum()
    return torch.tensor(float(batch.target.numel()), dtype=F64, device=batch.target.device)


def curves(batch: Batch, thresholds: torch.Tensor) -> State:
    """One-vs-rest counts at fixed thresholds: tp and fp (T, C), the weight of each class's
    samples whose probability is >= the threshold among its positives and its negatives; and
    per class the weight of its positives and negatives.

    Each probability is binned once among the thresholds (torch.bucketize) and the bins
    counted, so the cost grows with log T, not T; rows go in blocks of ROWS elements."""
    assert batch.scores is not None
    scores, c = batch.scores, batch.classes
    t = thresholds.to(scores.dtype)
    size = c * (t.numel() + 1)
    positive = torch.zeros(size, dtype=F64, device=scores.device)
    every = torch.zeros_like(positive)
    int32 = size < 2**31  # half the memory traffic of int64 keys, where they fit
    key = torch.int32 if int32 else torch.int64
    offsets = torch.arange(c, dtype=key, device=scores.device) * (t.numel() + 1)
    step = max(1, ROWS // c)
    for start in range(0, scores.shape[0], step):
        rows = slice(start, start + step)
        keys = torch.bucketize(scores[rows], t, right=True, out_int32=int32) + offsets
        w = None if batch.weight is None else batch.weight[rows]
        target = batch.target[rows]
        if batch.task == "multiclass":
            every += _count(keys.reshape(-1), None if w is None else w.repeat_interleave(c), size)
            mine = keys.gather(1, target.unsqueeze(1)).squeeze(1)
            positive += _count(mine, w, size)
        else:
            every += _count(keys.reshape(-1), None if w is None else w.reshape(-1), size)
            hits = target.bool()
            positive += _count(keys[hits], None if w is None else w[hits], size)
    positive, negative = positive.reshape(c, -1), _less(every, positive).reshape(c, -1)
    # bin b holds the probabilities at or above b thresholds: >= threshold j for every b > j
    tp = positive.flip(1).cumsum(1).flip(1)[:, 1:]
    fp = negative.flip(1).cumsum(1).flip(1)[:, 1:]
    return {
        "tp": tp.T.contiguous(),
        "fp": fp.T.contiguous(),
        "positives": positive.sum(1),
        "negatives": negative.sum(1),
    }


def moments(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> State:
    """Regression: the weight n, the weighted means of predictions and targets, their centred
    second moments and co-moment, and the weighted sums of squared and absolute errors (from
    mse_loss and l1_loss). A weight per sample weighs each element of its row."""
    x, y = input.to(F64).reshape(input.shape[0], -1), target.to(F64).reshape(input.shape[0], -1)
    w = torch.ones_like(x) if weight is None else weight.to(F64).unsqueeze(1).expand_as(x)
    n = w.sum()
    divisor = n.clamp(min=torch.finfo(F64).tiny)  # all weights 0: every sum is 0, and so the means
    mean_x, mean_y = (w * x).sum() / divisor, (w * y).sum() / divisor
    dx, dy = x - mean_x, y - mean_y
    squared = REGISTRY["mse_loss"].call(input, target, reduction="none").reshape(x.shape)
    absolute = REGISTRY["l1_loss"].call(input, target, reduction="none").reshape(x.shape)
    return {
        "n": n,
        "mean_pred": mean_x,
        "mean_target": mean_y,
        "m2_pred": (w * dx * dx).sum(),
        "m2_target": (w * dy * dy).sum(),
        "comoment": (w * dx * dy).sum(),
        "sse": (w * squared.to(F64)).sum(),
        "sae": (w * absolute.to(F64)).sum(),
    }
