"""The health probes' paths, and the answer to anything else on a connection that may serve
only them: one past max_connections on the service's port, or any on the probe port."""

from starlette.responses import Response

from service.errors import NotFound, ServiceError, Unavailable

PROBES = frozenset({b"/healthz", b"/readyz", b"/v2/health/live", b"/v2/health/ready"})
"""Liveness and readiness: served past max_connections, and on the probe port."""
PROBE_PORT = PROBES | {b"/metrics"}
"""What the probe port serves: the probes, and the metrics for a scraper."""


def refuse_beyond_probes(path: bytes, crowded: str | None = None) -> Response | None:
    """None where `path` is served; else the refusal, an ASGI app: on the probe port (no
    `crowded`) a 404, past max_connections a 503 saying `crowded`, which closes."""
    if crowded is None:
        if path in PROBE_PORT:
            return None
        known = ", ".join(sorted(p.decode() for p in PROBE_PORT))
        error: ServiceError = NotFound(f"the probe port serves only {known}")
    else:
        if path in PROBES:
            return None
        error = Unavailable(crowded, headers={"Connection": "close", "Retry-After": "1"})
    return error.response(path.decode("latin-1"))
