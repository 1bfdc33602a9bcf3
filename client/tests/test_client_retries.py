"""Retries: a server held at its concurrency limit answers 503s, which the client waits out."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx2
import numpy as np

from loss_service_client import AsyncClient, Client, LossResult
from tests.e2e.conftest import serving

RNG = np.random.default_rng(3)
LOGITS = RNG.normal(size=(1024, 1000)).astype(np.float32)
LABELS = RNG.integers(0, 1000, 1024)


def busy(url: str) -> int:
    """How many 503s the server has answered."""
    lines = httpx2.get(f"{url}/metrics").text.splitlines()
    found = [line for line in lines if line.startswith("loss_service_requests_total{")]
    return sum(int(float(line.split()[-1])) for line in found if 'status="503"' in line)


def test_sync_and_async_calls_wait_out_a_full_server() -> None:
    with serving(max_concurrency="1", queue_timeout="0.01") as url:
        with Client(url, backoff=0.05) as client, ThreadPoolExecutor(6) as pool:
            calls = [
                pool.submit(client.loss, "cross_entropy", input=LOGITS, target=LABELS, grad=True)
                for _ in range(6)
            ]
            results = [call.result() for call in calls]
        assert busy(url) > 0

        async def scenario() -> list[LossResult]:
            async with AsyncClient(url, backoff=0.05) as client:
                work = [
                    client.loss("cross_entropy", input=LOGITS, target=LABELS, grad=True)
                    for _ in range(4)
                ]
                return list(await asyncio.gather(*work))

        results += asyncio.run(scenario())
    assert len(results) == 10
    for result in results:
        np.testing.assert_array_equal(result.loss, results[0].loss)
        assert result.grad["input"].shape == (1024, 1000)
