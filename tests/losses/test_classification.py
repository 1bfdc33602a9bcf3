"""cross_entropy, nll_loss, binary_cross_entropy(_with_logits) against torch in float64."""

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.losses.parity import check
from tests.losses.strategies import (
    LOGITS,
    OPTIONS,
    UNIT,
    class_indices,
    class_shape,
)
from tests.reference import assert_matches, reference

EXAMPLES = settings(max_examples=60, deadline=None)
WEIGHTS = st.floats(0.1, 3, width=64)


@st.composite
def cross_entropy_case(draw: st.DrawFn, probabilities: bool) -> tuple[dict, dict]:
    shape = draw(class_shape())
    input = draw(arrays(np.float64, shape, elements=LOGITS))
    classes = shape[0] if len(shape) == 1 else shape[1]
    params: dict[str, Any] = {}
    if draw(st.booleans()):
        params["label_smoothing"] = draw(st.floats(0, 1))
    if probabilities:
        target = draw(arrays(np.float64, shape, elements=UNIT))
    else:
        ignorable = [-100, 7] + ([classes - 1] if classes > 1 else [])
        params["ignore_index"] = draw(st.sampled_from(ignorable))
        target = draw(class_indices(shape, params["ignore_index"]))
    weight = draw(st.none() | arrays(np.float64, (classes,), elements=WEIGHTS))
    return {"input": input, "target": target, "weight": weight}, params


@EXAMPLES
@given(case=cross_entropy_case(probabilities=False), options=OPTIONS)
def test_cross_entropy_with_class_indices(via: Any, case: Any, options: dict) -> None:
    check(via, "cross_entropy", F.cross_entropy, *case, options)


@EXAMPLES
@given(case=cross_entropy_case(probabilities=True), options=OPTIONS)
def test_cross_entropy_with_class_probabilities(via: Any, case: Any, options: dict) -> None:
    check(via, "cross_entropy", F.cross_entropy, *case, options)


@st.composite
def nll_case(draw: st.DrawFn) -> tuple[dict, dict]:
    """Log-probabilities (log_softmax of logits) against class indices."""
    tensors, params = draw(cross_entropy_case(probabilities=False))
    params.pop("label_smoothing", None)
    logits = torch.from_numpy(tensors["input"])
    tensors["input"] = F.log_softmax(logits, dim=0 if logits.dim() == 1 else 1).numpy()
    return tensors, params


@EXAMPLES
@given(case=nll_case(), options=OPTIONS)
def test_nll_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "nll_loss", F.nll_loss, *case, options)


@st.composite
def binary_case(draw: st.DrawFn, elements: st.SearchStrategy[float]) -> tuple[dict, dict]:
    shape = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    input = draw(arrays(np.float64, shape, elements=elements))
    target = draw(arrays(np.float64, shape, elements=UNIT))
    suffix = shape[len(shape) - draw(st.integers(0, len(shape))) :]
    weight = draw(st.none() | arrays(np.float64, suffix, elements=WEIGHTS))
    return {"input": input, "target": target, "weight": weight}, {}


@EXAMPLES
@given(case=binary_case(UNIT), options=OPTIONS)
def test_binary_cross_entropy(via: Any, case: Any, options: dict) -> None:
    check(via, "binary_cross_entropy", F.binary_cross_entropy, *case, options)


@st.composite
def logits_case(draw: st.DrawFn) -> tuple[dict, dict]:
    tensors, params = draw(binary_case(LOGITS))
    last = tensors["input"].shape[-1:]
    pos_weight = draw(st.none() | arrays(np.float64, last, elements=WEIGHTS))
    return tensors | {"pos_weight": pos_weight}, params


@EXAMPLES
@given(case=logits_case(), options=OPTIONS)
def test_binary_cross_entropy_with_logits(via: Any, case: Any, options: dict) -> None:
    check(
        via,
        "binary_cross_entropy_with_logits",
        F.binary_cross_entropy_with_logits,
        *case,
        options,
    )


def test_cross_entropy_worked_example(client: Any) -> None:
    """CE of logits [[1, 2, 3]] against class 2 is 0.4076 (log(e + e^2 + e^3) - 3)."""
    body = client.post(
        "/v1/losses/cross_entropy", json={"input": [[1, 2, 3]], "target": [2], "grad": True}
    ).json()
    expected, grads = reference(
        F.cross_entropy, {"input": [[1.0, 2.0, 3.0]], "target": [2]}, ["input"]
    )
    assert round(body["loss"], 4) == round(float(expected), 4)
    assert_matches(body, expected, grads, "float32")


def test_bce_with_logits_worked_example(client: Any) -> None:
    """BCE-with-logits of 1.5 against 1 with unit pos_weight is -log(sigmoid(1.5)) = 0.2014."""
    body = client.post(
        "/v1/losses/binary_cross_entropy_with_logits",
        json={"input": [1.5], "target": [1], "pos_weight": [1]},
    ).json()
    expected, _ = reference(F.binary_cross_entropy_with_logits, {"input": [1.5], "target": [1.0]})
    assert round(body["loss"], 4) == round(float(expected), 4)


def test_bce_with_logits_is_finite_at_extreme_logits(client: Any) -> None:
    for dtype in ("float32", "float64"):
        body = client.post(
            "/v1/losses/binary_cross_entropy_with_logits",
            json={"input": [1e10, -1e10], "target": [1, 0], "grad": True, "dtype": dtype},
        ).json()
        assert body["loss"] == 0
        assert body["grad"] == {"input": [0, 0]}
        assert "warnings" not in body


def test_unbatched_cross_entropy_returns_a_scalar_per_sample(client: Any) -> None:
    body = client.post(
        "/v1/losses/cross_entropy",
        json={"input": [1, 2, 3], "target": 2, "reduction": "none", "dtype": "float64"},
    ).json()
    expected, _ = reference(
        F.cross_entropy, {"input": [1.0, 2.0, 3.0], "target": 2}, reduction="none"
    )
    assert body["shape"] == [] and body["loss"] == float(expected)
