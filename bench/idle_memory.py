"""Idle memory after large requests: eight rounds of four 62 MB requests (cross entropy of
6000 x 1000 float32 logits as orjson writes them, with grad), four at a time, the worker's
resident memory read idle after each round. Measured as the service runs (freed memory given
back after large requests) and with that turned off (LOSS_SERVICE_TRIM_AFTER_BYTES=0).

Goal: after the eighth round, idle RSS within 100 MB of what it was after the first.
"""

import threading
import time

import httpx2
import numpy as np
import orjson

from bench.harness import PATH, serving, status_kib

ROUNDS, AT_ONCE = 8, 4
VARIANTS = {"given back (default)": {}, "kept (TRIM_AFTER_BYTES=0)": {"TRIM_AFTER_BYTES": "0"}}


def body() -> bytes:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6000, 1000)).astype(np.float32)
    target = rng.integers(0, 1000, 6000)
    content = {"input": logits, "target": target, "grad": True}
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def rounds(content: bytes, env: dict[str, str]) -> dict:
    """Idle RSS (MiB) before the first round and after each, and each round's seconds."""
    headers = {"content-type": "application/json"}
    with serving("service", env=env) as (url, process):
        httpx2.post(url + PATH, json={"input": [[1.0, 2.0]], "target": [1]})
        idle = [status_kib(process.pid, "VmRSS") / 1024]
        seconds = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            posts = [
                threading.Thread(
                    target=httpx2.post,
                    args=(url + PATH,),
                    kwargs={"content": content, "headers": headers, "timeout": 300},
                )
                for _ in range(AT_ONCE)
            ]
            for post in posts:
                post.start()
            for post in posts:
                post.join()
            seconds.append(time.perf_counter() - start)
            time.sleep(2.0)  # memory goes back a second after the round's last request
            idle.append(status_kib(process.pid, "VmRSS") / 1024)
    return {"idle_mib": idle, "round_s": seconds, "growth_mib": idle[-1] - idle[1]}


def measure() -> dict:
    content = body()
    found = {name: rounds(content, env) for name, env in VARIANTS.items()}
    return {"body_mb": len(content) / 1e6, "variants": found}


def report(section: dict) -> None:
    print(
        f"\nidle RSS after rounds of {AT_ONCE} requests of {section['body_mb']:.1f} MB"
        " (MiB: before, then after each round; growth from round 1 to 8)"
    )
    for name, found in section["variants"].items():
        idle = " ".join(f"{m:5.0f}" for m in found["idle_mib"])
        rounds_s = sorted(found["round_s"])
        print(
            f"{name:26} {idle}   growth {found['growth_mib']:+6.0f}"
            f"   round median {rounds_s[len(rounds_s) // 2]:.2f} s"
        )
