"""End to end: `loss-service serve` on 127.0.0.1 and a real HTTP client."""

from collections.abc import Iterator

import httpx2
import pytest
import torch
import torch.nn.functional as F

from tests.e2e.conftest import serving


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(max_body_bytes="100000") as url:
        yield url


def test_cross_entropy_with_gradient(server: str) -> None:
    response = httpx2.post(
        f"{server}/v1/losses/cross_entropy",
        json={"input": [[1, 2, 3], [0, 0, 5]], "target": [2, 0], "grad": True, "dtype": "float64"},
    )
    assert response.status_code == 200
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]], dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(x, torch.tensor([2, 0]))
    loss.backward()
    body = response.json()
    assert body["loss"] == loss.item()
    assert body["grad"]["input"] == x.grad.tolist()


def test_a_bad_index_is_a_422_problem(server: str) -> None:
    response = httpx2.post(
        f"{server}/v1/losses/nll_loss", json={"input": [[-1.0, -0.5]], "target": [3]}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body", "target", 0]


def test_an_oversized_streamed_body_is_413(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"input": ['
        for _ in range(20_000):
            yield b"0.5, "
        yield b"0.5]}"

    response = httpx2.post(
        f"{server}/v1/losses/binary_cross_entropy",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "max_body_bytes (100000 bytes)" in response.json()["detail"]


def test_health_info_and_metrics(server: str) -> None:
    assert httpx2.get(f"{server}/healthz").json() == {"status": "ok"}
    assert httpx2.get(f"{server}/v1/info").json()["limits"]["max_body_bytes"] == 100000
    assert "loss_service_requests_total" in httpx2.get(f"{server}/metrics").text
