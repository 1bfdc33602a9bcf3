"""This service against a real Triton server, over REST with binary tensors and over gRPC, in
one run: cross entropy with its gradient on float32 logits and int64 targets, sent and read by
tritonclient (HTTP and gRPC) for both, outputs as binary data.

The peer is nvidia-pytriton 0.7.0 (it bundles tritonserver 2.51) with the loss bound as a
Python function (bench/triton_server.py). Its Python backend stub links Debian's
libpython3.11, so its venv (.bench-triton, made on first use) takes /usr/bin/python3.11 and
numpy<2; where that interpreter is missing the section is skipped, saying so.

Cells: 1 client p50 and 8 clients' requests/s at each size; each server runs alone, one
worker, torch on one thread. The servers take turns, RUNS times, and each cell is the median
of its runs: on this shared 2-core machine one run's cells move by up to a third.
"""

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from bench.harness import GRPC, free_port, serving
from bench.oip import tensors

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / ".bench-triton"
PEER_PYTHON = Path("/usr/bin/python3.11")
PEER_PACKAGES = [
    "nvidia-pytriton==0.7.0",
    "numpy<2",
    f"torch=={os.environ.get('TORCH_VERSION', '2.13.0')}",
]
SIZES = [(256, 100), (1024, 1000), (4096, 1000)]
PROTOCOLS = ("rest", "grpc")
BUDGET_S, CAP = 4.0, 300
RUNS = 3
Infer = Callable[[], None]


def measure() -> dict:
    if not PEER_PYTHON.exists():
        return {"skipped": f"{PEER_PYTHON} is missing: the Triton peer's backend stub needs it"}
    python = _peer_venv()
    runs: dict[str, list[dict]] = {"service": [], "triton": []}
    for _ in range(RUNS):
        with serving("service") as (url, _):
            address = url.removeprefix("http://")
            runs["service"].append(_cells(address, GRPC[url], {"grad": True}))
        with _triton(python) as (http, grpc):
            runs["triton"].append(_cells(http, grpc, None))
    cells = {server: _median(found) for server, found in runs.items()}
    rows = []
    for protocol in PROTOCOLS:
        for rows_, classes in SIZES:
            key = f"{rows_}x{classes}"
            service, triton = cells["service"][protocol][key], cells["triton"][protocol][key]
            rows.append(
                {
                    "protocol": protocol,
                    "size": key,
                    "service_p50_ms": service["p50_ms"],
                    "triton_p50_ms": triton["p50_ms"],
                    "service_rps_8": service["rps_8"],
                    "triton_rps_8": triton["rps_8"],
                    "p50_triton_over_service": triton["p50_ms"] / service["p50_ms"],
                    "rps_service_over_triton": service["rps_8"] / triton["rps_8"],
                }
            )
    grpc_over_rest = {
        f"{r}x{c}": cells["service"]["grpc"][f"{r}x{c}"]["p50_ms"]
        / cells["service"]["rest"][f"{r}x{c}"]["p50_ms"]
        for r, c in SIZES
    }
    return {
        "runs": RUNS,
        "cells": cells,
        "each_run": runs,
        "rows": rows,
        "service_grpc_over_rest_p50": grpc_over_rest,
    }


def _median(runs: list[dict]) -> dict:
    """Each cell's median over the runs."""
    return {
        protocol: {
            size: {
                key: statistics.median(run[protocol][size][key] for run in runs)
                for key in runs[0][protocol][size]
            }
            for size in runs[0][protocol]
        }
        for protocol in runs[0]
    }


def report(section: dict) -> None:
    if "skipped" in section:
        print(f"\nTriton: skipped: {section['skipped']}")
        return
    print(
        "\nprotocol size        p50 service  p50 Triton  Triton/service   8-client req/s"
        " service  Triton  service/Triton"
    )
    for r in section["rows"]:
        print(
            f"{r['protocol']:8} {r['size']:10} {r['service_p50_ms']:9.2f} ms"
            f" {r['triton_p50_ms']:8.2f} ms {r['p50_triton_over_service']:14.2f}"
            f" {r['service_rps_8']:26.1f} {r['triton_rps_8']:7.1f}"
            f" {r['rps_service_over_triton']:15.2f}"
        )
    ratios = ", ".join(f"{k} {v:.2f}" for k, v in section["service_grpc_over_rest_p50"].items())
    print(f"this service, gRPC p50 / REST p50: {ratios} (medians of {section['runs']} runs)")


