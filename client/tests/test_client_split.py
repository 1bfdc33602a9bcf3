"""A call split to fit the server's limits equals the same call in one request, whatever the
inputs' dtypes, on either wire: the split is sized by what is really sent, and parts the
server refuses for their work are cut again."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from loss_service_client import Client, LossResult
from tests.e2e.conftest import serving

LIMITS = {"max_body_bytes": 24_000, "max_elements": 4_000, "max_work": 3e-5}
"""Small enough that every example is cut: by bytes, by elements or by work (a cross entropy
with grad of 4,000 elements is estimated at 6e-5)."""
INPUTS = ["float16", "bfloat16", "float32", "float64"]
LABELS = ["int32", "int64", "uint8", "whole floats"]


@pytest.fixture(scope="module")
def tiny() -> Iterator[str]:
    with serving(**{k: str(v) for k, v in LIMITS.items()}) as url:
        yield url


@pytest.fixture(scope="module")
def whole(url: str) -> Iterator[Client]:
    with Client(url, progress=False) as client:
        yield client


def logits(rows: int, classes: int, dtype: str, seed: int) -> Any:
    values = np.random.default_rng(seed).normal(size=(rows, classes))
    if dtype == "bfloat16":
        return torch.from_numpy(values).to(torch.bfloat16)
    return values.astype(dtype)


def labels(rows: int, classes: int, dtype: str, seed: int) -> np.ndarray:
    values = np.random.default_rng(seed + 1).integers(0, classes, rows)
    return values.astype(np.float64 if dtype == "whole floats" else dtype)


def same(split: LossResult, one: LossResult, reduction: str) -> None:
    """Per-sample results exactly; sums and means to float tolerance (the parts are added in
    float64, the whole in the computation's dtype)."""
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if split.dtype == "float32" else {"rtol": 1e-12}
    if reduction == "none":
        np.testing.assert_array_equal(split.loss, one.loss)
    else:
        np.testing.assert_allclose(split.loss, one.loss, **tolerance)
    assert split.grad.keys() == one.grad.keys()
    for name in one.grad:
        np.testing.assert_allclose(split.grad[name], one.grad[name], **tolerance)
    assert split.divisor == pytest.approx(one.divisor)
    assert split.loss.shape == one.loss.shape


@given(
    rows=st.integers(1, 700),
    classes=st.integers(2, 30),
    inputs=st.sampled_from(INPUTS),
    label_dtype=st.sampled_from(LABELS),
    reduction=st.sampled_from(["none", "sum", "mean"]),
    binary=st.booleans(),
    dtype=st.sampled_from(["float32", "float64"]),
)
@settings(max_examples=30)
def test_a_split_call_equals_the_whole_call(
    tiny: str,
    whole: Client,
    rows: int,
    classes: int,
    inputs: str,
    label_dtype: str,
    reduction: str,
    binary: bool,
    dtype: str,
) -> None:
    x, y = logits(rows, classes, inputs, rows), labels(rows, classes, label_dtype, rows)
    call = {"input": x, "target": y, "reduction": reduction, "grad": True, "dtype": dtype}
    with Client(tiny, binary=binary, progress=False) as client:
        split = client.loss("cross_entropy", **call)
    same(split, whole.loss("cross_entropy", **call), reduction)


def test_every_kind_of_cut_happens(tiny: str, whole: Client) -> None:
    """Past the bytes, past the elements, and past the work (refused, then cut again)."""
    with Client(tiny, progress=False) as client:
        server = client.server()
        assert (server.max_body_bytes, server.max_elements) == (24_000, 4_000)
        assert server.max_work == pytest.approx(3e-5)
        for rows, classes, grad in ((2_000, 2, False), (100, 200, False), (300, 10, True)):
            x, y = logits(rows, classes, "float32", 3), labels(rows, classes, "int64", 3)
            call = {"input": x, "target": y, "grad": grad, "reduction": "none"}
            same(client.loss("cross_entropy", **call), whole.loss("cross_entropy", **call), "none")


def test_a_million_float32_rows_with_int64_labels_at_the_default_limits(url: str) -> None:
    """1,000,000 x 20 float32 logits (80 MB) and int64 labels (8 MB): past the 64 MiB body
    limit. The estimate once counted labels at 4 bytes and sent them as 8, and the part was
    refused."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1_000_000, 20)).astype(np.float32)
    y = rng.integers(0, 20, 1_000_000)
    with Client(url, progress=False) as client:
        result = client.loss("cross_entropy", input=x, target=y)
    expected = F.cross_entropy(torch.from_numpy(x).double(), torch.from_numpy(y))
    assert result.divisor == 1_000_000
    np.testing.assert_allclose(result.loss, expected.item(), rtol=1e-6)
