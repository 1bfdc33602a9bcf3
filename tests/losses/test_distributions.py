"""kl_div, poisson_nll_loss, gaussian_nll_loss against torch in float64."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.losses.parity import check
from tests.losses.strategies import OPTIONS, options, shapes, tensor
from tests.reference import reference

EXAMPLES = settings(max_examples=60, deadline=None)


@st.composite
def kl_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(shapes())
    log_target = draw(st.booleans())
    target = draw(tensor(shape, -20, 0) if log_target else tensor(shape, 0, 1) | tensor(shape))
    target = np.clip(target, -20, 0) if log_target else np.clip(target, 0, 1)
    return {"input": draw(tensor(shape, -20, 0)), "target": target}, {"log_target": log_target}


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@EXAMPLES
@given(case=kl_case(), options=options("none", "mean", "sum", "batchmean"))
def test_kl_div(via: Any, case: Any, options: dict) -> None:
    check(via, "kl_div", F.kl_div, *case, options)


@st.composite
def poisson_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(shapes())
    params = {
        "log_input": draw(st.booleans()),
        "full": draw(st.booleans()),
        "eps": draw(st.sampled_from([1e-8, 1e-3])),
    }
    input = draw(tensor(shape, -5, 5) if params["log_input"] else tensor(shape, 0, 10))
    target = draw(tensor(shape, 0, 10) | tensor(shape, 0, 3).map(np.round))
    return {"input": input, "target": target}, params


@EXAMPLES
@given(case=poisson_case(), options=OPTIONS)
def test_poisson_nll_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "poisson_nll_loss", F.poisson_nll_loss, *case, options)


@st.composite
def gaussian_case(draw: st.DrawFn) -> tuple[dict, dict]:
    shape = draw(shapes(min_dims=1))
    var_shape = draw(
        st.sampled_from(
            [shape, shape[:-1], *((*shape[:i], 1, *shape[i + 1 :]) for i in range(len(shape)))]
        )
    )
    var = draw(tensor(var_shape, 0, 4) | tensor(var_shape, 0, 1e-7))
    tensors = {"input": draw(tensor(shape)), "target": draw(tensor(shape)), "var": var}
    params = {"full": draw(st.booleans()), "eps": draw(st.sampled_from([1e-6, 1e-2]))}
    return tensors, params


def resolvable_in_float32(tensors: dict[str, np.ndarray], params: dict[str, Any]) -> bool:
    """Whether float32 can resolve var's gradient, 0.5 (1/v - d^2/v^2) with v = max(var, eps):
    where d^2 is close to v, two terms near 1/v cancel (at eps = 1e-6, one float32 rounding of
    1e6 is 0.06). Examples that lose more than 14 of its 24 bits are left to float64."""
    input = tensors["input"].astype(np.float32).astype(np.float64)
    target = tensors["target"].astype(np.float32).astype(np.float64)
    var = tensors["var"].astype(np.float32).astype(np.float64)
    if var.ndim and var.ndim < input.ndim:
        var = var[..., None]
    v = np.maximum(var, params["eps"])
    inverse, squared = 1 / v, (input - target) ** 2 / v**2
    return bool(np.all(np.abs(inverse - squared) >= 2**-10 * (inverse + squared)))


@EXAMPLES
@given(case=gaussian_case(), options=OPTIONS)
def test_gaussian_nll_loss(via: Any, case: Any, options: dict) -> None:
    if options["dtype"] == "float32" and options["grad"]:
        assume(resolvable_in_float32(*case))
    check(via, "gaussian_nll_loss", F.gaussian_nll_loss, *case, options)


def test_a_0d_var_is_one_variance_for_every_element(client: Any) -> None:
    """As PyTorch's float var; its gradient is the sum of the per-element ones."""
    input, target = [[0.5, 1.0], [2.0, -1.0]], [[0.0, 1.5], [1.0, 0.0]]
    body = client.post(
        "/v1/losses/gaussian_nll_loss",
        json={"input": input, "target": target, "var": 0.7, "grad": True, "dtype": "float64"},
    ).json()
    full = torch.full((2, 2), 0.7, dtype=torch.float64)
    tensors = {"input": input, "target": target, "var": full.numpy()}
    expected, grads = reference(F.gaussian_nll_loss, tensors, ["input", "var"])
    assert body["loss"] == pytest.approx(float(expected), rel=1e-12)
    assert body["grad"]["var"] == pytest.approx(float(grads["var"].sum()), rel=1e-12)
    np.testing.assert_allclose(body["grad"]["input"], grads["input"], rtol=1e-12)


def test_kl_div_batchmean_divides_by_the_batch(client: Any) -> None:
    input = np.log([[0.25, 0.75], [0.5, 0.5], [0.9, 0.1]])
    target = [[0.5, 0.5], [0.1, 0.9], [0.2, 0.8]]
    body = client.post(
        "/v1/losses/kl_div",
        json={"input": input.tolist(), "target": target, "reduction": "batchmean"},
    ).json()
    summed, _ = reference(F.kl_div, {"input": input, "target": target}, reduction="sum")
    assert body["loss"] == pytest.approx(float(summed) / 3, rel=1e-6)
