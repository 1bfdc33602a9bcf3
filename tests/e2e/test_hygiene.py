"""Connections, timeouts and abandoned work against a real server on 127.0.0.1, the way a
hostile or careless client behaves; every loop is bounded in count and time."""

import gzip
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import orjson
import pytest

from tests.e2e.conftest import METRICS, PROBE_URLS, PROCESSES, launch, serving, wait_ready

SETTINGS = {
    "header_timeout": "1",
    "body_timeout": "1",
    "min_body_rate": "16384",
    "max_connections": "4",
    "write_timeout": "1",
    "max_concurrency": "1",
    "queue_timeout": "30",
}


@pytest.fixture(scope="module")
def strict() -> Iterator[str]:
    with serving(**SETTINGS) as url:
        yield url


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (10 s at most)."""
    received = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the server kept the connection open")


def test_headers_trickling_in_are_cut_with_a_408(strict: str) -> None:
    with connect(strict) as sock:
        sock.sendall(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n")
        for i in range(20):  # at most 4 s of trickle; the deadline is 1 s
            try:
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except OSError:
                break
            time.sleep(0.2)
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"the request's headers took longer than 1.0 s" in reply


def test_an_idle_connection_is_closed(strict: str) -> None:
    with connect(strict) as sock:
        start = time.monotonic()
        assert answer(sock).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    ("head", "detail"),
    [
        (b"".join(b"X-%d: 1\r\n" % i for i in range(150)), b"more than 100 headers"),
        (b"X-Big: " + b"a" * 70_000 + b"\r\n", b"headers exceed 65536 bytes"),
    ],
)
def test_too_many_or_too_large_headers_are_a_431(strict: str, head: bytes, detail: bytes) -> None:
    with connect(strict) as sock:
        sock.sendall(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert detail in reply


def test_a_body_slower_than_the_minimum_rate_is_a_408(strict: str) -> None:
    with connect(strict) as sock:
        sock.sendall(
            b"POST /v1/losses/mse_loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        for _ in range(40):  # 1 KB every 0.1 s for at most 4 s
            try:
                sock.sendall(b" " * 1024)
            except OSError:
                break
            time.sleep(0.1)
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"slower than min_body_rate (16384 bytes/s)" in reply or b"no byte" in reply


def test_beyond_max_connections_only_health_is_served(strict: str) -> None:
    held = [connect(strict) for _ in range(5)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert httpx2.get(f"{strict}/healthz").status_code == 200
        refused = httpx2.get(f"{strict}/v1/info")
        assert refused.status_code == 503
        assert refused.json()["detail"] == "this worker has more than 4 connections"
        assert len(refused.headers["x-request-id"]) == 32  # identified and counted as answers are
    finally:
        for sock in held:
            sock.close()


def test_a_result_not_read_is_dropped(strict: str) -> None:
    """A 4M-element gradient asked for and never read: the server stops after write_timeout."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 1000)).astype(np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [4000, 1000],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": logits.nbytes},
                },
                {
                    "name": "target",
                    "shape": [4000],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": 32000},
                },
            ],
            "parameters": {"grad": True, "binary_data_output": True},
        }
    )
    body = header + logits.tobytes() + rng.integers(0, 1000, 4000).tobytes()
    with connect(strict) as sock:
        sock.sendall(
            b"POST /v2/models/cross_entropy/infer HTTP/1.1\r\nHost: x\r\n"
            b"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
            % (len(header), len(body))
            + body
        )
        time.sleep(4)  # the socket's buffers fill; the server waits past write_timeout (1 s)
        reply = answer(sock)  # what the buffers held, then the end: the rest was dropped
    head, _, data = reply.partition(b"\r\n\r\n")
    size = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    assert size > 16_000_000 and len(data) < size


