"""Label-quality scores, declared like a loss: one pass over the logits gives every sample's
scores and its predicted class.

The reference is cleanlab (`cleanlab.rank.get_label_quality_scores` on softmax probabilities,
`cleanlab.multilabel_classification.get_label_quality_scores` on sigmoid ones): lower means
more likely mislabelled.
"""

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from service import checks
from service.errors import Invalid
from service.spec import Arrays, Options, Params, Spec, TensorSpec, registry

ScoreName = Literal[
    "self_confidence",
    "normalized_margin",
    "confidence_weighted_entropy",
    "entropy",
    "cross_entropy",
]
SCORES: tuple[ScoreName, ...] = (
    "self_confidence",
    "normalized_margin",
    "confidence_weighted_entropy",
    "entropy",
    "cross_entropy",
)
DEFAULT: tuple[ScoreName, ...] = SCORES[:3]
CLIP = 1e-6
"""cleanlab's CLIPPING_LOWER_BOUND, in confidence_weighted_entropy."""
EMA_ALPHA = 0.8
"""cleanlab's default multi-label aggregation: an exponential moving average, alpha 0.8."""


def _default_scores() -> list[ScoreName]:
    return list(DEFAULT)


class LabelQualityParams(Params):
    scores: list[ScoreName] = Field(default_factory=_default_scores, min_length=1)
    """Scores to compute: a list, or on /v2 a comma-separated string, of the score names."""
    multi_label: bool = False
    """target is (N, C) in {0, 1} and the probabilities are sigmoids, not a softmax."""

    @field_validator("scores", mode="before")
    @classmethod
    def _split(cls, scores: Any) -> Any:
        """/v2 parameters are strings, numbers or booleans: "entropy,cross_entropy" (spaces
        around a comma allowed)."""
        return [name.strip() for name in scores.split(",")] if isinstance(scores, str) else scores

    @field_validator("scores")
    @classmethod
    def _once_each(cls, scores: list[ScoreName]) -> list[ScoreName]:
        for name in scores:
            if scores.count(name) > 1:
                raise ValueError(f"'{name}' is listed {scores.count(name)} times")
        return scores


def label_quality(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    scores: list[ScoreName],
    multi_label: bool = False,
) -> dict[str, torch.Tensor]:
    """Each sample's scores, then `predicted`.

    input: logits (N, C). target: class indices (N), or with multi_label 0/1 labels (N, C).
    Multi-class, with p = softmax(input) and y the label:
      self_confidence = p_y; normalized_margin = (p_y - max_{k != y} p_k + 1) / 2;
      entropy = -sum_k p_k log p_k / log C; cross_entropy = -log p_y;
      confidence_weighted_entropy = log(r + 1) / max(r, 1e-6), r = entropy / max(p_y, 1e-6).
    Multi-label, each class k is a binary problem with q_k = sigmoid(input_k) if y_k else
    1 - q_k; the cleanlab scores are per class, then aggregated by cleanlab's exponential
    moving average over the scores sorted from high to low; entropy and cross_entropy are the
    means over the classes. predicted: argmax (N), or with multi_label input > 0 (N, C).
    """
    if multi_label:
        return _multi_label(input, target, scores)
    log_p = F.log_softmax(input, dim=1)
    p = log_p.exp()
    index = target.unsqueeze(1)
    self_confidence = p.gather(1, index).squeeze(1)
    found: dict[str, torch.Tensor] = {}
    entropy = -(p * log_p).sum(1) / math.log(input.shape[1])
    for name in scores:
        if name == "self_confidence":
            found[name] = self_confidence
        elif name == "normalized_margin":
            others = p.scatter(1, index, -math.inf).amax(1)
            found[name] = (self_confidence - others + 1) / 2
        elif name == "confidence_weighted_entropy":
            found[name] = _weighted_entropy(entropy, self_confidence)
        elif name == "entropy":
            found[name] = entropy
        else:
            found[name] = -log_p.gather(1, index).squeeze(1)
    return found | {"predicted": input.argmax(1)}


def _multi_label(
    input: torch.Tensor, target: torch.Tensor, scores: list[ScoreName]
) -> dict[str, torch.Tensor]:
    signed = torch.where(target > 0, input, -input)
    q = torch.sigmoid(signed)  # the probability of each given label, computed stably
    log_q, log_not_q = F.logsigmoid(signed), F.logsigmoid(-signed)
    entropy = -(q * log_q + (1 - q) * log_not_q) / math.log(2)
    found: dict[str, torch.Tensor] = {}
    for name in scores:
        if name in ("self_confidence", "normalized_margin"):
            found[name] = _ema(q)  # with two classes the normalized margin is q itself
        elif name == "confidence_weighted_entropy":
            found[name] = _ema(_weighted_entropy(entropy, q))
        elif name == "entropy":
            found[name] = entropy.mean(1)
        else:
            found[name] = -log_q.mean(1)
    return found | {"predicted": (input > 0).to(torch.int64)}


def _weighted_entropy(entropy: torch.Tensor, self_confidence: torch.Tensor) -> torch.Tensor:
    ratio = entropy / self_confidence.clamp(min=CLIP)
    return torch.log(ratio + 1) / ratio.clamp(min=CLIP)


def _ema(per_class: torch.Tensor) -> torch.Tensor:
    """cleanlab's exponential_moving_average over classes, closed form: with s sorted from
    high to low, EMA = (1 - a)^(K-1) s_1 + sum_{t >= 2} a (1 - a)^(K-t) s_t."""
    s = per_class.sort(dim=1, descending=True).values
    classes = s.shape[1]
    powers = (1 - EMA_ALPHA) ** torch.arange(classes - 1, -1, -1, dtype=s.dtype, device=s.device)
    weights = torch.cat([powers[:1], EMA_ALPHA * powers[1:]])
    return s @ weights


def _check(t: Arrays, p: LabelQualityParams, o: Options) -> Arrays | None:
    input, target = t["input"], t["target"]
    classes = input.shape[1]
    if p.multi_label:
        checks.same_shape("target", target, "input", input.shape)
        checks.reject_first(
            "target",
            target,
            (target != 0) & (target != 1),
            "is not a label, 0 or 1",
            "binary_label",
        )
        return None
    if classes < 2:
        raise Invalid.at(
            ("input",),
            f"input has {classes} class; label quality compares classes and needs at least 2",
            "too_few_classes",
        )
    checks.class_indices(target, input)
    return None


class ScoreSpec(Spec):
    """A pass that gives several results: each score asked for, then `predicted`."""

    def outputs(self) -> dict[str, int]:
        return dict.fromkeys((*SCORES, "predicted"), 1)

    def produced(self, params: Any, options: Any) -> list[str]:
        return [*params.scores, "predicted"]


SPECS = registry(
    (
        ScoreSpec(
            name="label_quality",
            summary="Per-sample label-quality scores of logits against labels (cleanlab's),"
            " and each sample's predicted class.",
            reference="cleanlab.rank.get_label_quality_scores,"
            " cleanlab.multilabel_classification.get_label_quality_scores",
            tensors=(
                TensorSpec("input", "logits", "(N, C)", ranks=range(2, 3), dims=2),
                TensorSpec(
                    "target",
                    "class indices, or 0/1 labels with multi_label",
                    "(N), or input's shape with multi_label",
                    dtype="int or float",
                    ranks=range(1, 3),
                ),
            ),
            params=LabelQualityParams,
            check=_check,
            call=label_quality,
        ),
    )
)
