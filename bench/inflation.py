"""Inflation off the event loop: sixteen gzip bodies of 65 KB that each inflate past
max_body_bytes (64 MiB), sent at once, while a client asks /healthz every 10 ms. Reports how
long the sixteen refusals took, and /healthz's latency during them against its latency idle
(the floor), measured in the same run.
"""

import gzip
import statistics
import threading
import time

import httpx2

from bench.harness import PATH, serving

BOMBS = 16


def measure() -> dict:
    bomb = gzip.compress(b" " * (65 << 20), compresslevel=9)
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    with serving("service") as (url, _), httpx2.Client() as client:
        idle = _health(client, url, 100)
        statuses: list[int] = []

        def post() -> None:
            response = httpx2.post(url + PATH, content=bomb, headers=headers, timeout=120)
            statuses.append(response.status_code)

        bombs = [threading.Thread(target=post) for _ in range(BOMBS)]
        start = time.perf_counter()
        for thread in bombs:
            thread.start()
        during: list[float] = []
        while any(thread.is_alive() for thread in bombs):
            during += _health(client, url, 1)
            time.sleep(0.01)
        refused_s = time.perf_counter() - start
    return {
        "bomb_kb": len(bomb) / 1e3,
        "refused_s": refused_s,
        "statuses": sorted(set(statuses)),
        "health_idle_p50_ms": statistics.median(idle),
        "health_during_p50_ms": statistics.median(during),
        "health_during_max_ms": max(during),
        "health_probes": len(during),
    }


def _health(client: httpx2.Client, url: str, count: int) -> list[float]:
    found = []
    for _ in range(count):
        start = time.perf_counter()
        client.get(url + "/healthz", timeout=30)
        found.append((time.perf_counter() - start) * 1e3)
    return found


def report(section: dict) -> None:
    print(
        f"\n{BOMBS} gzip bombs of {section['bomb_kb']:.0f} KB, each inflating past the body"
        f" limit, at once: refused ({'/'.join(map(str, section['statuses']))}) in"
        f" {section['refused_s']:.2f} s; /healthz meanwhile p50"
        f" {section['health_during_p50_ms']:.2f} ms, max {section['health_during_max_ms']:.1f} ms"
        f" ({section['health_probes']} probes), idle p50 {section['health_idle_p50_ms']:.2f} ms:"
        f" {section['health_during_p50_ms'] / section['health_idle_p50_ms']:.1f}x"
    )
