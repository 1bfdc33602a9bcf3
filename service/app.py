"""create_app(settings) -> FastAPI: lifespan, routers, error handlers, middleware."""

import asyncio
import gc
import logging
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from service import __version__, metrics
from service.api import batch, docs, finalize, health, oip, v1
from service.api.body import Receiving, gone
from service.api.direct import Direct, direct_routes
from service.api.framing import Framing
from service.api.models import BatchRequest, FinalizeRequest
from service.api.schemas import request_model
from service.auth import Authenticate, Keys, guarded
from service.config import Settings
from service.dataplane import DataPlane, Gone
from service.engine import Engine
from service.errors import MethodNotAllowed, NotFound, ServiceError, from_validation_errors
from service.grpc import server as grpc_server
from service.kinds import KINDS, MODELS
from service.memory import GiveBack
from service.metrics import Metrics, Observe
from service.protocol.structs import SCHEMAS as PROTOCOL

DESCRIPTION = """PyTorch loss functions and their gradients over HTTP.

Every loss is named after its `torch.nn.functional` function and takes the same tensors,
keyword arguments and defaults. Errors are `application/problem+json` (RFC 9457)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = Engine(settings)
        await run_in_threadpool(engine.warm_up)
        gc.freeze()  # the app's and torch's objects live on: spare them every collection
        app.state.dataplane = DataPlane(engine, settings)
        grpc = None
        if settings.grpc_port:
            grpc = await grpc_server.start(
                app.state.dataplane, settings, app.state.keys, app.state.metrics
            )
        reload = settings.api_keys_file is not None and _on_sighup(app.state.keys.reload)
        # The server's state: service.http reads its limits there, and counts its refusals.
        yield {"settings": settings, "metrics": app.state.metrics}
        if reload:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if grpc is not None:  # uvicorn has drained HTTP; gRPC calls in flight get as long
            await grpc.stop(settings.shutdown_timeout)

    app = FastAPI(
        title="loss-service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # service.api.docs serves them, without a CDN
        redoc_url=None,
        generate_unique_id_function=_operation_id,
        # The service counts and times requests itself (service.metrics) and configures no
        # OpenTelemetry provider; FastAPI would look for one on every request (about 15 us).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.receiving = Receiving(settings.max_receiving_bytes)
    app.state.metrics = Metrics()
    include_routers(app)
    app.state.keys = Keys(settings)
    app.add_middleware(Direct, routes=direct_routes(_routes(app.routes)))
    app.add_middleware(Authenticate, keys=app.state.keys)
    app.add_middleware(
        Observe, metrics=app.state.metrics, names=MODELS.keys(), log_format=settings.log_format
    )
    app.add_middleware(GiveBack, threshold=settings.trim_after_bytes)
    app.add_middleware(Framing, max_body_bytes=settings.max_body_bytes)
    _log_to_stderr(settings)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(Gone, _gone)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _on_sighup(reload: Callable[[], None]) -> bool:
    """Calls `reload` on SIGHUP where the platform and the thread allow a handler."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
        return False
    return True


def _log_to_stderr(settings: Settings) -> None:
    """The service's own logs (access lines, unexpected errors) go to stderr, in every worker,
    unless the process logs through the root logger already (pytest, an embedding app)."""
    logger = logging.getLogger("loss_service")
    logger.setLevel(settings.log_level.upper() if settings.log_level != "trace" else "DEBUG")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def include_routers(app: FastAPI) -> None:
    """The one place routers are attached."""
    app.include_router(health.router)
    app.include_router(finalize.router)  # before /v1/grades/{name}
    app.include_router(v1.build_router(KINDS))
    app.include_router(batch.router)
    app.include_router(oip.build_router())
    app.include_router(metrics.build_router())
    docs.attach(app)


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


async def _service_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, ServiceError):  # pragma: no cover - registered for ServiceError only
        raise error
    return _render(request, error)


def _render(request: Request, error: ServiceError) -> Response:
    return error.response(request.url.path)


async def _gone(request: Request, error: Exception) -> Response:
    return gone()


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404 and 405 (unknown path, wrong method) as problem documents."""
    if not isinstance(error, HTTPException):  # pragma: no cover
        raise error
    if error.status_code == 405:
        problem: ServiceError = MethodNotAllowed(f"{request.method} is not allowed on this path")
        problem.headers["Allow"] = ", ".join(_allowed(request))
    elif error.status_code == 404:
        problem = NotFound(f"no route for {request.method} {request.url.path}")
    else:
        problem = ServiceError(str(error.detail))
        problem.status = error.status_code
    return _render(request, problem)


async def _validation_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, RequestValidationError):  # pragma: no cover
        raise error
    return _render(request, from_validation_errors(error.errors()))


def _allowed(request: Request) -> list[str]:
    """The methods the path takes, as OpenAPI documents them: those of the documented routes
    declared for it literally (POST /v1/losses/cross_entropy), else of the documented
    templates it matches, else of the undocumented ones (Starlette names only the first
    route's, where a GET and a POST route share a path)."""
    probe = {**request.scope, "method": "GET"}
    found: dict[tuple[bool, bool], set[str]] = defaultdict(set)
    for route in _routes(request.app.routes):
        if isinstance(route, APIRoute) and route.matches(probe)[0] != Match.NONE:
            key = (route.include_in_schema, route.path == request.url.path)
            found[key] |= route.methods or set()
    order = [(True, True), (True, False), (False, True), (False, False)]
    return sorted(next((found[key] for key in order if found[key]), set()))


def _routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes, those of included routers among them."""
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from _routes(included.routes) if included is not None else (route,)


def _declare_keys(schema: dict[str, Any]) -> None:
    """The bearer scheme, on every operation that takes a key when keys are configured."""
    schema["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, required where LOSS_SERVICE_API_KEYS or"
            " LOSS_SERVICE_API_KEYS_FILE sets any.",
        }
    }
    for path, operations in schema["paths"].items():
        if guarded(path):
            for operation in operations.values():
                operation["security"] = [{"bearer": []}, {}]
                operation["responses"].setdefault("401", {"description": "No or a wrong API key"})


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the per-loss request schemas that the POST routes refer to."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for spec in (spec for kind in KINDS for spec in kind.specs.values()):
            model = request_model(spec)
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[model.__name__] = definition
        components["BatchRequest"] = BatchRequest.model_json_schema()
        finalize_schema = FinalizeRequest.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(finalize_schema.pop("$defs", {}))
        components["FinalizeRequest"] = finalize_schema
        _, protocol = msgspec.json.schema_components(
            PROTOCOL, ref_template="#/components/schemas/{name}"
        )
        components.update(protocol)
        _declare_keys(schema)
        app.openapi_schema = schema
    return app.openapi_schema
