"""The margin losses against torch in float64."""

from typing import Any

import numpy as np
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.losses.parity import check
from tests.losses.strategies import OPTIONS, class_indices, shapes, signs, tensor

EXAMPLES = settings(max_examples=50, deadline=None)
MARGIN = st.sampled_from([-0.5, 0.0, 0.5, 1.0, 2.0])


def scores_shape() -> st.SearchStrategy:
    """(C) or (N, C)."""
    return shapes(min_dims=1, max_dims=2, max_side=5)


@st.composite
def ranking_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(shapes(max_dims=2))
    tensors = {"input1": draw(tensor(shape)), "input2": draw(tensor(shape))}
    return tensors | {"target": draw(signs(shape))}, {"margin": draw(MARGIN)}


@EXAMPLES
@given(case=ranking_case(), options=OPTIONS)
def test_margin_ranking_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "margin_ranking_loss", F.margin_ranking_loss, *case, options)


@st.composite
def signed_case(draw: st.DrawFn, margin: bool) -> tuple[dict, dict]:
    shape = draw(shapes())
    tensors = {"input": draw(tensor(shape, -3, 3)), "target": draw(signs(shape))}
    return tensors, {"margin": draw(MARGIN)} if margin else {}


@EXAMPLES
@given(case=signed_case(margin=True), options=OPTIONS)
def test_hinge_embedding_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "hinge_embedding_loss", F.hinge_embedding_loss, *case, options)


@EXAMPLES
@given(case=signed_case(margin=False), options=OPTIONS)
def test_soft_margin_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "soft_margin_loss", F.soft_margin_loss, *case, options)


@st.composite
def multilabel_soft_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(scores_shape())
    target = draw(arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])))
    weight = draw(st.none() | tensor(shape[-1:], 0.1, 3))
    return {"input": draw(tensor(shape)), "target": target, "weight": weight}, {}


@EXAMPLES
@given(case=multilabel_soft_case(), options=OPTIONS)
def test_multilabel_soft_margin_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "multilabel_soft_margin_loss", F.multilabel_soft_margin_loss, *case, options)


@st.composite
def multilabel_case(draw: st.DrawFn) -> tuple[dict, dict]:
    """Each row: distinct labels, then -1, then anything in [-1, C) (ignored by PyTorch)."""
    shape = draw(scores_shape())
    classes = shape[-1]
    rows = []
    for _ in range(int(np.prod(shape[:-1]))):
        labels = draw(st.permutations(range(classes)))[: draw(st.integers(0, classes))]
        tail = draw(st.lists(st.integers(-1, classes - 1), min_size=classes, max_size=classes))
        rows.append([*labels, -1, *tail][:classes])
    target = np.array(rows, dtype=np.int64).reshape(shape)
    return {"input": draw(tensor(shape)), "target": target}, {}


@EXAMPLES
@given(case=multilabel_case(), options=OPTIONS)
def test_multilabel_margin_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "multilabel_margin_loss", F.multilabel_margin_loss, *case, options)


@st.composite
def multi_margin_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(scores_shape())
    weight = draw(st.none() | tensor(shape[-1:], 0.1, 3))
    tensors = {"input": draw(tensor(shape, -3, 3)), "target": draw(class_indices(shape))}
    params = {"p": draw(st.sampled_from([1, 2])), "margin": draw(MARGIN)}
    return tensors | {"weight": weight}, params


@EXAMPLES
@given(case=multi_margin_case(), options=OPTIONS)
def test_multi_margin_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "multi_margin_loss", F.multi_margin_loss, *case, options)
