"""API keys: 401 with WWW-Authenticate on /v1 and /v2 without the key; health stays open."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.auth import Keys
from service.config import Settings
from tests.conftest import make_client, problem

BODY = {"input": [[1, 2, 3]], "target": [2]}
V2 = {
    "inputs": [
        {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "target", "shape": [1], "datatype": "INT64", "data": [2]},
    ]
}


@pytest.fixture(scope="module")
def guarded() -> TestClient:
    with make_client(Settings(api_keys="alpha, beta")) as client:
        yield client


def test_without_a_key_v1_is_a_401_problem_with_a_challenge(guarded: TestClient) -> None:
    response = guarded.post("/v1/losses/cross_entropy", json=BODY)
    assert problem(response, 401)["detail"] == (
        "an API key is required: send Authorization: Bearer KEY"
    )
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_key_is_a_401_on_v2_in_the_protocols_words(guarded: TestClient) -> None:
    response = guarded.post(
        "/v2/models/cross_entropy/infer", json=V2, headers={"Authorization": "Bearer gamma"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "the API key is not valid"}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("key", ["alpha", "beta"])
def test_each_key_opens_v1_and_v2(guarded: TestClient, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    assert guarded.post("/v1/losses/cross_entropy", json=BODY, headers=headers).status_code == 200
    assert (
        guarded.post("/v2/models/cross_entropy/infer", json=V2, headers=headers).status_code == 200
    )
    assert guarded.get("/v1/info", headers=headers).status_code == 200


def test_health_readiness_metrics_and_the_document_stay_open(guarded: TestClient) -> None:
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
        "/openapi.json",
    ):
        assert guarded.get(path).status_code == 200, path
    assert guarded.get("/v2").status_code == 401
    assert guarded.get("/v1/losses").status_code == 401


def test_keys_are_read_from_a_file_and_again_on_reload(tmp_path: Path) -> None:
    file = tmp_path / "keys"
    file.write_text("# rotated monthly\nfirst\n\n")
    keys = Keys(Settings(api_keys_file=file))
    assert keys.accepts(b"first") and not keys.accepts(b"second")
    file.write_text("second\n")
    keys.reload()
    assert keys.accepts(b"second") and not keys.accepts(b"first")
    assert not keys.accepts(b"") and not keys.accepts(b"secon")


def test_without_keys_the_service_is_open(client: TestClient) -> None:
    assert client.post("/v1/losses/cross_entropy", json=BODY).status_code == 200


def test_the_openapi_document_declares_the_scheme(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/v1/losses/cross_entropy"]["post"]["security"] == [{"bearer": []}, {}]
    assert "security" not in document["paths"]["/healthz"]["get"]
