"""Observing requests: a Prometheus registry per app, a pure ASGI middleware that counts, times
and logs every request (with its id) and turns anything unexpected into a 500 problem, and
the /metrics route.

Under `serve` every worker keeps its counts in files in one folder (prometheus_client's
multiprocess mode, which PROMETHEUS_MULTIPROC_DIR turns on when prometheus_client is first
imported; service.server sets it), and /metrics adds up all the workers' files, so a scrape
sees the whole pod whichever worker answers it. In-process (tests), each app counts alone.
"""

import json
import logging
import os
import re
import secrets
import time
from collections.abc import Collection
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InternalError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""An X-Request-ID the service echoes; any other is replaced by a new one."""
SHARED = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
"""The folder of every worker's counts, where prometheus_client found one when imported."""
access = logging.getLogger("loss_service.access")
errors = logging.getLogger("loss_service.error")


class Metrics:
    """The app's series; `refused` counts and logs what the connection layer answers itself."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("protocol", "method", "route", "loss", "status")
        self.requests = Counter(
            "loss_service_requests", "Requests, HTTP and gRPC", labels, registry=self.registry
        )
        self.latency = Histogram(
            "loss_service_request_duration_seconds",
            "Time from request start to the end of the response",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._series: dict[tuple[str, ...], tuple[Any, Any]] = {}
        """Each label set's counter and histogram: prometheus' labels() locks and validates."""

    def record(self, labels: tuple[str, ...], seconds: float) -> None:
        """One request: (protocol, method, route, loss, status) and how long it took."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        series[0].inc()
        series[1].observe(seconds)

    def observed(self, app: ASGIApp, log_format: str) -> ASGIApp:
        """`app` with an id, a count and an access line per request, as the app's own answers
        have: for the refusals service.http answers in the app's place."""
        return Observe(app, self, (), log_format)

    def refused(self, status: int, seconds: float, bytes_out: int, log_format: str) -> str:
        """A refusal written before a request was whole (400, 408, 431: service.http), counted
        as method "other" on route "unmatched" and logged: its new request id."""
        request_id = secrets.token_hex(16)
        labels = ("http", "other", "unmatched", "", str(status))
        self.record(labels, seconds)
        log(request_id, "", labels, seconds, 0, bytes_out, log_format)
        return request_id


class Observe:
    """Every HTTP request: an id (X-Request-ID, echoed, or a new one), its metrics by method,
    route template, function and status, and one access log line; an unexpected exception is
    logged with its trace and the id, and answered with a 500 problem that shows neither.

    Label values are bounded by what the service declares: a path no route takes, or a method
    its route does not, counts as method "other" on route "unmatched"; `loss` is a function's
    name on the routes that compute or describe one, else "".
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, names: Collection[str], log_format: str
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.names = names
        self.log_format = log_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and REQUEST_ID.fullmatch(given) else secrets.token_hex(16)
        seen = {"status": 500, "started": False, "in": 0, "out": 0}

        async def counted_receive() -> Message:
            message = await receive()
            seen["in"] += len(message.get("body", b""))
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"], seen["started"] = message["status"], True
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counted_receive, observed_send)
        except Exception:
            errors.exception("unexpected error in request %s", request_id)
            if not seen["started"]:
                await _internal(scope, observed_send, request_id)
        finally:
            self._record(scope, seen, time.perf_counter() - start, request_id)

    def _record(self, scope: Scope, seen: dict[str, Any], seconds: float, request_id: str) -> None:
        route = scope.get("route")
        methods = getattr(route, "methods", None) or ()
        matched = route is not None and scope["method"] in methods
        name = scope.get("path_params", {}).get("name") or scope["path"].rsplit("/", 1)[-1]
        labels = (
            "http",
            scope["method"] if matched else "other",
            getattr(route, "path", "unmatched") if matched else "unmatched",
            name if matched and name in self.names else "",
            str(seen["status"]),
        )
        self.metrics.record(labels, seconds)
        bytes_in, bytes_out = seen["in"], seen["out"]
        log(
            request_id,
            scope["method"],
            labels,
            seconds,
            bytes_in,
            bytes_out,
            self.log_format,
        )


def log(
    request_id: str,
    method: str,
    labels: tuple[str, ...],
    seconds: float,
    bytes_in: int,
    bytes_out: int,
    log_format: str,
) -> None:
    """One access line, of the request's (protocol, method, route, loss, status) labels: a JSON
    object or a line of text, never tensor data or keys. An HTTP status is a number, a gRPC
    status its code's name (INVALID_ARGUMENT)."""
    if not access.isEnabledFor(logging.INFO):
        return
    protocol, _, route, loss, status = labels
    line = {
        "request_id": request_id,
        "protocol": protocol,
        "method": method[:16],
        "route": route,
        "loss": loss,
        "status": int(status) if status.isdigit() else status,
        "duration_ms": round(seconds * 1e3, 3),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
    }
    access.info(_format(line, log_format))


def _format(line: dict[str, Any], log_format: str) -> str:
    if log_format == "json":
        return json.dumps(line)
    return (
        f"{line['method']} {line['route']} {line['status']} {line['duration_ms']} ms"
        f" in={line['bytes_in']} out={line['bytes_out']} protocol={line['protocol']}"
        f" id={line['request_id']}" + (f" loss={line['loss']}" if line["loss"] else "")
    )


def _header(scope: Scope, name: bytes) -> str | None:
    """The first header named `name` (ASGI gives the names lowercased)."""
    for key, value in scope.get("headers", []):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def _internal(scope: Scope, send: Send, request_id: str) -> None:
    """The 500: a problem document (or /v2's error) naming the request id, no trace."""
    error = InternalError(f"an unexpected error; it is logged with request id {request_id}")
    response = error.response(scope["path"])

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)


def build_router() -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus text format."""
        registry = request.app.state.metrics.registry
        if SHARED is not None:  # every worker's counts, from their files
            registry = CollectorRegistry()
            MultiProcessCollector(registry, SHARED)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
