"""Overload: past MAX_CONCURRENCY computations and QUEUE_TIMEOUT of waiting, a 503."""

from concurrent.futures import ThreadPoolExecutor

import httpx2
import numpy as np
import orjson

from tests.e2e.conftest import serving


def test_requests_beyond_the_slots_get_503_with_retry_after() -> None:
    rng = np.random.default_rng(0)
    content = orjson.dumps(
        {
            "input": rng.normal(size=(1024, 1000)),
            "target": rng.integers(0, 1000, 1024),
            "grad": True,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )

    def post(_: int) -> httpx2.Response:
        return httpx2.post(
            f"{url}/v1/losses/cross_entropy",
            content=content,
            headers={"content-type": "application/json"},
            timeout=60,
        )

    with serving(max_concurrency="1", queue_timeout="0.01") as url, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(post, range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses, statuses
    assert set(statuses) == {200, 503}
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1"
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.json()["detail"] == "all 1 computation slots are busy; retry shortly"
