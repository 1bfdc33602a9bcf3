"""sigmoid_focal_loss (torchvision's formula) and focal_loss (API.md's formula) in float64."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.losses.parity import check
from tests.losses.strategies import LOGITS, OPTIONS, UNIT, class_indices, class_shape
from tests.reference import reference

EXAMPLES = settings(max_examples=60, deadline=None)
GAMMA = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5])


def torchvision_sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss as published (torchvision 0.29), line for line."""
    p = torch.sigmoid(input)
    ce_loss = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * target + (1 - alpha) * (1 - target)
        loss = alpha_t * loss
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def api_focal_loss(input, target, alpha=None, *, gamma=2.0, ignore_index=-100, reduction="mean"):
    """API.md: -alpha_t (1 - p_t)^gamma log(p_t), p_t = softmax(input)[target], by indexing."""
    dim = 0 if input.dim() == 1 else 1
    p = F.softmax(input, dim=dim).movedim(dim, -1)
    kept = target != ignore_index
    index = torch.where(kept, target, 0)
    p_t = torch.take_along_dim(p, index.unsqueeze(-1), dim=-1).squeeze(-1)
    alpha_t = 1 if alpha is None else (alpha if alpha.dim() == 0 else alpha[index])
    loss = torch.where(kept, -alpha_t * (1 - p_t) ** gamma * torch.log(p_t), 0)
    if reduction == "mean":
        return loss.sum() / kept.sum()
    return loss.sum() if reduction == "sum" else loss


@st.composite
def sigmoid_focal_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    input = draw(arrays(np.float64, shape, elements=LOGITS))
    target = draw(arrays(np.float64, shape, elements=UNIT))
    params = {"gamma": draw(GAMMA), "alpha": draw(st.sampled_from([0.25, 0.0, 1.0, 0.6, -1.0]))}
    return {"input": input, "target": target}, params


@EXAMPLES
@given(case=sigmoid_focal_case(), options=OPTIONS)
def test_sigmoid_focal_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "sigmoid_focal_loss", torchvision_sigmoid_focal_loss, *case, options)


@st.composite
def focal_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(class_shape())
    classes = shape[0] if len(shape) == 1 else shape[1]
    params = {"gamma": draw(GAMMA), "ignore_index": draw(st.sampled_from([-100, 9]))}
    target = draw(class_indices(shape, params["ignore_index"]))
    alpha = draw(
        st.none()
        | arrays(np.float64, (), elements=st.floats(0, 1))
        | arrays(np.float64, (classes,), elements=st.floats(0, 2))
    )
    input = draw(arrays(np.float64, shape, elements=st.floats(-8, 8)))
    return {"input": input, "target": target, "alpha": alpha}, params


@EXAMPLES
@given(case=focal_case(), options=OPTIONS)
def test_focal_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "focal_loss", api_focal_loss, *case, options)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_loss_at_gamma_0_is_cross_entropy(client: Any, reduction: str) -> None:
    tensors = {"input": [[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]], "target": [2, -100]}
    body = client.post(
        "/v1/losses/focal_loss",
        json=tensors | {"gamma": 0, "reduction": reduction, "dtype": "float64", "grad": True},
    ).json()
    expected, grads = reference(F.cross_entropy, tensors, ["input"], reduction=reduction)
    np.testing.assert_allclose(body["loss"], expected, rtol=1e-12)
    np.testing.assert_allclose(body["grad"]["input"], grads["input"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_focal_loss_at_gamma_0_without_alpha_is_bce_with_logits(
    client: Any, reduction: str
) -> None:
    tensors = {"input": [[1.0, -2.0], [30.0, -0.5]], "target": [[1.0, 0.0], [0.3, 1.0]]}
    body = client.post(
        "/v1/losses/sigmoid_focal_loss",
        json=tensors | {"gamma": 0, "alpha": -1, "reduction": reduction, "dtype": "float64"},
    ).json()
    expected, _ = reference(F.binary_cross_entropy_with_logits, tensors, reduction=reduction)
    np.testing.assert_allclose(body["loss"], expected, rtol=1e-12)


def test_sigmoid_focal_loss_with_alpha_0_zeroes_the_positives(client: Any) -> None:
    body = client.post(
        "/v1/losses/sigmoid_focal_loss",
        json={"input": [2.0, -1.0, 0.5], "target": [1, 1, 0], "alpha": 0, "reduction": "none"},
    ).json()
    assert body["loss"][:2] == [0, 0] and body["loss"][2] > 0


def test_focal_losses_are_finite_at_extreme_logits(client: Any) -> None:
    for name, target in (("sigmoid_focal_loss", [[1.0, 0.0]]), ("focal_loss", [0])):
        body = client.post(
            f"/v1/losses/{name}", json={"input": [[1e4, -1e4]], "target": target, "grad": True}
        ).json()
        assert np.isfinite(body["loss"]) and "warnings" not in body, body
