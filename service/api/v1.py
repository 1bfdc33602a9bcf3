"""/v1: service info, the loss catalogue, and one POST route per loss."""

from collections.abc import Awaitable, Callable

import torch
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from service import __version__
from service.api import requests
from service.api.body import read_json_body
from service.api.deps import EngineDep, SettingsDep
from service.api.models import Catalogue, Info, LossEntry, LossResponse, Problem
from service.api.schemas import request_model
from service.config import Settings
from service.engine import Engine
from service.errors import ServiceError, not_found
from service.losses import LossSpec
from service.tensors.json import TensorReader, parse_object

PROBLEMS = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 413, 415, 422, 503)
}


def build_router(registry: dict[str, LossSpec]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["v1"])
    names = list(registry)

    @router.get("/info")
    async def info(engine: EngineDep, settings: SettingsDep) -> Info:
        return Info(
            version=__version__,
            torch_version=torch.__version__,
            devices=engine.devices,
            default_device=str(engine.default_device),
            limits={
                "max_body_bytes": settings.max_body_bytes,
                "max_elements": settings.max_elements,
                "max_concurrency": settings.max_concurrency,
            },
        )

    @router.get("/losses")
    async def list_losses() -> Catalogue:
        return Catalogue(losses=[spec.entry() for spec in registry.values()])

    for spec in registry.values():
        model = request_model(spec)
        router.add_api_route(
            f"/losses/{spec.name}",
            _compute_endpoint(spec),
            methods=["POST"],
            name=f"compute_{spec.name}",
            summary=spec.summary,
            response_model=None,
            responses={200: {"model": LossResponse}, **PROBLEMS},
            openapi_extra={"requestBody": _body(model.__name__)},
        )

    @router.get("/losses/{name}", responses={404: {"model": Problem}})
    async def get_loss(name: str) -> LossEntry:
        if name not in registry:
            raise not_found(names, "loss", name)
        return LossEntry.model_validate(registry[name].entry())

    @router.post("/losses/{name}", include_in_schema=False)
    async def unknown_loss(name: str) -> None:
        raise not_found(names, "loss", name)

    return router


def _body(model: str) -> dict[str, object]:
    schema = {"$ref": f"#/components/schemas/{model}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _compute_endpoint(spec: LossSpec) -> Callable[..., Awaitable[Response]]:
    async def compute(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
        body = await read_json_body(request, settings.max_body_bytes)
        async with engine.slot():
            content = await run_in_threadpool(_compute, engine, settings, spec, body)
        return Response(content, media_type="application/json")

    compute.__doc__ = spec.summary
    return compute


def _compute(engine: Engine, settings: Settings, spec: LossSpec, body: bytes) -> bytes:
    """Parse, validate, compute and encode, off the event loop."""
    try:
        reader = TensorReader(settings.max_elements)
        request = requests.decode(spec, parse_object(body), reader)
        reader.confirm(body, request.raw, spec.element_kinds)
        return requests.encode(request.run(engine), request.options)
    except ServiceError as error:
        raise error.under("body") from None
