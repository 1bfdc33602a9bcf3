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
import json
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from bench import grading, idle_memory, inflation, oip, pipeline, precision, servers, triton
from bench.harness import PATH, Cell, body, cell, load, peak_rss, serving

SIZES = [(32, 10), (256, 100), (1024, 1000), (4096, 1000)]
SECTIONS = {
    "memory": ("idle_memory", idle_memory),
    "inflation": ("inflation", inflation),
    "servers": ("servers", servers),
    "triton": ("triton", triton),
    "grading": ("grading", grading),
}
"""Sections that measure on their own: --only name -> (the report's key, the module)."""
QUICK_SIZES = [(32, 10), (256, 100), (1024, 1000)]


def limit(size: tuple[int, int], grad: bool, repeats: int) -> float:
    """p50 seconds of the service's own pipeline in this process, without HTTP: the data
    plane's decode (JSON) -> engine -> encode (JSON)."""
    from functools import partial

    from service.api import requests
    from service.config import Settings
    from service.dataplane import Allowance, DataPlane
    from service.engine import Engine
    from service.kinds import KINDS

    settings = Settings()
    plane = DataPlane(Engine(settings), settings)
    kind = KINDS[0]
    spec, content = kind.specs["cross_entropy"], body(*size, grad)
    encode = partial(requests.encode_result, kind, spec)
    times = []
    for _ in range(repeats + 1):
        handed = bytearray(content)
        start = time.perf_counter()
        decode = partial(requests.decode_body, spec, handed, settings.max_elements)
        request = plane.admit(spec, decode, Allowance(settings.max_work))
        encoded = encode(request, plane.compute(kind, spec, request))
        if not isinstance(encoded, bytes):  # a streamed result: write it all, as a server would
            b"".join(encoded)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip 4096x1000, fewer repeats")
    parser.add_argument("--report", type=Path, default=Path("bench/results/report.json"))
    parser.add_argument(
        "--only",
        choices=["all", "v2", "pipeline", "precision", *SECTIONS],
        default="all",
        help="run one section alone: /v2 binary, the labeling pipeline, JSON precision, idle"
        " memory after large requests, /healthz under inflation bombs, the server A/B, or"
        " this service against a real Triton (REST and gRPC), or grading 1,000,000 x 100"
        " logits against torchmetrics and a hand-written loop",
    )
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES
    repeats = 3 if args.quick else 5
    v2_sizes = [s for s in oip.SIZES if s in sizes]
    if args.only == "precision":
        section = precision.measure(repeats)
        _write(args.report, {"precision": section})
        precision.report(section)
        return
    if args.only in SECTIONS:
        key, module = SECTIONS[args.only]
        section = module.measure()
        _write(args.report, {key: section})
        module.report(section)
        return
    if args.only == "pipeline":
        section = pipeline.measure()
        _write(args.report, {"pipeline": section})
        pipeline.report(section)
        return
    if args.only == "v2":
        with serving("service") as (url, _):
            cells = [cell("service", url, s, g, 1) for s in v2_sizes for g in (False, True)]
        section = oip.measure(v2_sizes, cells, repeats)
        _write(args.report, {"v2": section})
        oip.report(section)
        return
    cells: list[Cell] = []
    for server in ("floor", "service", "baseline"):
        with serving(server) as (url, _):
            load(url, body(32, 10, True), 8, 2.0, 1000)  # warm up: first requests are slower
            for size in sizes:
                for grad in (False, True):
                    for clients in (1, 8):
                        cells.append(found := cell(server, url, size, grad, clients))
                        print(_row(found), flush=True)
    limits = {(s, g): limit(s, g, repeats) for s in sizes for g in (False, True)}
    with serving("service", workers=2) as (url, _):
        load(url, body(32, 10, True), 8, 2.0, 1000)
        two = cell("service x2", url, (256, 100), True, 8)
        print(_row(two), flush=True)
    json_headers = {"content-type": "application/json"}
    size = (4096, 1000) if not args.quick else (1024, 1000)
    memory = peak_rss(
        (body(*size, True), PATH, json_headers), (body(2, 2, True), PATH, json_headers)
    )
    report = _report(cells, limits, two, memory)
    report["v2"] = oip.measure(v2_sizes, [c for c in cells if c.server == "service"], repeats)
    report["pipeline"] = pipeline.measure()
    report["precision"] = precision.measure(repeats)
    for key, module in SECTIONS.values():
        report[key] = module.measure()
    _write(args.report, report)
    _print_ratios(report)
    oip.report(report["v2"])
    pipeline.report(report["pipeline"])
    precision.report(report["precision"])
    for key, module in SECTIONS.values():
        module.report(report[key])


def _write(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nreport: {path}")


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