def test_the_event_loop_answers_health_while_an_expensive_request_computes(strict: str) -> None:
    """A small body with a large CTC lattice (1.3 s estimated, about 1 s here): computed in a
    thread, so the loop answers /healthz meanwhile."""
    rng = np.random.default_rng(1)
    steps, labels = 8000, 4000
    log_probs = np.log(np.full((steps, 1, 3), 1 / 3)).round(4)
    body = {
        "log_probs": log_probs.tolist(),
        "targets": [rng.integers(1, 3, labels).tolist()],
        "input_lengths": [steps],
        "target_lengths": [labels],
    }
    finished: dict[str, float] = {}

    def post() -> None:
        response = httpx2.post(f"{strict}/v1/losses/ctc_loss", json=body, timeout=60)
        assert response.status_code == 200, response.text
        finished["loss"] = time.monotonic()

    worker = threading.Thread(target=post)
    worker.start()
    time.sleep(0.3)
    assert httpx2.get(f"{strict}/healthz", timeout=10).status_code == 200
    finished["health"] = time.monotonic()
    worker.join(60)
    assert finished["health"] < finished["loss"]


def test_a_client_that_leaves_the_queue_is_not_computed(strict: str) -> None:
    rng = np.random.default_rng(2)
    steps, labels = 8000, 4000  # about 1.3 s estimated, within max_work
    body = orjson.dumps(
        {
            "log_probs": np.log(np.full((steps, 1, 3), 1 / 3)).round(4).tolist(),
            "targets": [rng.integers(1, 3, labels).tolist()],
            "input_lengths": [steps],
            "target_lengths": [labels],
        }
    )
    request = (
        b"POST /v1/losses/ctc_loss HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    first = threading.Thread(
        target=lambda: httpx2.post(
            f"{strict}/v1/losses/ctc_loss",
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        )
    )
    first.start()
    time.sleep(0.2)
    with connect(strict) as sock:  # waits for the only slot, then leaves
        sock.sendall(request)
        time.sleep(0.2)
    first.join(60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = httpx2.get(f"{strict}/metrics").text
        if 'route="/v1/losses/ctc_loss",status="499"} 1.0' in metrics:
            return
        time.sleep(0.1)
    raise AssertionError(f"the abandoned request was not dropped from the queue: {metrics}")


def test_a_client_that_leaves_during_its_body_is_a_499_not_a_500(strict: str) -> None:
    """Half a body, then the connection closes: the request is counted as the client's
    leaving, not as an unexpected error."""
    with connect(strict) as sock:
        sock.sendall(
            b"POST /v1/losses/mse_loss HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            b'{"input": [1.0, 2.0'
        )
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = httpx2.get(f"{strict}/metrics").text
        if 'route="/v1/losses/mse_loss",status="499"} 1.0' in metrics:
            assert 'status="500"' not in metrics
            return
        time.sleep(0.1)
    raise AssertionError(f"the request was not counted as the client's leaving: {metrics}")


def test_sigterm_cuts_an_upload_past_the_shutdown_timeout_with_a_503() -> None:
    server = launch(shutdown_timeout="2", body_timeout="30", min_body_rate="0")
    process, url = server.process, server.url
    try:
        wait_ready(process, url)
        with connect(url) as sock:
            sock.sendall(
                b"POST /v1/losses/mse_loss HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
            )
            time.sleep(0.3)
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            reply = answer(sock)
            assert process.wait(timeout=15) == 0
            assert time.monotonic() - start < 10
    finally:
        if process.poll() is None:
            process.kill()
    assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection: close\r\n" in reply
    assert reply.endswith(
        b'"detail":"the server is shutting down and the body was not all received; retry"}'
    )


def test_stalled_uploads_hold_no_more_than_the_receiving_budget() -> None:
    with serving(max_receiving_bytes="1000000", body_timeout="30", min_body_rate="0") as url:
        with connect(url) as stalled:
            stalled.sendall(
                b"POST /v1/losses/mse_loss HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
                + b" "
                * 900_000
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until the 900 KB are in
                refused = httpx2.post(
                    f"{url}/v1/losses/mse_loss",
                    content=b" " * 200_000 + b'{"input": [1], "target": [1]}',
                    headers={"content-type": "application/json"},
                )
                if refused.status_code == 503:
                    break
                time.sleep(0.1)
            assert refused.status_code == 503
            assert refused.json()["detail"] == (
                "this worker is receiving max_receiving_bytes (1000000) of bodies already;"
                " retry shortly"
            )
        small = httpx2.post(f"{url}/v1/losses/mse_loss", json={"input": [1], "target": [1]})
        assert small.status_code == 200


def test_sighup_rereads_the_key_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("old\n")
    body = {"input": [1.0], "target": [0.0]}
    with serving(api_keys_file=str(keys)) as url:
        old = {"Authorization": "Bearer old"}
        assert httpx2.post(f"{url}/v1/losses/mse_loss", json=body, headers=old).status_code == 200
        keys.write_text("new\n")
        PROCESSES[url].send_signal(signal.SIGHUP)
        new = {"Authorization": "Bearer new"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if httpx2.post(f"{url}/v1/losses/mse_loss", json=body, headers=new).status_code == 200:
                break
            time.sleep(0.1)
        assert httpx2.post(f"{url}/v1/losses/mse_loss", json=body, headers=new).status_code == 200
        assert httpx2.post(f"{url}/v1/losses/mse_loss", json=body, headers=old).status_code == 401


def test_the_probes_answer_with_600_idle_connections_open() -> None:
    """More idle connections than max_connections (512) and the service port's reserve (32):
    the probe port has connections of its own, so /healthz is answered at once, long before
    header_timeout (10 s) cuts any idle one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with serving() as url:
        idle = []
        try:
            start = time.monotonic()
            for _ in range(600):
                idle.append(connect(url))
            health = httpx2.get(f"{PROBE_URLS[url]}/healthz", timeout=5)
            answered = time.monotonic() - start
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}
            assert answered < 10
            for sock in idle[:512]:  # none of those the service took has been cut
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
        finally:
            for sock in idle:
                sock.close()


def test_health_is_answered_while_16_inflation_bombs_are_refused() -> None:
    """Each body is 65 KB of gzip that inflates past max_body_bytes (64 MiB): inflating them
    takes seconds of CPU, in worker threads, so the event loop answers /healthz meanwhile."""
    bomb = gzip.compress(b" " * (65 << 20), compresslevel=9)
    finished: list[tuple[float, int]] = []

    def post(url: str) -> None:
        response = httpx2.post(
            f"{url}/v1/losses/mse_loss",
            content=bomb,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
            timeout=60,
        )
        finished.append((time.monotonic(), response.status_code))

    with serving() as url:
        bombs = [threading.Thread(target=post, args=(url,)) for _ in range(16)]
        for thread in bombs:
            thread.start()
        time.sleep(0.1)
        assert httpx2.get(f"{url}/healthz", timeout=30).status_code == 200
        health = time.monotonic()
        for thread in bombs:
            thread.join(60)
    assert len(finished) == 16
    assert {status for _, status in finished} <= {413, 503}
    assert health < max(at for at, _ in finished)


def test_metrics_count_every_worker() -> None:
    """Two workers, each counting in its own file: whichever answers a scrape reports the
    requests of both."""
    body = {"input": [1.0], "target": [0.0]}
    with serving(workers="2") as url:
        folder = METRICS[url]
        sent = 0
        deadline = time.monotonic() + 60
        while len(list(folder.glob("counter_*.db"))) < 2 or sent < 40:
            assert time.monotonic() < deadline, "the second worker took no request"
            with ThreadPoolExecutor(8) as pool:  # a connection each, so both workers take some
                codes = [r.status_code for r in pool.map(lambda _: post(url, body), range(8))]
            assert codes == [200] * 8
            sent += 8
        line = (
            'loss_service_requests_total{loss="mse_loss",method="POST",protocol="http",'
            f'route="/v1/losses/mse_loss",status="200"}} {float(sent)}'
        )
        for base in [url] * 10 + [PROBE_URLS[url]] * 2:  # a new connection each
            assert line in httpx2.get(f"{base}/metrics").text.splitlines()


def post(url: str, body: dict[str, Any]) -> httpx2.Response:
    """A request on a connection of its own."""
    return httpx2.post(f"{url}/v1/losses/mse_loss", json=body)
