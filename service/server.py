"""`loss-service serve`: uvicorn with the guarded protocol (service.http) on the service's port
and the probe port, in `workers` processes that share both sockets, the metrics of every
worker in one folder, and freed memory given back to the system."""

import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from service.config import Settings
from service.http import GuardedHttpTools

log = logging.getLogger("loss_service.server")


def serve(settings: Settings) -> None:
    """Runs until SIGTERM (or SIGINT), draining in-flight requests for shutdown_timeout."""
    metrics_folder(settings)
    config = uvicorn_config(settings, "service.app:create_app")
    sockets = listen(settings, config)
    # uvicorn drains in-flight requests on SIGTERM, then raises the signal again with the
    # handler it found installed: this one, so that a graceful stop exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    if settings.workers > 1:
        Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)


def uvicorn_config(settings: Settings, app: ASGIApp | str) -> uvicorn.Config:
    """uvicorn's configuration for `app`: an app, or the import string of the app factory
    (which each worker process calls)."""
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the service writes its own (service.metrics.Observe)
        http=GuardedHttpTools,
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


def listen(settings: Settings, config: uvicorn.Config) -> list[socket.socket]:
    """The listening sockets: the service's port, then the probe port if there is one."""
    sockets = [config.bind_socket()]
    if settings.probe_port:
        sockets.append(_bind(settings.host, settings.probe_port))
    return sockets


def metrics_folder(settings: Settings) -> Path:
    """The folder where every worker keeps its counts (prometheus_client's multiprocess mode),
    emptied, so that a restarted container does not count its requests twice. It is per port
    under metrics_dir; the workers find it in PROMETHEUS_MULTIPROC_DIR, which must be set
    before prometheus_client is first imported, so `serve` sets it first."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its folder was chosen")
    folder = settings.metrics_dir / str(settings.port)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket the workers inherit, bound as uvicorn binds its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        log.error("cannot bind the probe port %s:%d: %s", host, port, error)
        sys.exit(1)
    sock.set_inheritable(True)
    return sock
