"""/v1: service info; each kind's functions listed, described and computed, as JSON."""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import torch
from fastapi import APIRouter, Response
from starlette.requests import Request as HTTPRequest

from service import __version__
from service.api import requests
from service.api.body import Body, client_left, read_json_body
from service.api.deps import EngineDep, SettingsDep, get_dataplane, get_settings
from service.api.models import Info, Limits, Problem
from service.api.responses import json_response
from service.api.schemas import request_model
from service.api.views import view
from service.dataplane import Request
from service.errors import ServiceError, not_found
from service.kinds import KINDS, Kind
from service.spec import Spec

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 404, 413, 415, 422, 503)
}


def build_router(kinds: tuple[Kind, ...] = KINDS) -> APIRouter:
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
                max_work=settings.max_work,
                max_batch_items=settings.max_batch_items,
                max_concurrency=settings.max_concurrency,
            ),
        )

    for kind in kinds:
        if view(kind).catalogue is not None:
            _catalogue(router, kind)
    for kind in kinds:
        if view(kind).catalogue is not None:
            _collection(router, kind)
        else:
            _single(router, kind)
    return router


def _single(router: APIRouter, kind: Kind) -> None:
    """GET (the entry) and POST /{name} for a kind of one function."""
    for spec in kind.specs.values():
        router.add_api_route(
            f"/{spec.name}",
            _describe(spec),
            methods=["GET"],
            name=f"describe_{spec.name}",
            response_model=view(kind).entry,
        )
        _compute_route(router, kind, spec, f"/{spec.name}", spec.name)


def _describe(spec: Spec) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def describe() -> dict[str, Any]:
        entry: dict[str, Any] = spec.entry()
        return entry

    return describe


def _compute_route(router: APIRouter, kind: Kind, spec: Spec, path: str, name: str) -> None:
    router.add_api_route(
        path,
        _endpoint(kind, spec),
        methods=["POST"],
        name=name,
        summary=spec.summary,
        response_model=None,
        responses={200: {"model": view(kind).response_of(spec)}, **PROBLEMS},
        openapi_extra={"requestBody": _body(request_model(spec).__name__)},
    )


def _catalogue(router: APIRouter, kind: Kind) -> None:
    """GET /{path}: {path: [entry, ...]}, and what else the kind's view lists."""
    more = view(kind).listed

    async def catalogue() -> dict[str, Any]:
        listed: dict[str, Any] = {kind.path: [spec.entry() for spec in kind.specs.values()]}
        return listed | dict(more)

    router.add_api_route(
        f"/{kind.path}",
        catalogue,
        methods=["GET"],
        name=f"list_{kind.path}",
        response_model=view(kind).catalogue,
    )


def _collection(router: APIRouter, kind: Kind) -> None:
    """GET and POST /{path}/{name}: one POST route (and request schema) per spec."""
    specs = kind.specs
    for spec in specs.values():
        # a function named as its collection (grades) is served at the collection's path
        path = f"/{kind.path}" if spec.name == kind.path else f"/{kind.path}/{spec.name}"
        _compute_route(router, kind, spec, path, f"{kind.noun}_{spec.name}")

    async def describe(name: str) -> dict[str, Any]:
        if name not in specs:
            raise not_found(list(specs), kind.noun, name)
        entry: dict[str, Any] = specs[name].entry()
        return entry

    async def unknown(name: str) -> None:
        raise not_found(list(specs), kind.noun, name)

    router.add_api_route(
        f"/{kind.path}/{{name}}",
        describe,
        methods=["GET"],
        name=f"describe_{kind.noun}",
        response_model=view(kind).entry,
        responses={404: PROBLEMS[404]},
    )
    router.add_api_route(
        f"/{kind.path}/{{name}}", unknown, methods=["POST"], include_in_schema=False
    )


def _body(model: str) -> dict[str, object]:
    schema = {"$ref": f"#/components/schemas/{model}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _endpoint(kind: Kind, spec: Spec) -> Callable[..., Awaitable[Response]]:
    encode = partial(requests.encode_result, kind, spec)

    async def endpoint(request: HTTPRequest) -> Response:  # served by service.api.direct
        plane, settings = await get_dataplane(request), await get_settings(request)
        body = Body(await read_json_body(request, settings))

        def decode() -> Request:  # takes the body: it is freed once its tensors are read
            return requests.decode_body(spec, body.take(), settings.max_elements)

        try:
            content = await plane.run(
                kind,
                spec,
                decode,
                encode,
                size=len(body),
                left=client_left(request),
            )
        except ServiceError as error:
            raise error.under("body") from None
        return json_response(content)

    endpoint.__doc__ = spec.summary
    return endpoint
