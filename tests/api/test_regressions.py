"""Requests the fuzz tests (`make fuzz`) once answered with a 5xx, each pinned to its 4xx."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import problem


@pytest.mark.parametrize(
    ("name", "body", "detail"),
    [
        (
            "gaussian_nll_loss",
            {"input": 0.0, "target": 0.0, "var": 0.0, "eps": 3.402823466385289e38},
            "eps = 3.402823466385289e+38 is beyond float32's range; send dtype float64",
        ),
        (
            "huber_loss",
            {"input": [1.0], "target": [0.0], "delta": 1e39},
            "delta = 1e+39 is beyond float32's range; send dtype float64",
        ),
    ],
)
def test_a_float_parameter_beyond_the_dtype(
    client: TestClient, name: str, body: dict, detail: str
) -> None:
    found = problem(client.post(f"/v1/losses/{name}", json=body), 422)
    assert found["detail"] == detail
    assert found["errors"][0]["loc"] == ["body", list(body)[-1]]
    assert client.post(f"/v1/losses/{name}", json=body | {"dtype": "float64"}).status_code == 200
