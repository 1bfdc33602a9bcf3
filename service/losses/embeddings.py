"""Embedding losses: cosine_embedding_loss and the triplet margin losses."""

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from service import checks
from service.spec import Arrays, LossOptions, LossSpec, Params, TensorSpec, per_sample

EMBEDDINGS = "(N, D) or (D)"
RANKS = range(1, 3)
TRIPLET = (
    TensorSpec("anchor", "embeddings", EMBEDDINGS, grad=True, ranks=RANKS, dims=2),
    TensorSpec("positive", "embeddings", "anchor's shape", grad=True, ranks=RANKS, dims=2),
    TensorSpec("negative", "embeddings", "anchor's shape", grad=True, ranks=RANKS, dims=2),
)


class CosineMargin(Params):
    margin: float = 0.0
    """Dissimilar pairs (target -1) cost max(0, cos - margin); 0 to 0.5 is usual."""


class TripletParams(Params):
    margin: float = Field(default=1.0, gt=0.0)
    """How much farther the negative must be than the positive."""
    p: float = Field(default=2.0, gt=0.0)
    """The norm degree of the pairwise distance."""
    eps: float = Field(default=1e-6, ge=0.0)
    """Added to the differences before the norm, for stability."""
    swap: bool = False
    """Use the positive-negative distance when it is smaller (Balntas et al. 2016)."""


class TripletDistanceParams(Params):
    distance: Literal["pairwise", "cosine"] = "pairwise"
    """pairwise: F.pairwise_distance (PyTorch's default); cosine: 1 - cosine similarity."""
    margin: float = Field(default=1.0, gt=0.0)
    """How much farther the negative must be than the positive."""
    swap: bool = False
    """Use the positive-negative distance when it is smaller (Balntas et al. 2016)."""


def _cosine_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(x, y, dim=-1)


DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "pairwise": F.pairwise_distance,
    "cosine": _cosine_distance,
}


def triplet_margin_with_distance_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    distance: str = "pairwise",
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """F.triplet_margin_with_distance_loss with its distance_function chosen by name."""
    return F.triplet_margin_with_distance_loss(
        anchor,
        positive,
        negative,
        distance_function=DISTANCES[distance],
        margin=margin,
        swap=swap,
        reduction=reduction,
    )


def _check_cosine(t: Arrays, p: Params, o: LossOptions) -> None:
    input1 = t["input1"]
    checks.same_shape("input2", t["input2"], "input1", input1.shape)
    checks.same_shape("target", t["target"], "input1 without its last dimension", input1.shape[:-1])
    checks.signs("target", t["target"])


def _check_triplet(t: Arrays, p: Params, o: LossOptions) -> None:
    for name in ("positive", "negative"):
        checks.same_shape(name, t[name], "anchor", t["anchor"].shape)


LOSSES = (
    LossSpec(
        name="cosine_embedding_loss",
        summary="1 - cos(input1, input2) for similar pairs (target 1), max(0, cos - margin) for"
        " dissimilar ones (target -1).",
        reference="torch.nn.functional.cosine_embedding_loss",
        tensors=(
            TensorSpec("input1", "embeddings", EMBEDDINGS, grad=True, ranks=RANKS, dims=2),
            TensorSpec("input2", "embeddings", "input1's shape", grad=True, ranks=RANKS, dims=2),
            TensorSpec("target", "1 or -1", "(N) or ()"),
        ),
        params=CosineMargin,
        check=_check_cosine,
        call=F.cosine_embedding_loss,
        divisor=per_sample("input1"),
    ),
    LossSpec(
        name="triplet_margin_loss",
        summary="Triplet loss max(0, d(anchor, positive) - d(anchor, negative) + margin) with"
        " the p-norm distance.",
        reference="torch.nn.functional.triplet_margin_loss",
        tensors=TRIPLET,
        params=TripletParams,
        check=_check_triplet,
        call=F.triplet_margin_loss,
        divisor=per_sample("anchor"),
    ),
    LossSpec(
        name="triplet_margin_with_distance_loss",
        summary="Triplet loss max(0, d(anchor, positive) - d(anchor, negative) + margin) with"
        " a pairwise or cosine distance.",
        reference="torch.nn.functional.triplet_margin_with_distance_loss",
        tensors=TRIPLET,
        params=TripletDistanceParams,
        check=_check_triplet,
        call=triplet_margin_with_distance_loss,
        divisor=per_sample("anchor"),
    ),
)