def _peer_venv() -> Path:
    """The peer's interpreter, its venv made and filled on first use (without the project's
    constraints: the peer takes numpy<2)."""
    python = PEER / "bin" / "python"
    if not (PEER / ".ready").exists():
        subprocess.run([str(PEER_PYTHON), "-m", "venv", "--clear", str(PEER)], check=True)
        env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*install, *PEER_PACKAGES], check=True, env=env)
        (PEER / ".ready").touch()
    return python


@contextmanager
def _triton(python: Path) -> Iterator[tuple[str, str]]:
    http, grpc, metrics = free_port(), free_port(), free_port()
    script = ROOT / "bench" / "triton_server.py"
    process = subprocess.Popen(
        [str(python), str(script), str(http), str(grpc), str(metrics)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not _ready(f"http://127.0.0.1:{http}/v2/models/cross_entropy/ready"):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the Triton peer did not start")
            time.sleep(0.5)
        yield f"127.0.0.1:{http}", f"127.0.0.1:{grpc}"
    finally:
        process.terminate()
        process.wait(timeout=60)


def _ready(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=2).status_code == 200
    except httpx2.TransportError:
        return False


def _cells(http: str, grpc: str, parameters: dict[str, Any] | None) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for protocol, address in (("rest", http), ("grpc", grpc)):
        found[protocol] = {}
        for rows, classes in SIZES:
            logits, target = tensors(rows, classes)

            client = partial(_client, protocol, address, logits, target, parameters)
            _load(client, 1, 1.0, 5)  # warm up
            one = _load(client, 1, BUDGET_S, CAP)
            eight = _load(client, 8, BUDGET_S, CAP)
            found[protocol][f"{rows}x{classes}"] = {
                "p50_ms": statistics.median(one[0]) * 1e3,
                "rps_8": len(eight[0]) / eight[1],
                "requests": len(one[0]) + len(eight[0]),
            }
            print(
                f"{'service' if parameters else 'triton':7} {protocol:4} {rows}x{classes}:"
                f" p50 {found[protocol][f'{rows}x{classes}']['p50_ms']:.2f} ms,"
                f" 8 clients {found[protocol][f'{rows}x{classes}']['rps_8']:.1f} req/s",
                flush=True,
            )
    return found


def _client(
    protocol: str,
    address: str,
    logits: np.ndarray,
    target: np.ndarray,
    parameters: dict[str, Any] | None,
) -> Infer:
    """One client's infer(): its own connection, the request built once."""
    module: Any = triton_http if protocol == "rest" else triton_grpc
    client = module.InferenceServerClient(address)
    inputs = [
        module.InferInput("input", list(logits.shape), "FP32"),
        module.InferInput("target", list(target.shape), "INT64"),
    ]
    if protocol == "rest":
        inputs[0].set_data_from_numpy(logits, binary_data=True)
        inputs[1].set_data_from_numpy(target, binary_data=True)
        outputs = [module.InferRequestedOutput(n, binary_data=True) for n in ("loss", "grad_input")]
    else:
        inputs[0].set_data_from_numpy(logits)
        inputs[1].set_data_from_numpy(target)
        outputs = [module.InferRequestedOutput(n) for n in ("loss", "grad_input")]

    def infer() -> None:
        result = client.infer("cross_entropy", inputs, outputs=outputs, parameters=parameters)
        result.as_numpy("grad_input")

    return infer


def _load(
    make: Callable[[], Infer], clients: int, budget: float, cap: int
) -> tuple[list[float], float]:
    """Latencies of `clients` threads, each with its own client, until cap requests or the
    budget; and the wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + budget
    infers = [make() for _ in range(clients)]

    def run(infer: Infer) -> None:
        while True:
            start = time.perf_counter()
            infer()
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if len(latencies) >= cap or time.perf_counter() > stop:
                    return

    began = time.perf_counter()
    threads = [threading.Thread(target=run, args=(infer,)) for infer in infers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - began
