"""cosine_embedding_loss and the triplet margin losses against torch in float64."""

from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.losses.parity import check
from tests.losses.strategies import OPTIONS, shapes, signs, tensor

EXAMPLES = settings(max_examples=50, deadline=None)
MARGINS = [0.37, 1.13, 4.1]
"""Not multiples of the simple values hypothesis favours (0.05, 1, 3): with those, the hinge
lands exactly on its kink, where float32 and float64 take different sides of the gradient."""


def embeddings_shape() -> st.SearchStrategy:
    """(N, D) or (D)."""
    return shapes(min_dims=1, max_dims=2, max_side=5)


def away_from_zero(shape: tuple[int, ...]) -> st.SearchStrategy:
    """Entries of magnitude 0.05 to 3: near a zero vector the cosine's gradient is all eps."""
    return st.tuples(tensor(shape, 0.05, 3), signs(shape)).map(lambda pair: pair[0] * pair[1])


@st.composite
def cosine_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(embeddings_shape())
    tensors = {"input1": draw(away_from_zero(shape)), "input2": draw(away_from_zero(shape))}
    tensors["target"] = draw(signs(shape[:-1]))
    return tensors, {"margin": draw(st.sampled_from([-0.5, 0.0, 0.3]))}


@EXAMPLES
@given(case=cosine_case(), options=OPTIONS)
def test_cosine_embedding_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "cosine_embedding_loss", F.cosine_embedding_loss, *case, options)


@st.composite
def triplet(draw: st.DrawFn) -> dict:
    shape = draw(embeddings_shape())
    return {name: draw(away_from_zero(shape)) for name in ("anchor", "positive", "negative")}


@EXAMPLES
@given(tensors=triplet(), data=st.data(), options=OPTIONS)
def test_triplet_margin_loss(via: Any, tensors: dict, data: Any, options: dict) -> None:
    params = {
        "margin": data.draw(st.sampled_from(MARGINS)),
        "p": data.draw(st.sampled_from([1.0, 1.5, 2.0, 3.0])),
        "eps": data.draw(st.sampled_from([0.0, 1e-6])),
        "swap": data.draw(st.booleans()),
    }
    check(via, "triplet_margin_loss", F.triplet_margin_loss, tensors, params, options)


def cosine_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(x, y, dim=-1)


def with_distance(*args: Any, distance: str, **kwargs: Any) -> torch.Tensor:
    """The reference: PyTorch's function with the distance_function the name stands for."""
    function = {"pairwise": None, "cosine": cosine_distance}[distance]
    return F.triplet_margin_with_distance_loss(*args, distance_function=function, **kwargs)


@EXAMPLES
@given(tensors=triplet(), data=st.data(), options=OPTIONS)
def test_triplet_margin_with_distance_loss(
    via: Any, tensors: dict, data: Any, options: dict
) -> None:
    params = {
        "distance": data.draw(st.sampled_from(["pairwise", "cosine"])),
        "margin": data.draw(st.sampled_from(MARGINS)),
        "swap": data.draw(st.booleans()),
    }
    check(via, "triplet_margin_with_distance_loss", with_distance, tensors, params, options)
