"""create_app(settings) -> FastAPI: lifespan, routers, error handlers, middleware."""

import gc
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
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
from service.api import batch, health, oip, v1
from service.api.body import Receiving
from service.api.models import BatchRequest
from service.api.schemas import request_model
from service.config import Settings
from service.dataplane import DataPlane
from service.engine import Engine
from service.errors import MethodNotAllowed, NotFound, ServiceError, from_validation_errors
from service.kinds import KINDS, MODELS
from service.metrics import Metrics, MetricsMiddleware
from service.protocol import SCHEMAS as PROTOCOL
from service.protocol import InferenceError

DESCRIPTION = """PyTorch loss functions and their gradients over HTTP.

Every loss is named after its `torch.nn.functional` function and takes the same tensors,
keyword arguments and defaults. Errors are `application/problem+json` (RFC 9457)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = Engine(settings)
        await run_in_threadpool(engine.warm_up)
        gc.freeze()  # the app's and torch's objects live on: spare them every collection
        app.state.dataplane = DataPlane(engine, settings)
        yield

    app = FastAPI(
        title="loss-service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.receiving = Receiving(settings.max_receiving_bytes)
    app.state.metrics = Metrics()
    include_routers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, names=MODELS.keys())
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def include_routers(app: FastAPI) -> None:
    """The one place routers are attached."""
    app.include_router(health.router)
    app.include_router(v1.build_router(KINDS))
    app.include_router(batch.router)
    app.include_router(oip.build_router(MODELS))
    app.include_router(metrics.build_router())


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


async def _service_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, ServiceError):  # pragma: no cover - registered for ServiceError only
        raise error
    return _render(request, error)


def _render(request: Request, error: ServiceError) -> Response:
    """A problem document, or on /v2 the protocol's {"error": detail}, with the same status."""
    if request.url.path == "/v2" or request.url.path.startswith("/v2/"):
        content = msgspec.json.encode(InferenceError(error.detail))
        return Response(content, error.status, error.headers, media_type="application/json")
    return error.response()


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
        _, protocol = msgspec.json.schema_components(
            PROTOCOL, ref_template="#/components/schemas/{name}"
        )
        components.update(protocol)
        app.openapi_schema = schema
    return app.openapi_schema
