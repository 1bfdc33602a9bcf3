"""The /v2 binary path against the v1 JSON path and its floor, measured in the same run.

The floor of a binary request is its upload (bench/upload.py, a raw ASGI app that reads the
body and answers a constant) plus torch's own forward (and backward) in this process, on one
thread: what no server can avoid. Logits are full-precision float32 (binary data does not
care how many digits a number has); the JSON path is the v1 cells of the same run.
"""

import statistics
import time

import numpy as np
import orjson
import torch
import torch.nn.functional as F

from bench.harness import Cell, Post, cell, peak_rss, serving

SIZES = [(1024, 1000), (4096, 1000)]
PATH = "/v2/models/cross_entropy/infer"


def binary_request(rows: int, classes: int, grad: bool) -> Post:
    """A tritonclient-style request: JSON header, then the logits and targets as binary."""
    logits, target = tensors(rows, classes)
    header = {
        "inputs": [
            _input("input", logits, "FP32"),
            _input("target", target, "INT64"),
        ],
        "parameters": {"grad": grad, "binary_data_output": True},
    }
    text = orjson.dumps(header)
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(text)),
    }
    return text + logits.tobytes() + target.tobytes(), PATH, headers


def tensors(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rows * classes)
    return rng.normal(size=(rows, classes)).astype(np.float32), rng.integers(0, classes, rows)


def _input(name: str, array: np.ndarray, datatype: str) -> dict:
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": array.nbytes},
    }


def compute_ms(size: tuple[int, int], grad: bool, repeats: int) -> float:
    """p50 of torch's cross entropy (and its backward) in this process, on one thread."""
    torch.set_num_threads(1)
    logits, target = tensors(*size)
    times = []
    for _ in range(repeats + 1):
        x = torch.from_numpy(logits).requires_grad_(grad)
        start = time.perf_counter()
        loss = F.cross_entropy(x, torch.from_numpy(target))
        if grad:
            loss.backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 1e3


def measure(sizes: list[tuple[int, int]], json_cells: list[Cell], repeats: int) -> dict:
    """Binary and upload cells (1 client), the floors, the ratios, and the binary RSS peak."""
    cells: dict[str, dict] = {"binary": {}, "upload": {}}
    for server, name in (("service", "binary"), ("upload", "upload")):
        with serving(server) as (url, _):
            cell(server, url, (32, 10), True, 1, binary_request(32, 10, True))  # warm up
            for size in sizes:
                for grad in (False, True):
                    found = cell(f"{server} v2", url, size, grad, 1, binary_request(*size, grad))
                    cells[name][size, grad] = found
                    print(_row(name, found), flush=True)
    by_json = {(c.rows, c.classes, c.grad): c for c in json_cells if c.clients == 1}
    rows = []
    for size in sizes:
        for grad in (False, True):
            json_ms = by_json[(*size, grad)].p50_ms
            binary_ms = cells["binary"][size, grad].p50_ms
            floor_ms = cells["upload"][size, grad].p50_ms + compute_ms(size, grad, repeats)
            rows.append(
                {
                    "size": f"{size[0]}x{size[1]}",
                    "grad": grad,
                    "json_p50_ms": json_ms,
                    "binary_p50_ms": binary_ms,
                    "floor_ms": floor_ms,
                    "json_over_binary": json_ms / binary_ms,
                    "binary_over_floor": binary_ms / floor_ms,
                }
            )
    memory = peak_rss(binary_request(*sizes[-1], True), binary_request(2, 2, True))
    return {"rows": rows, "memory": memory}


def report(section: dict) -> None:
    print(
        "\n/v2 binary   grad   JSON p50   binary p50   floor (upload + compute)"
        "   JSON/binary   binary/floor"
    )
    for r in section["rows"]:
        print(
            f"{r['size']:11} {r['grad']!s:5} {r['json_p50_ms']:8.1f} ms"
            f" {r['binary_p50_ms']:9.1f} ms {r['floor_ms']:18.1f} ms {r['json_over_binary']:17.1f}"
            f" {r['binary_over_floor']:14.2f}"
        )
    m = section["memory"]
    print(
        f"binary peak RSS: {m['idle_mib']:.0f} MiB idle, {m['peak_mib']:.0f} MiB peak, body"
        f" {m['body_mib']:.1f} MiB: (peak - idle) / body = {m['peak_over_idle_per_body']:.2f}"
    )


def _row(name: str, c: Cell) -> str:
    return (
        f"{name:7} {c.rows:5}x{c.classes:<5} grad={c.grad!s:5} p50 {c.p50_ms:9.2f} ms"
        f"  p90 {c.p90_ms:9.2f} ms  n={c.requests} errors={c.errors}"
    )
