"""Parity tests run through every way in: /v1 JSON in-process, and /v2 through tritonclient
against a real server, with binary and with JSON tensors."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.transports import V1, Transport, Triton


@pytest.fixture(scope="session", params=["v1", "v2 binary", "v2 json"])
def via(request: pytest.FixtureRequest, client: TestClient) -> Iterator[Transport]:
    if request.param == "v1":
        yield V1(client)
        return
    url: Any = request.getfixturevalue("server")
    transport = Triton(url, binary=request.param == "v2 binary")
    yield transport
    transport.client.close()
