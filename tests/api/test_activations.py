"""/v1/activations: softmax, log_softmax, sigmoid, logsigmoid against torch in float64."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from service.activations import ACTIVATIONS
from tests.conftest import problem
from tests.losses.strategies import as_computed, shapes, tensor
from tests.reference import TOLERANCE

FUNCTIONS = {
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
    "sigmoid": torch.sigmoid,
    "logsigmoid": F.logsigmoid,
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
@settings(max_examples=30, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["float32", "float64"]))
def test_parity(client: TestClient, name: str, data: st.DataObject, dtype: str) -> None:
    input = data.draw(shapes().flatmap(lambda shape: tensor(shape, -30, 30)))
    params: dict[str, Any] = {}
    if name in ("softmax", "log_softmax"):
        rank = max(input.ndim, 1)
        params["dim"] = data.draw(st.integers(-rank, rank - 1))
    response = client.post(
        f"/v1/activations/{name}", json={"input": input.tolist(), "dtype": dtype} | params
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = FUNCTIONS[name](torch.from_numpy(as_computed(input, dtype)), **params).numpy()
    assert (body["shape"], body["dtype"], body["device"]) == (list(input.shape), dtype, "cpu")
    np.testing.assert_allclose(np.asarray(body["output"]), expected, **TOLERANCE[dtype])


def test_catalogue(client: TestClient) -> None:
    entries = client.get("/v1/activations").json()["activations"]
    assert [e["name"] for e in entries] == list(ACTIVATIONS)
    softmax = client.get("/v1/activations/softmax").json()
    assert softmax["parameters"]["dim"]["type"] == "integer"
    assert "reductions" not in softmax


def test_softmax_requires_dim(client: TestClient) -> None:
    found = problem(client.post("/v1/activations/softmax", json={"input": [1, 2]}), 422)
    assert found["errors"][0]["loc"] == ["body", "dim"]
    assert found["detail"] == "dim: Field required"


def test_dim_out_of_range_is_422(client: TestClient) -> None:
    response = client.post("/v1/activations/log_softmax", json={"input": [[1, 2]], "dim": 2})
    found = problem(response, 422)
    assert (
        found["detail"]
        == "dim = 2 is out of range for input of 2 dimensions: it must be in [-2, 2)"
    )
    assert found["errors"][0]["type"] == "dim_out_of_range"


def test_activations_take_no_reduction_or_grad(client: TestClient) -> None:
    response = client.post("/v1/activations/sigmoid", json={"input": [1], "grad": True})
    assert problem(response, 422)["errors"][0]["type"] == "extra_forbidden"


def test_an_unknown_activation_is_404(client: TestClient) -> None:
    detail = problem(client.post("/v1/activations/relu", json={"input": [1]}), 404)["detail"]
    assert detail == f"unknown activation 'relu'; known: {', '.join(ACTIVATIONS)}"
