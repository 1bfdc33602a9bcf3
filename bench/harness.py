"""The benchmark's harness: servers on loopback, load from http.client threads, cells."""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import numpy as np
import orjson

PATH = "/v1/losses/cross_entropy"
SERVERS = {
    "service": ["-m", "service", "serve"],
    "baseline": ["-m", "uvicorn", "bench.baseline:app", "--log-level", "warning"],
    "floor": ["-m", "uvicorn", "bench.floor:app", "--log-level", "warning"],
    "upload": ["-m", "uvicorn", "bench.upload:app", "--log-level", "warning"],
    "simdjson": ["-m", "uvicorn", "bench.simdjson_floor:app", "--log-level", "warning"],
    "granian": [  # the service's app under Granian, for the server A/B (bench/servers.py)
        *("-m", "granian", "--interface", "asgi", "--factory", "service.app:create_app"),
        *("--http", "1", "--loop", "uvloop", "--log-level", "warning"),
    ],
    "fastapi+simdjson": [
        *("-m", "uvicorn", "bench.fastapi_simdjson:app", "--log-level", "warning"),
        *("--http", "httptools", "--loop", "uvloop"),
    ],
}
GRPC: dict[str, str] = {}
"""host:port of the gRPC server of each service `serving` yields (by its URL)."""
SERVICE_ENV = {
    "LOSS_SERVICE_LOG_LEVEL": "warning",
    "LOSS_SERVICE_PROBE_PORT": "0",
    "LOSS_SERVICE_MAX_CONCURRENCY": "8",
    "LOSS_SERVICE_QUEUE_TIMEOUT": "120",  # measure queueing, not 503s
}


@dataclass
class Cell:
    server: str
    rows: int
    classes: int
    grad: bool
    clients: int
    requests: int
    p50_ms: float
    p90_ms: float
    requests_per_s: float
    ns_per_element: float
    errors: int


FORMS = ("17 digits", "float32", "3 decimals")
"""How pipelines write float32 logits: `json.dumps(x.tolist())` (every float32 as a 17-digit
double), orjson's shortest float32 form (about 9 digits), or rounded to three decimals."""


def body(rows: int, classes: int, grad: bool, form: str = "float32") -> bytes:
    """A cross entropy request: float32 logits written in `form`, and class indices."""
    rng = np.random.default_rng(rows * classes)
    logits = rng.normal(size=(rows, classes)).astype(np.float32)
    target = rng.integers(0, classes, rows)
    if form == "17 digits":
        return json.dumps(
            {"input": logits.tolist(), "target": target.tolist(), "grad": grad}
        ).encode()
    if form == "3 decimals":
        logits = np.round(logits.astype(np.float64), 3)
    content = {"input": logits, "target": target, "grad": grad}
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    name: str, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A server on a free port; `env` gives the service settings by name (TRIM_AFTER_BYTES)."""
    port = free_port()
    command = [sys.executable, *SERVERS[name], "--port", str(port)]
    if name != "service":
        command += ["--host", "127.0.0.1", "--workers", str(workers)]
    settings = {f"LOSS_SERVICE_{k}": v for k, v in (env or {}).items()}
    metrics = {"LOSS_SERVICE_METRICS_DIR": tempfile.mkdtemp(prefix="bench-metrics-")}
    grpc = free_port()
    variables = SERVICE_ENV | metrics | {"LOSS_SERVICE_GRPC_PORT": str(grpc)} | settings
    variables["LOSS_SERVICE_WORKERS"] = str(workers)
    process = subprocess.Popen(command, env=os.environ | variables)
    url = f"http://127.0.0.1:{port}"
    GRPC[url] = f"127.0.0.1:{variables['LOSS_SERVICE_GRPC_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"{url}/openapi.json").status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{name} did not start")
        if workers > 1:  # the first worker answered; give the others time to import torch
            time.sleep(10)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def load(
    url: str,
    content: bytes,
    clients: int,
    budget_s: float,
    cap: int,
    path: str = PATH,
    headers: dict[str, str] | None = None,
) -> tuple:
    """Latencies of `clients` threads posting `content`, until cap requests or the budget.

    The clients use http.client, whose C-buffered reads leave the two cores to the servers
    far more than a full-featured client would.
    """
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.perf_counter() + budget_s
    host, port = url.removeprefix("http://").split(":")
    headers = headers or {"content-type": "application/json"}

    def post(connection: http.client.HTTPConnection) -> int:
        connection.request("POST", path, content, headers)
        response = connection.getresponse()
        response.read()
        return response.status

    def client() -> None:
        nonlocal errors
        connection = http.client.HTTPConnection(host, int(port), timeout=600)
        while True:
            start = time.perf_counter()
            try:
                status = post(connection)
            except OSError:  # the server dropped the connection: an error, then a new one
                status = 0
                connection.close()
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors += status != 200
                if len(latencies) >= cap or time.perf_counter() > stop:
                    connection.close()
                    return

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - began


Post = tuple[bytes, str, dict[str, str]]
"""A request: body, path and headers."""


def cell(
    server: str,
    url: str,
    size: tuple[int, int],
    grad: bool,
    clients: int,
    request: Post | None = None,
) -> Cell:
    """One load: `request`, by default the v1 JSON cross entropy of `size`."""
    rows, classes = size
    elements = rows * classes
    budget = 4.0 if elements < 1e6 else 6.0
    cap = 400 if elements < 1e5 else 40
    content, path, headers = request or (body(rows, classes, grad), PATH, {})
    latencies, errors, wall = load(url, content, clients, budget, cap, path, headers or None)
    p50 = statistics.median(latencies)
    return Cell(
        server,
        rows,
        classes,
        grad,
        clients,
        len(latencies),
        p50 * 1e3,
        float(np.percentile(latencies, 90)) * 1e3,
        len(latencies) / wall,
        p50 * 1e9 / elements,
        errors,
    )


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss(request: Post, warm_up: Post) -> dict[str, float]:
    """A fresh service: resident memory idle (after `warm_up`), and its peak while serving
    `request`, against the request's body."""
    content, path, headers = request
    with serving("service") as (url, process):
        small, small_path, small_headers = warm_up
        httpx2.post(url + small_path, content=small, headers=small_headers)
        idle = status_kib(process.pid, "VmRSS")
        response = httpx2.post(url + path, content=content, headers=headers, timeout=300)
        peak = status_kib(process.pid, "VmHWM")
    if response.status_code != 200:
        raise RuntimeError(f"peak RSS request failed: {response.status_code}")
    return {
        "body_mib": len(content) / 2**20,
        "idle_mib": idle / 1024,
        "peak_mib": peak / 1024,
        "peak_over_idle_per_body": (peak - idle) * 1024 / len(content),
    }
