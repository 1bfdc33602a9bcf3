"""/v1: service info; the losses and activations, each listed, described and computed."""

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import torch
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from service import __version__
from service.api import requests
from service.api.body import Body, read_json_body
from service.api.deps import EngineDep, SettingsDep
from service.api.models import (
    ActivationCatalogue,
    ActivationEntry,
    ActivationResponse,
    Catalogue,
    Info,
    Limits,
    LossEntry,
    LossResponse,
    Problem,
)
from service.api.schemas import request_model
from service.config import Settings
from service.engine import Engine
from service.errors import ServiceError, not_found
from service.losses.spec import LossSpec, Spec
from service.tensors.json import parse_fields

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 404, 413, 415, 422, 503)
}
INLINE_BYTES = 1 << 16
"""Bodies up to this size are computed on the event loop: their work, a fraction of a
millisecond, costs less than the hop to a worker thread."""
Finish = Callable[[Engine, Any, requests.Decoded], bytes | Iterator[bytes]]
"""Runs a decoded request on the engine and encodes the response body."""


def _compute(engine: Engine, spec: LossSpec, request: requests.Decoded) -> bytes | Iterator[bytes]:
    result = engine.compute(spec, request.arrays, request.params, request.options)
    return requests.loss_response(result, request.options)


def _apply(engine: Engine, spec: Spec, request: requests.Decoded) -> bytes | Iterator[bytes]:
    result = engine.apply(spec, request.arrays, request.params, request.options)
    return requests.activation_response(result, request.options)


def build_router(losses: dict[str, LossSpec], activations: dict[str, Spec]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["v1"])

    @router.get("/info")
    async def info(engine: EngineDep, settings: SettingsDep) -> Info:
        return Info(
            version=__version__,
            torch_version=torch.__version__,
            devices=engine.devices,
            default_device=str(engine.default_device),
            limits=Limits(
                max_body_bytes=settings.max_body_bytes,
                max_elements=settings.max_elements,
                max_concurrency=settings.max_concurrency,
            ),
        )

    @router.get("/losses")
    async def list_losses() -> Catalogue:
        return Catalogue.model_validate({"losses": [spec.entry() for spec in losses.values()]})

    @router.get("/activations")
    async def list_activations() -> ActivationCatalogue:
        entries = [spec.entry() for spec in activations.values()]
        return ActivationCatalogue.model_validate({"activations": entries})

    _collection(router, "losses", "loss", losses, LossEntry, LossResponse, _compute)
    _collection(
        router,
        "activations",
        "activation",
        activations,
        ActivationEntry,
        ActivationResponse,
        _apply,
    )
    return router


def _collection(
    router: APIRouter,
    path: str,
    noun: str,
    specs: dict[str, Any],
    entry: type[BaseModel],
    response: type[BaseModel],
    finish: Finish,
) -> None:
    """GET and POST /{path}/{name}: one POST route (and request schema) per spec."""
    for spec in specs.values():
        router.add_api_route(
            f"/{path}/{spec.name}",
            _endpoint(spec, finish),
            methods=["POST"],
            name=f"{noun}_{spec.name}",
            summary=spec.summary,
            response_model=None,
            responses={200: {"model": response}, **PROBLEMS},
            openapi_extra={"requestBody": _body(request_model(spec).__name__)},
        )

    async def describe(name: str) -> dict[str, Any]:
        if name not in specs:
            raise not_found(list(specs), noun, name)
        entry_of: dict[str, Any] = specs[name].entry()
        return entry_of

    async def unknown(name: str) -> None:
        raise not_found(list(specs), noun, name)

    router.add_api_route(
        f"/{path}/{{name}}",
        describe,
        methods=["GET"],
        name=f"describe_{noun}",
        response_model=entry,
        responses={404: PROBLEMS[404]},
    )
    router.add_api_route(f"/{path}/{{name}}", unknown, methods=["POST"], include_in_schema=False)


def _body(model: str) -> dict[str, object]:
    schema = {"$ref": f"#/components/schemas/{model}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _endpoint(spec: Spec, finish: Finish) -> Callable[..., Awaitable[Response]]:
    async def endpoint(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
        body = Body(await read_json_body(request, settings.max_body_bytes))
        async with engine.slot():
            if len(body) <= INLINE_BYTES:
                content = _run(engine, settings, spec, body, finish)
            else:
                content = await run_in_threadpool(_run, engine, settings, spec, body, finish)
        if isinstance(content, bytes):
            return Response(content, media_type="application/json")
        return StreamingResponse(content, media_type="application/json")

    endpoint.__doc__ = spec.summary
    return endpoint


def _run(
    engine: Engine, settings: Settings, spec: Spec, body: Body, finish: Finish
) -> bytes | Iterator[bytes]:
    """Parse, validate, compute and encode; the body is freed once its tensors are read."""
    try:
        request = requests.decode(spec, parse_fields(body.take()), settings.max_elements)
        return finish(engine, spec, request)
    except ServiceError as error:
        raise error.under("body") from None
