"""l1_loss, mse_loss, smooth_l1_loss, huber_loss against torch in float64."""

from typing import Any

import pytest
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.losses.parity import check
from tests.losses.strategies import OPTIONS, shapes, tensor

EXAMPLES = settings(max_examples=40, deadline=None)


@st.composite
def pair(draw: st.DrawFn, weighted: bool) -> dict:
    shape = draw(shapes())
    tensors = {"input": draw(tensor(shape)), "target": draw(tensor(shape))}
    if weighted:
        tensors["weight"] = draw(st.none() | tensor(shape, 0, 3))
    return tensors


PARAMS = {
    "l1_loss": st.just({}),
    "mse_loss": st.just({}),
    "smooth_l1_loss": st.fixed_dictionaries({"beta": st.sampled_from([0.0, 0.5, 1.0, 2.5])}),
    "huber_loss": st.fixed_dictionaries({"delta": st.sampled_from([0.1, 1.0, 3.0])}),
}


@pytest.mark.parametrize("name", list(PARAMS))
@EXAMPLES
@given(data=st.data(), options=OPTIONS)
def test_parity(via: Any, name: str, data: st.DataObject, options: dict) -> None:
    tensors = data.draw(pair(weighted=name != "smooth_l1_loss"))
    check(via, name, getattr(F, name), tensors, data.draw(PARAMS[name]), options)
