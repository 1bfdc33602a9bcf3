"""`loss-service serve` in a subprocess on 127.0.0.1, with the environment a test gives it."""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from service.app import create_app
from service.config import Settings
from service.server import listen, uvicorn_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PROCESSES: dict[str, subprocess.Popen[bytes]] = {}
"""The server process behind each URL `serving` yields (to signal it)."""
PROBE_URLS: dict[str, str] = {}
"""The probe port's URL of each server `serving` yields."""
GRPC: dict[str, str] = {}
"""host:port of the gRPC server of each server `serving` yields."""
METRICS: dict[str, Path] = {}
"""The folder where each server `serving` yields keeps its workers' counts."""


@dataclass(frozen=True)
class Launched:
    process: subprocess.Popen[bytes]
    url: str
    probe_url: str
    grpc: str
    """host:port of its gRPC server."""
    metrics: Path
    """The folder of its workers' counts."""


def launch(**env: str) -> Launched:
    """`serve` on free ports, its metrics in a folder of its own. Settings are given by name:
    launch(max_connections="4")."""
    port, probe, grpc = free_port(), free_port(), free_port()
    variables = {f"LOSS_SERVICE_{k.upper()}": v for k, v in env.items()}
    metrics = tempfile.mkdtemp(prefix="loss-service-metrics-")
    defaults = {
        "LOSS_SERVICE_LOG_LEVEL": "error",
        "LOSS_SERVICE_PROBE_PORT": str(probe),
        "LOSS_SERVICE_GRPC_PORT": str(grpc),
        "LOSS_SERVICE_METRICS_DIR": metrics,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=os.environ | defaults | variables,
    )
    url, probe_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{probe}"
    grpc_address = f"127.0.0.1:{variables.get('LOSS_SERVICE_GRPC_PORT', grpc)}"
    return Launched(process, url, probe_url, grpc_address, Path(metrics) / str(port))


def wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx2.get(f"{url}/readyz").status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the server did not become ready")
        time.sleep(0.2)


@contextmanager
def serving(**env: str) -> Iterator[str]:
    """The server's base URL once /readyz answers; on exit, SIGTERM and a clean exit 0."""
    server = launch(**env)
    url = server.url
    PROCESSES[url], PROBE_URLS[url], METRICS[url] = server.process, server.probe_url, server.metrics
    GRPC[url] = server.grpc
    try:
        wait_ready(server.process, url)
        yield url
    finally:
        del PROCESSES[url], PROBE_URLS[url], METRICS[url], GRPC[url]
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0


@dataclass(frozen=True)
class Running:
    url: str
    probe_url: str
    settings: Settings


@contextmanager
def running(**overrides: Any) -> Iterator[Running]:
    """The app served in this process, in a thread, by uvicorn with the service's protocol
    (service.server's configuration and sockets), on free ports of 127.0.0.1: a real server
    whose connection layer coverage can see. Settings are given by name and type."""
    settings = Settings(
        host="127.0.0.1", port=free_port(), probe_port=free_port(), log_level="error", **overrides
    )
    config = uvicorn_config(settings, create_app(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": listen(settings, config)})
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield Running(
            f"http://127.0.0.1:{settings.port}", f"http://127.0.0.1:{settings.probe_port}", settings
        )
    finally:
        server.should_exit = True
        thread.join(30)
