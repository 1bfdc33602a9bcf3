"""Settings, read from LOSS_SERVICE_* environment variables."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.types import DEVICE_PATTERN


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOSS_SERVICE_", frozen=True, use_attribute_docstrings=True
    )

    host: str = "127.0.0.1"
    """Address `serve` binds to (use 0.0.0.0 in a container)."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    """TCP port `serve` listens on."""
    grpc_port: Annotated[int, Field(ge=0, le=65535)] = 8001
    """TCP port of the Open Inference Protocol over gRPC (and grpc.health.v1, and server
    reflection), on the same address, in every worker (0: none)."""
    probe_port: Annotated[int, Field(ge=0, le=65535)] = 8002
    """TCP port of the health probes and the metrics alone, on the same address, with
    connections of its own: the service's connections never crowd the probes out (0: none)."""
    workers: Annotated[int, Field(ge=1)] = 1
    """uvicorn worker processes; one per core scales across cores."""
    device: str = "auto"
    """Default device: auto (first CUDA device if any, else cpu), cpu, cuda or cuda:N."""
    torch_threads: Annotated[int, Field(ge=1)] = 1
    """torch intra-op threads per worker; more threads slow small requests down."""
    max_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024 * 1024
    """Largest accepted request body, enforced while it streams in (413 beyond)."""
    max_elements: Annotated[int, Field(ge=1)] = 16_777_216
    """Most tensor elements of one request, all tensors together (413 beyond)."""
    max_work: Annotated[float, Field(gt=0)] = 1.0
    """Largest estimated cost of one request (a batch's items together), in units of 2 s of
    one core or 1 GiB of memory, whichever it comes closer to (413 beyond)."""
    max_batch_items: Annotated[int, Field(ge=1)] = 1024
    """Most items of one /v1/batch request (413 beyond)."""
    body_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds a body may pause between chunks, and after which it must average min_body_rate
    (408 beyond)."""
    min_body_rate: Annotated[int, Field(ge=0)] = 16384
    """Bytes per second a body must average once it has taken body_timeout."""
    max_receiving_bytes: Annotated[int, Field(ge=1)] = 512 * 1024 * 1024
    """Bytes of request bodies one worker receives at once, all uploads together (503 beyond):
    the bound on what stalled uploads hold."""
    header_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds a request's head may take to arrive, counted from the connection (or the
    previous response); 408 and the connection closes beyond. The rest of a body refused
    before it was read must arrive within as long of the refusal, else the connection closes."""
    max_header_bytes: Annotated[int, Field(ge=1024)] = 65536
    """Largest request head, request line and headers (431 beyond)."""
    max_headers: Annotated[int, Field(ge=1)] = 100
    """Most headers in one request (431 beyond)."""
    max_connections: Annotated[int, Field(ge=1)] = 512
    """Open connections per worker on the service's port; beyond it only the health probes are
    served (503), and past 32 more a new connection is closed at once. The probe port takes 32
    connections of its own."""
    keep_alive_timeout: Annotated[int, Field(ge=1)] = 5
    """Seconds an idle keep-alive connection stays open."""
    write_timeout: Annotated[float, Field(gt=0)] = 30.0
    """Seconds one write of a response may wait for the client to read; past it the response
    is dropped and the connection closed."""
    shutdown_timeout: Annotated[int, Field(ge=1)] = 20
    """Seconds SIGTERM waits for requests in flight: keep it under the pod's
    terminationGracePeriodSeconds (45 in deploy/k8s): HTTP drains first, then gRPC, each for up to
    this long."""
    unready_after: Annotated[float, Field(gt=0)] = 10.0
    """Seconds every computation slot may stay busy before readiness answers 503, so that a
    load balancer sends new work elsewhere; liveness stays 200."""
    max_concurrency: Annotated[int, Field(ge=1)] = 4
    """Computations in flight per worker; further requests wait for a slot."""
    queue_timeout: Annotated[float, Field(ge=0)] = 1.0
    """Seconds a request waits for a computation slot before a 503 with Retry-After."""
    api_keys: str = ""
    """Comma-separated API keys; with none (and no api_keys_file) the service is open."""
    api_keys_file: Path | None = None
    """A file of API keys, one a line, re-read on SIGHUP."""
    log_level: str = "info"
    """Log level (uvicorn's and the access log's): critical, error, warning, info, debug or
    trace."""
    log_format: Literal["json", "text"] = "json"
    """Access log lines: one JSON object per request, or a line of text."""
    trim_after_bytes: Annotated[int, Field(ge=0)] = 1 << 20
    """After requests with bodies of at least this many bytes, once none has been in flight for
    a second, the memory they freed goes back to the system (glibc's malloc_trim); 0: never."""
    metrics_dir: Path = Path("/tmp/loss-service-metrics")
    """Where `serve`'s workers keep their counts, so that /metrics reports them all, whichever
    worker answers: a folder per port under it, emptied when `serve` starts."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError(
                f"LOSS_SERVICE_DEVICE must be auto, cpu, cuda or cuda:N, not {value!r}"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug", "trace")
        if value.lower() not in levels:
            raise ValueError(f"LOSS_SERVICE_LOG_LEVEL must be one of {', '.join(levels)}")
        return value.lower()
