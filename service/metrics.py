"""Prometheus metrics: a registry per app, a pure ASGI middleware, and the /metrics route."""

import time
from collections.abc import Collection

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "loss", "status")
        self.requests = Counter(
            "loss_service_requests", "HTTP requests", labels, registry=self.registry
        )
        self.latency = Histogram(
            "loss_service_request_duration_seconds",
            "Time from request start to the end of the response",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template, function and status.

    The `loss` label holds the function's name (a loss, an activation: a /v2 model) where the
    route computes or describes one, else "".
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, names: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = scope.get("path_params", {}).get("name") or scope["path"].rsplit("/", 1)[-1]
            labels = (
                scope["method"],
                getattr(route, "path", "unmatched"),
                name if route is not None and name in self.names else "",
                str(status),
            )
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)


def build_router() -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus text format."""
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
