"""The server A/B behind docs/server.md: this service as `loss-service serve` runs it (uvicorn
with service.http's protocol) against the same app under Granian (Rust, hyper), 1 and 8
clients, small and large bodies, JSON and binary; three runs, alternating, median of the three.

Granian is a benchmark extra (`pip install -e '.[bench]'`); without it the section says so.
"""

import importlib.util
import statistics

from bench.harness import PATH, Cell, body, cell, serving
from bench.oip import binary_request

SERVERS = ("service", "granian")
RUNS = 3
CELLS = [
    ("JSON 32x10", (32, 10), False, None),
    ("JSON 256x100 grad", (256, 100), True, None),
    ("binary 256x100 grad", (256, 100), True, "binary"),
    ("binary 1024x1000 grad", (1024, 1000), True, "binary"),
]


def measure() -> dict:
    if importlib.util.find_spec("granian") is None:
        return {"skipped": "granian is not installed: pip install -e '.[bench]'"}
    found: dict[tuple[str, str, int], list[Cell]] = {}
    for _ in range(RUNS):
        for server in SERVERS:
            with serving(server) as (url, _):
                cell(server, url, (32, 10), True, 8)  # warm up
                for label, size, grad, binary in CELLS:
                    request = (
                        binary_request(*size, grad) if binary else (body(*size, grad), PATH, {})
                    )
                    for clients in (1, 8):
                        measured = cell(server, url, size, grad, clients, request)
                        found.setdefault((label, server, clients), []).append(measured)
    rows = []
    for label, *_ in CELLS:
        for clients in (1, 8):
            row: dict = {"cell": label, "clients": clients}
            for server in SERVERS:
                cells = found[label, server, clients]
                row[f"{server}_p50_ms"] = statistics.median(c.p50_ms for c in cells)
                row[f"{server}_rps"] = statistics.median(c.requests_per_s for c in cells)
                row[f"{server}_p50_runs"] = [round(c.p50_ms, 3) for c in cells]
                row[f"{server}_errors"] = sum(c.errors for c in cells)
            rows.append(row)
    return {"runs": RUNS, "rows": rows}


def report(section: dict) -> None:
    if "skipped" in section:
        print(f"\nserver A/B: skipped: {section['skipped']}")
        return
    print(f"\nserver A/B, median of {section['runs']} runs: uvicorn + service.http vs Granian")
    print(
        "cell                    clients   uvicorn p50   granian p50   granian/uvicorn"
        "   uvicorn req/s   granian req/s"
    )
    for r in section["rows"]:
        print(
            f"{r['cell']:23} {r['clients']:7} {r['service_p50_ms']:10.2f} ms"
            f" {r['granian_p50_ms']:10.2f} ms {r['granian_p50_ms'] / r['service_p50_ms']:17.2f}"
            f" {r['service_rps']:15.1f} {r['granian_rps']:15.1f}"
        )
