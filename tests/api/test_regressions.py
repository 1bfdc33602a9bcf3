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


DEEP = b"[" * 100_000 + b"]" * 100_000
TOO_DEEP = "the body's arrays or objects are nested too deeply (a tensor has at most 8 dimensions)"
NESTED = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize(
    ("path", "content", "status", "detail"),
    [
        ("/v1/losses/mse_loss", NESTED, 422, TOO_DEEP),
        ("/v1/losses/mse_loss", DEEP, 422, TOO_DEEP),
        ("/v1/losses/mse_loss", b"[[1, 2]]", 422, "the body must be a JSON object"),
        (
            "/v1/losses/mse_loss",
            b'{"input": ' + NESTED + b', "target": [1]}',
            422,
            "the body's arrays or objects are nested too deeply (a tensor has at most 8"
            " dimensions)",
        ),
        (
            "/v1/losses/mse_loss",
            b'{"input": [1], "target": [1], "reduction": ' + DEEP + b"}",
            422,
            "the body's arrays or objects are nested too deeply (a tensor has at most 8"
            " dimensions)",
        ),
        (
            "/v1/batch",
            b'{"items": ' + NESTED + b"}",
            422,
            "the body's arrays or objects are nested too deeply (a tensor has at most 8"
            " dimensions)",
        ),
        (
            "/v1/losses/mse_loss",
            b'{"input": [1], "target": [1], "reduction": [' + b"1, " * 2000 + b"1]}",
            422,
            "reduction is 6003 bytes of JSON; a parameter takes at most 4096",
        ),
    ],
)
def test_deep_or_large_json_is_a_4xx(
    client: TestClient, path: str, content: bytes, status: int, detail: str
) -> None:
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert problem(response, status)["detail"] == detail


def test_deep_json_on_v2_is_a_400(client: TestClient) -> None:
    data = b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": '
    response = client.post("/v2/models/softmax/infer", content=data + NESTED + b"}]}")
    assert response.status_code == 400
    assert response.json() == {
        "error": "the inference request's arrays or objects are nested too deeply"
    }
    in_parameters = b'{"inputs": [], "parameters": {"dim": ' + NESTED + b"}}"
    response = client.post("/v2/models/softmax/infer", content=in_parameters)
    assert response.json() == {
        "error": "the inference request is not valid: Expected `bool | int | float | str`,"
        " got `array` - at `$.parameters[...]`"
    }
