"""Liveness and readiness."""

from service.config import Settings
from tests.conftest import make_client, problem


def test_healthz(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_once_the_engine_is_loaded(client) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "devices": ["cpu"]}


def test_readyz_is_503_before_the_engine_is_loaded() -> None:
    client = make_client(Settings())  # no `with`: the lifespan, which loads the engine, never runs
    response = client.get("/readyz")
    assert problem(response, 503)["detail"] == "the engine is not loaded yet"
    assert response.headers["retry-after"] == "1"
    assert client.get("/healthz").status_code == 200
