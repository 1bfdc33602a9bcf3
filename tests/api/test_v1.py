"""/v1/info, the catalogue, unknown names and paths, and the shape of a 200."""

import numpy as np
import orjson
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

from service import __version__
from service.losses import REGISTRY
from tests.conftest import make_client, problem
from tests.reference import assert_matches, reference

KNOWN = ", ".join(REGISTRY)


def test_info(client: TestClient) -> None:
    assert client.get("/v1/info").json() == {
        "version": __version__,
        "torch_version": torch.__version__,
        "devices": ["cpu"],
        "default_device": "cpu",
        "limits": {
            "max_body_bytes": 67108864,
            "max_elements": 16777216,
            "max_work": 1.0,
            "max_batch_items": 1024,
            "max_concurrency": 4,
        },
    }


def test_catalogue_lists_every_loss_with_its_declaration(client: TestClient) -> None:
    losses = client.get("/v1/losses").json()["losses"]
    assert [entry["name"] for entry in losses] == list(REGISTRY)
    for entry in losses:
        assert client.get(f"/v1/losses/{entry['name']}").json() == entry
        assert entry["reductions"] == list(REGISTRY[entry["name"]].reductions)
        assert entry["default_reduction"] == "mean"


def test_cross_entropy_entry_matches_the_contract(client: TestClient) -> None:
    entry = client.get("/v1/losses/cross_entropy").json()
    assert entry["reference"] == "torch.nn.functional.cross_entropy"
    assert [(t["name"], t["grad"]) for t in entry["tensors"]] == [
        ("input", True),
        ("target", False),
    ]
    parameters = entry["parameters"]
    assert {name: (p["type"], p["default"]) for name, p in parameters.items()} == {
        "weight": ("tensor", None),
        "ignore_index": ("integer", -100),
        "label_smoothing": ("number", 0.0),
    }
    assert all(p["description"] for p in parameters.values())


def test_an_unknown_loss_is_404_listing_the_known_ones(client: TestClient) -> None:
    for response in (client.get("/v1/losses/hinge"), client.post("/v1/losses/hinge", json={})):
        assert problem(response, 404)["detail"] == f"unknown loss 'hinge'; known: {KNOWN}"


@pytest.mark.parametrize(
    ("path", "what", "guess"),
    [
        ("/v1/losses/cross_entopy", "loss", "cross_entropy"),
        ("/v1/activations/sofmax", "activation", "softmax"),
        ("/v2/models/mse_los/infer", "model", "mse_loss"),
    ],
)
def test_a_misspelt_name_is_answered_with_the_nearest(
    client: TestClient, path: str, what: str, guess: str
) -> None:
    response = client.post(path, json={})
    assert response.status_code == 404
    found = response.json()
    message = found["detail"] if "detail" in found else found["error"]
    misspelt = path.split("/")[3]
    assert message.startswith(f"unknown {what} '{misspelt}'; did you mean '{guess}'? known: ")


def test_an_unknown_path_is_a_404_problem(client: TestClient) -> None:
    assert problem(client.get("/v3/nothing"), 404)["detail"] == "no route for GET /v3/nothing"


def test_a_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/v1/losses")
    assert problem(response, 405)["detail"] == "DELETE is not allowed on this path"
    assert response.headers["allow"] == "GET"


def test_response_echoes_what_was_used(client: TestClient) -> None:
    response = client.post(
        "/v1/losses/binary_cross_entropy_with_logits",
        json={"input": [[0.5, -1.0]], "target": [[1, 0]], "reduction": "none", "dtype": "float64"},
    )
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"loss", "reduction", "shape", "dtype", "device"}
    assert (body["reduction"], body["shape"], body["dtype"], body["device"]) == (
        "none",
        [1, 2],
        "float64",
        "cpu",
    )


def test_non_finite_results_are_null_with_a_warning(client: TestClient) -> None:
    """Weights near float32's largest value make a float32 sum overflow to infinity."""
    body = client.post(
        "/v1/losses/binary_cross_entropy_with_logits",
        json={"input": [0, 0], "target": [1, 1], "weight": [3e38, 3e38], "reduction": "sum"},
    ).json()
    assert body["loss"] is None
    assert body["warnings"] == [
        "loss: 1 of 1 values are not finite (NaN or infinity), written as null"
    ]


def test_auto_device_resolves_to_cpu_without_cuda(client: TestClient) -> None:
    body = client.post(
        "/v1/losses/cross_entropy", json={"input": [[1, 2]], "target": [0], "device": "auto"}
    ).json()
    assert body["device"] == "cpu"


def test_metrics_count_requests_by_loss_and_status() -> None:
    with make_client() as client:  # its own app: counts from zero
        client.post("/v1/losses/nll_loss", json={"input": [[-0.5, -1.0]], "target": [0]})
        client.post("/v1/losses/nll_loss", json={"input": [[-0.5, -1.0]], "target": [5]})
        client.post("/v2/models/softmax/infer", json={"inputs": []})
        text = client.get("/metrics").text
    ok = 'loss="nll_loss",method="POST",protocol="http",route="/v1/losses/nll_loss",status="200"'
    bad = 'loss="nll_loss",method="POST",protocol="http",route="/v1/losses/nll_loss",status="422"'
    assert f"loss_service_requests_total{{{ok}}} 1.0" in text
    assert f"loss_service_requests_total{{{bad}}} 1.0" in text
    assert f"loss_service_request_duration_seconds_count{{{ok}}} 1.0" in text
    v2 = 'loss="softmax",method="POST",protocol="http",route="/v2/models/{name}/infer",status="422"'
    assert f"loss_service_requests_total{{{v2}}} 1.0" in text


def test_a_large_gradient_is_streamed_and_exact(client: TestClient) -> None:
    """Over BLOCK_ELEMENTS the response is written in blocks of rows (no Content-Length)."""
    rng = np.random.default_rng(0)
    input, target = rng.normal(size=(300, 300)), rng.integers(0, 300, 300)
    response = client.post(
        "/v1/losses/cross_entropy",
        json={"input": input.tolist(), "target": target.tolist(), "grad": True, "dtype": "float64"},
    )
    assert "content-length" not in response.headers
    expected, grads = reference(F.cross_entropy, {"input": input, "target": target}, ["input"])
    assert_matches(response.json(), expected, grads, "float64")


def test_float32_logits_as_orjson_writes_them_keep_their_extremes(client: TestClient) -> None:
    """Masked logits at float32's limits, in orjson's shortest float32 form (3.4028235e+38),
    are float32 numbers: the same loss as torch's."""
    input = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    input[0, 1], input[2, 0] = np.finfo(np.float32).min, np.finfo(np.float32).max
    target = np.array([0, 1, 2, 0])
    content = orjson.dumps(
        {"input": input, "target": target, "reduction": "none"},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    headers = {"content-type": "application/json"}
    response = client.post("/v1/losses/cross_entropy", content=content, headers=headers)
    assert response.status_code == 200, response.text
    expected = F.cross_entropy(torch.from_numpy(input), torch.from_numpy(target), reduction="none")
    np.testing.assert_array_equal(np.array(response.json()["loss"], np.float32), expected)
