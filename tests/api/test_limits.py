"""The work budget, Content-Encoding, the receiving budget and readiness under saturation."""

import asyncio
import gzip
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.losses import REGISTRY
from tests.conftest import make_client, problem

JSON = {"content-type": "application/json"}
CE = b'{"input": [[1, 2, 3]], "target": [2]}'


def ctc(steps: int, labels: int) -> dict:
    return {
        "log_probs": np.log(np.full((steps, 1, 3), 1 / 3)).round(3).tolist(),
        "targets": [([1, 2] * labels)[:labels]],
        "input_lengths": [steps],
        "target_lengths": [labels],
    }


def test_a_ctc_lattice_past_max_work_is_a_413_naming_the_estimate(client: TestClient) -> None:
    """The attack's 140 KB request: T = 16,000, S = 8,000."""
    response = client.post("/v1/losses/ctc_loss", json=ctc(16_000, 8_000))
    found = problem(response, 413)
    assert found["detail"] == (
        "ctc_loss would take about 5.12 s of one core and 977 MiB (work 2.56); the limit is"
        " max_work (1, in units of 2 s or 1 GiB)"
    )
    assert (round(found["work"], 2), found["max_work"]) == (2.56, 1.0)  # to split by


def test_multilabel_margin_is_quadratic_in_the_classes(client: TestClient) -> None:
    body = {"input": [[0.5] * 40_000], "target": [[1, 2, -1] + [0] * 39_997]}
    detail = problem(client.post("/v1/losses/multilabel_margin_loss", json=body), 413)["detail"]
    assert detail.startswith("multilabel_margin_loss would take about 4.8 s of one core")


def test_the_same_request_under_the_budget_is_computed(client: TestClient) -> None:
    assert client.post("/v1/losses/ctc_loss", json=ctc(200, 100)).status_code == 200


def test_max_work_is_a_setting_and_holds_on_v2_and_across_a_batch() -> None:
    item = {"loss": "ctc_loss", **ctc(2_000, 1_000)}  # 0.08 s estimated, work 0.04
    with make_client(Settings(max_work=0.1)) as small:
        assert small.post("/v1/batch", json={"items": [item] * 2}).status_code == 200
        too_much = small.post("/v1/batch", json={"items": [item] * 3})
        assert problem(too_much, 413)["detail"].endswith(
            "the limit is max_work (0.1, in units of 2 s or 1 GiB)"
        )
        inputs = [
            {
                "name": "log_probs",
                "shape": [6000, 1, 3],
                "datatype": "FP32",
                "data": [-1.0986] * 18000,
            },
            {"name": "targets", "shape": [1, 3000], "datatype": "INT64", "data": [1] * 3000},
            {"name": "input_lengths", "shape": [1], "datatype": "INT64", "data": [6000]},
            {"name": "target_lengths", "shape": [1], "datatype": "INT64", "data": [3000]},
        ]
        v2 = small.post("/v2/models/ctc_loss/infer", json={"inputs": inputs})
        assert v2.status_code == 413
        assert v2.json()["error"].startswith("ctc_loss would take about")
        assert set(v2.json()) == {"error", "work", "max_work"}
        assert small.get("/v1/info").json()["limits"]["max_work"] == 0.1


def test_every_function_declares_a_cost() -> None:
    for spec in REGISTRY.values():
        assert callable(spec.cost)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("GZip", gzip.compress)],
)
def test_gzip_and_deflate_bodies_are_inflated(
    client: TestClient, encoding: str, compress: object
) -> None:
    headers = JSON | {"content-encoding": encoding}
    response = client.post("/v1/losses/cross_entropy", content=compress(CE), headers=headers)  # type: ignore[operator]
    assert response.status_code == 200
    assert (
        response.json()["loss"]
        == client.post("/v1/losses/cross_entropy", content=CE, headers=JSON).json()["loss"]
    )


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress])
@pytest.mark.parametrize("extra", [0, 1])
def test_a_body_inflating_to_the_limit_is_read_whole_and_one_byte_more_is_a_413(
    compress: object, extra: int
) -> None:
    """3 MB inflated from 3 KB: most of it in a worker thread, a quarter MiB at a time."""
    body = b'{"input": [0.5], "target": [0.25]}'
    limit = 3_000_000
    padded = body + b" " * (limit - len(body) + extra)
    with make_client(Settings(max_body_bytes=limit)) as small:
        headers = JSON | {"content-encoding": "gzip" if compress is gzip.compress else "deflate"}
        response = small.post("/v1/losses/mse_loss", content=compress(padded), headers=headers)  # type: ignore[operator]
    if extra:
        assert (
            problem(response, 413)["detail"] == f"the body exceeds max_body_bytes ({limit} bytes)"
        )
    else:
        assert response.status_code == 200
        assert response.json()["loss"] == 0.0625


def test_a_small_body_that_inflates_past_the_limit_is_a_413() -> None:
    bomb = gzip.compress(b"[" + b"0," * 5_000_000 + b"0]")  # 10 MB inflated, 10 KB sent
    with make_client(Settings(max_body_bytes=1_000_000)) as small:
        headers = JSON | {"content-encoding": "gzip"}
        response = small.post("/v1/losses/mse_loss", content=bomb, headers=headers)
    assert len(bomb) < 100_000
    assert problem(response, 413)["detail"] == "the body exceeds max_body_bytes (1000000 bytes)"


@pytest.mark.parametrize(
    ("content", "encoding", "status", "detail"),
    [
        (
            CE,
            "gzip",
            400,
            "the body is not valid gzip: Error -3 while decompressing data: incorrect header check",
        ),
        (gzip.compress(CE)[:-8], "gzip", 400, "the body ends before its gzip stream does"),
        (CE, "br", 415, "Content-Encoding 'br' is not supported; send gzip, deflate or identity"),
    ],
)
def test_bodies_that_are_not_what_they_say(
    client: TestClient, content: bytes, encoding: str, status: int, detail: str
) -> None:
    headers = JSON | {"content-encoding": encoding}
    response = client.post("/v1/losses/cross_entropy", content=content, headers=headers)
    assert problem(response, status)["detail"] == detail


def test_the_receiving_budget_is_a_503() -> None:
    with make_client(Settings(max_receiving_bytes=10)) as tight:
        response = tight.post("/v1/losses/cross_entropy", content=CE, headers=JSON)
    assert problem(response, 503)["detail"] == (
        "this worker is receiving max_receiving_bytes (10) of bodies already; retry shortly"
    )
    assert response.headers["retry-after"] == "1"


def test_readiness_is_503_while_every_slot_has_stayed_busy() -> None:
    with make_client(Settings(max_concurrency=1, unready_after=0.05)) as client:
        plane = client.app.state.dataplane  # type: ignore[attr-defined]

        async def hold() -> None:
            async with plane.slot(asyncio.Event().wait):
                await asyncio.sleep(0.2)
                response = await asyncio.to_thread(client.get, "/readyz")
                assert problem(response, 503)["detail"].startswith(
                    "every computation slot has been busy for "
                )
                v2 = await asyncio.to_thread(client.get, "/v2/health/ready")
                assert v2.status_code == 503
            assert plane.saturated_for() == 0.0

        client.portal.call(hold)  # type: ignore[union-attr]
        assert client.get("/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200
