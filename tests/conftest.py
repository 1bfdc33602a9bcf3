"""The real app, in-process; no response it gives in the suite may be a 5xx but 503.

Hypothesis runs derandomized (the same examples on every run and machine) unless
HYPOTHESIS_PROFILE=fuzz, which `make fuzz` sets for long random runs.
"""

import os
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis

from service.app import create_app
from service.config import Settings

# No deadline and no timing health checks: on a shared machine they fail a sound example now
# and then, and a timing assertion has no place in the tests.
TIMELESS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
hypothesis.register_profile("default", derandomize=True, database=None, print_blob=True, **TIMELESS)
hypothesis.register_profile("fuzz", derandomize=False, database=None, print_blob=True, **TIMELESS)
hypothesis.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
# The apps tests make in this process serve no gRPC unless a test gives them a port;
# the servers they launch get a free one (tests/e2e/conftest.py).
os.environ["LOSS_SERVICE_GRPC_PORT"] = "0"


def no_server_errors(response: httpx2.Response) -> None:
    """A 5xx is a bug; 501 (a transfer coding) and 503 (not ready, overloaded, shutting down)
    are the ones the contract documents."""
    status = response.status_code
    assert status < 500 or status in (501, 503), f"{status}: {response.read()!r}"


def make_client(settings: Settings | None = None) -> TestClient:
    client = TestClient(create_app(settings), raise_server_exceptions=True)
    client.event_hooks["response"].append(no_server_errors)
    return client


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    with make_client() as client:
        yield client


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """`loss-service serve` on 127.0.0.1 with the default settings, for the whole session."""
    from tests.e2e.conftest import serving

    with serving() as url:
        yield url


def problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """The problem document of an error response, after checking its status and media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert set(body) <= {
        "type",
        "title",
        "status",
        "detail",
        "errors",
        "work",
        "max_work",
        "fixed_work",
    }
    return body
