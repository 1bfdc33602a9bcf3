"""`loss-service serve` in a subprocess on 127.0.0.1, with the environment a test gives it."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PROCESSES: dict[str, subprocess.Popen[bytes]] = {}
"""The server process behind each URL `serving` yields (to signal it)."""


@contextmanager
def serving(**env: str) -> Iterator[str]:
    """The server's base URL once /readyz answers; on exit, SIGTERM and a clean exit 0."""
    port = free_port()
    variables = {f"LOSS_SERVICE_{k.upper()}": v for k, v in env.items()}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=os.environ | {"LOSS_SERVICE_LOG_LEVEL": "error"} | variables,
    )
    url = f"http://127.0.0.1:{port}"
    PROCESSES[url] = process
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        del PROCESSES[url]
        process.terminate()
        assert process.wait(timeout=15) == 0
