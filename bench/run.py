"""Benchmark: this service against a tutorial-style baseline, the framework floor and the
in-process limit, on loopback, all measured in one run.

    python -m bench.run [--quick] [--report bench/results/report.json]

Servers run one at a time, one uvicorn worker each, torch on one thread. Every cell sends a
bounded number of requests (and stops early past a time budget, after one per client). The
in-process limit is the service's own parse -> compute -> serialise function, without HTTP;
the floor (a FastAPI endpoint that reads the body and returns a constant) stands for the
upload time. Ratios are printed last; nothing here asserts a timing.
"""

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx2
import numpy as np
import orjson

SIZES = [(32, 10), (256, 100), (1024, 1000), (4096, 1000)]
QUICK_SIZES = [(32, 10), (256, 100), (1024, 1000)]
PATH = "/v1/losses/cross_entropy"
SERVERS = {
    "service": ["-m", "service", "serve"],
    "baseline": ["-m", "uvicorn", "bench.baseline:app", "--log-level", "warning"],
    "floor": ["-m", "uvicorn", "bench.floor:app", "--log-level", "warning"],
}
SERVICE_ENV = {
    "LOSS_SERVICE_LOG_LEVEL": "warning",
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


def body(rows: int, classes: int, grad: bool) -> bytes:
    """Logits with three decimals (as a pipeline would send float32 scores) and targets."""
    rng = np.random.default_rng(rows * classes)
    logits = np.round(rng.normal(size=(rows, classes)), 3)
    target = rng.integers(0, classes, rows)
    content = {"input": logits, "target": target, "grad": grad}
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(name: str, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    command = [sys.executable, *SERVERS[name], "--port", str(port)]
    if name != "service":
        command += ["--host", "127.0.0.1", "--workers", str(workers)]
    env = os.environ | SERVICE_ENV | {"LOSS_SERVICE_WORKERS": str(workers)}
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
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


def load(url: str, content: bytes, clients: int, budget_s: float, cap: int) -> tuple:
    """Latencies of `clients` threads posting `content`, until cap requests or the budget.

    The clients use http.client, whose C-buffered reads leave the two cores to the servers
    far more than a full-featured client would.
    """
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.perf_counter() + budget_s
    host, port = url.removeprefix("http://").split(":")
    headers = {"content-type": "application/json"}

    def post(connection: http.client.HTTPConnection) -> int:
        connection.request("POST", PATH, content, headers)
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


def cell(server: str, url: str, size: tuple[int, int], grad: bool, clients: int) -> Cell:
    rows, classes = size
    elements = rows * classes
    budget = 4.0 if elements < 1e6 else 6.0
    cap = 400 if elements < 1e5 else 40
    latencies, errors, wall = load(url, body(rows, classes, grad), clients, budget, cap)
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


def limit(size: tuple[int, int], grad: bool, repeats: int) -> float:
    """p50 seconds of the service's own pipeline in this process, without HTTP: the data
    plane's decode (JSON) -> engine -> encode (JSON)."""
    from functools import partial

    from service.api import requests
    from service.config import Settings
    from service.dataplane import DataPlane
    from service.engine import Engine
    from service.kinds import KINDS

    settings = Settings()
    plane = DataPlane(Engine(settings), settings)
    kind = KINDS[0]
    spec, content = kind.specs["cross_entropy"], body(*size, grad)
    encode = partial(requests.encode_result, kind)
    times = []
    for _ in range(repeats + 1):
        handed = bytearray(content)
        start = time.perf_counter()
        encoded = plane.execute(
            kind, spec, lambda: requests.decode_body(spec, handed, settings.max_elements), encode
        )
        if not isinstance(encoded, bytes):  # a streamed result: write it all, as a server would
            b"".join(encoded)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss(size: tuple[int, int]) -> dict[str, float]:
    """A fresh service: resident memory idle, and its peak while serving one request."""
    content = body(*size, True)
    with serving("service") as (url, process):
        httpx2.post(url + PATH, json={"input": [[0.0, 1.0]], "target": [1], "grad": True})
        idle = status_kib(process.pid, "VmRSS")
        response = httpx2.post(
            url + PATH, content=content, headers={"content-type": "application/json"}, timeout=300
        )
        peak = status_kib(process.pid, "VmHWM")
    if response.status_code != 200:
        raise RuntimeError(f"peak RSS request failed: {response.status_code}")
    return {
        "body_mib": len(content) / 2**20,
        "idle_mib": idle / 1024,
        "peak_mib": peak / 1024,
        "peak_over_idle_per_body": (peak - idle) * 1024 / len(content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip 4096x1000, fewer repeats")
    parser.add_argument("--report", type=Path, default=Path("bench/results/report.json"))
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES
    cells: list[Cell] = []
    for server in ("floor", "service", "baseline"):
        with serving(server) as (url, _):
            load(url, body(32, 10, True), 8, 2.0, 1000)  # warm up: first requests are slower
            for size in sizes:
                for grad in (False, True):
                    for clients in (1, 8):
                        cells.append(found := cell(server, url, size, grad, clients))
                        print(_row(found), flush=True)
    limits = {(s, g): limit(s, g, 3 if args.quick else 5) for s in sizes for g in (False, True)}
    with serving("service", workers=2) as (url, _):
        load(url, body(32, 10, True), 8, 2.0, 1000)
        two = cell("service x2", url, (256, 100), True, 8)
        print(_row(two), flush=True)
    memory = peak_rss((4096, 1000) if not args.quick else (1024, 1000))
    report = _report(cells, limits, two, memory)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2))
    _print_ratios(report)
    print(f"\nreport: {args.report}")


def _row(c: Cell) -> str:
    return (
        f"{c.server:11} {c.rows:5}x{c.classes:<5} grad={c.grad!s:5} clients={c.clients}"
        f"  p50 {c.p50_ms:9.2f} ms  p90 {c.p90_ms:9.2f} ms  {c.requests_per_s:8.1f} req/s"
        f"  {c.ns_per_element:9.1f} ns/elem  n={c.requests} errors={c.errors}"
    )


def _report(cells: list[Cell], limits: dict, two: Cell, memory: dict) -> dict:
    by = {(c.server, c.rows, c.classes, c.grad, c.clients): c for c in cells}
    ratios = []
    for (size, grad), seconds in limits.items():
        service, baseline = by["service", *size, grad, 1], by["baseline", *size, grad, 1]
        floor = by["floor", *size, grad, 1]
        ratios.append(
            {
                "size": f"{size[0]}x{size[1]}",
                "grad": grad,
                "service_p50_ms": service.p50_ms,
                "baseline_over_service": baseline.p50_ms / service.p50_ms,
                "limit_ms": seconds * 1e3,
                "upload_ms": floor.p50_ms,
                "service_over_limit_plus_upload": service.p50_ms / (seconds * 1e3 + floor.p50_ms),
                "service_over_floor": service.p50_ms / floor.p50_ms,
                "throughput_8_service_over_baseline": by["service", *size, grad, 8].requests_per_s
                / by["baseline", *size, grad, 8].requests_per_s,
            }
        )
    one = by["service", 256, 100, True, 8]
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cells": [asdict(c) for c in [*cells, two]],
        "ratios": ratios,
        "two_workers_over_one_at_256x100_8_clients": two.requests_per_s / one.requests_per_s,
        "memory": memory,
    }


def _print_ratios(report: dict) -> None:
    print(
        "\nsize        grad   service p50  baseline/service  service/(limit+upload)"
        "  service/floor  8-client rps service/baseline"
    )
    for r in report["ratios"]:
        print(
            f"{r['size']:11} {r['grad']!s:5} {r['service_p50_ms']:10.2f} ms"
            f" {r['baseline_over_service']:17.1f} {r['service_over_limit_plus_upload']:23.2f}"
            f" {r['service_over_floor']:14.2f} {r['throughput_8_service_over_baseline']:18.2f}"
        )
    print(
        "two workers / one, 256x100 grad, 8 clients:"
        f" {report['two_workers_over_one_at_256x100_8_clients']:.2f}"
    )
    m = report["memory"]
    print(
        f"peak RSS: {m['idle_mib']:.0f} MiB idle, {m['peak_mib']:.0f} MiB peak, body"
        f" {m['body_mib']:.1f} MiB: (peak - idle) / body = {m['peak_over_idle_per_body']:.2f}"
    )


if __name__ == "__main__":
    main()
