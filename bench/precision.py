"""JSON as pipelines write it: the service against the simdjson floor (bench/simdjson_floor.py)
on three body forms of the same float32 logits, and where the service's time goes.

- "17 digits": `json.dumps(x.tolist())`, every float32 written as a 17-digit double;
- "float32": orjson's shortest float32 form, about 9 digits;
- "3 decimals": rounded, the one form that flatters a JSON parser.
"""

import statistics
import time

from bench.harness import FORMS, PATH, Cell, body, cell, serving

SIZES = [(32, 10), (256, 100), (1024, 1000)]


def phases(size: tuple[int, int], grad: bool, form: str, repeats: int) -> dict[str, float]:
    """p50 ms of each phase of the service's pipeline in this process: parse (the fields and
    the tensors), validation, compute, write (encode, joined)."""
    from service.api import requests
    from service.config import Settings
    from service.engine import Engine
    from service.kinds import KINDS

    settings = Settings()
    engine, kind = Engine(settings), KINDS[0]
    spec = kind.specs["cross_entropy"]
    content = body(*size, grad, form)
    found: dict[str, list[float]] = {"parse": [], "validate": [], "compute": [], "write": []}
    for _ in range(repeats + 1):
        handed = bytearray(content)  # the server's own buffer, which decoding may write into
        marks = [time.perf_counter()]
        request = requests.decode_body(spec, handed, settings.max_elements)
        marks.append(time.perf_counter())
        arrays = spec.validate(request.arrays, request.params, request.options)
        marks.append(time.perf_counter())
        result = kind.run(engine, spec, arrays, request.params, request.options)
        marks.append(time.perf_counter())
        written = requests.encode_result(kind, spec, request, result)
        if not isinstance(written, bytes):
            b"".join(written)
        marks.append(time.perf_counter())
        for name, start, stop in zip(found, marks, marks[1:], strict=False):
            found[name].append((stop - start) * 1e3)
    return {name: statistics.median(times[1:]) for name, times in found.items()}


SERVERS = {
    "service": "service",
    "floor": "simdjson",
    "upload": "upload",
    "peer": "fastapi+simdjson",
}
"""Each column's server; the peer (bench/fastapi_simdjson.py) is measured at the smallest size."""


def measure(repeats: int) -> dict:
    cells: dict[str, dict] = {name: {} for name in SERVERS}
    for name, server in SERVERS.items():
        with serving(server) as (url, _):
            cell(server, url, (32, 10), True, 1, (body(32, 10, True), PATH, {}))  # warm up
            for size in SIZES[:1] if name == "peer" else SIZES:
                for grad in (False, True):
                    for form in FORMS:
                        request = (body(*size, grad, form), PATH, {})
                        found: Cell = cell(f"{server} {form}", url, size, grad, 1, request)
                        cells[name][size, grad, form] = found
                        print(_row(found), flush=True)
    rows = []
    for size in SIZES:
        for grad in (False, True):
            for form in FORMS:
                key = (size, grad, form)
                service, floor = cells["service"][key], cells["floor"][key]
                peer = cells["peer"].get(key)
                rows.append(
                    {
                        "size": f"{size[0]}x{size[1]}",
                        "grad": grad,
                        "form": form,
                        "body_kib": len(body(*size, grad, form)) / 1024,
                        "service_p50_ms": service.p50_ms,
                        "floor_p50_ms": floor.p50_ms,
                        "service_over_floor": service.p50_ms / floor.p50_ms,
                        "peer_p50_ms": peer and peer.p50_ms,
                        "service_over_peer": peer and service.p50_ms / peer.p50_ms,
                        "body_read_ms": cells["upload"][key].p50_ms,
                        **{f"{k}_ms": v for k, v in phases(size, grad, form, repeats).items()},
                    }
                )
    return {"rows": rows}


def report(section: dict) -> None:
    print(
        "\nJSON forms   grad  form         body KiB  service p50  floor p50  service/floor"
        "  service/peer   body read  parse  validate  compute  write (ms)"
    )
    for r in section["rows"]:
        peer = f"{r['service_over_peer']:13.2f}" if r["service_over_peer"] else " " * 13
        print(
            f"{r['size']:11} {r['grad']!s:5} {r['form']:11} {r['body_kib']:9.1f}"
            f" {r['service_p50_ms']:9.2f} ms {r['floor_p50_ms']:7.2f} ms"
            f" {r['service_over_floor']:12.2f}{peer} {r['body_read_ms']:11.2f}"
            f" {r['parse_ms']:6.2f} {r['validate_ms']:9.2f} {r['compute_ms']:8.2f}"
            f" {r['write_ms']:6.2f}"
        )


def _row(c: Cell) -> str:
    return (
        f"{c.server:22} {c.rows:5}x{c.classes:<5} grad={c.grad!s:5}"
        f" p50 {c.p50_ms:9.2f} ms n={c.requests}"
    )
