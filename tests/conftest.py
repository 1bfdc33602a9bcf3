"""The real app, in-process; every response it gives in the suite must be below 500."""

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings


def no_server_errors(response: httpx2.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.read()!r}"


def make_client(settings: Settings | None = None) -> TestClient:
    client = TestClient(create_app(settings), raise_server_exceptions=True)
    client.event_hooks["response"].append(no_server_errors)
    return client


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    with make_client() as client:
        yield client


def problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """The problem document of an error response, after checking its status and media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert set(body) <= {"type", "title", "status", "detail", "errors"}
    return body
