"""/v1/batch: many losses in one request, each item isolated, on the same data plane.

An item is what POST /v1/losses/{name} takes, plus "loss", the name. Each item is decoded,
computed and encoded alone; a bad one answers the problem document it would have got alone.
The request as a whole fails only when it is not a batch: not JSON (400), no items or an
empty list (422), more than max_batch_items items or more than max_elements elements in all
(413).
"""

from typing import Any

import msgspec
from fastapi import APIRouter, Response
from starlette.requests import Request as HTTPRequest

from service.api import requests
from service.api.body import Body, read_json_body
from service.api.deps import DataPlaneDep, SettingsDep
from service.api.models import BatchResponse
from service.api.v1 import PROBLEMS
from service.dataplane import DataPlane
from service.errors import Invalid, PayloadTooLarge, ServiceError, not_found
from service.kinds import KINDS
from service.tensors.json import Budget, encode, parse_fields, plain

LOSSES = KINDS[0]

router = APIRouter(prefix="/v1", tags=["v1"])


@router.post(
    "/batch",
    response_model=None,
    responses={200: {"model": BatchResponse}, **PROBLEMS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchRequest"}}
            },
        }
    },
)
async def batch(request: HTTPRequest, plane: DataPlaneDep, settings: SettingsDep) -> Response:
    """Computes each item as POST /v1/losses/{item.loss} would."""
    body = Body(await read_json_body(request, settings.max_body_bytes))

    def work() -> bytes:
        items = _items(body.take(), settings.max_batch_items)
        budget = Budget(settings.max_elements)
        content = encode({"results": [_item(plane, raw, budget) for raw in items]})
        return content if isinstance(content, bytes) else b"".join(content)

    try:
        content = await plane.place(work, size=len(body))
    except ServiceError as error:
        raise error.under("body") from None
    return Response(content, media_type="application/json")


def _items(body: bytearray, limit: int) -> list[msgspec.Raw]:
    fields = parse_fields(body)
    for name in fields:
        if name != "items":
            raise Invalid.at(
                (name,), f"unknown field '{name}'; a batch takes: items", "extra_forbidden"
            )
    if "items" not in fields:
        raise Invalid.at(("items",), "items is required: a list of loss requests", "missing")
    try:
        items = msgspec.json.decode(fields["items"], type=list[msgspec.Raw])
    except msgspec.ValidationError:
        raise Invalid.at(("items",), "items must be a list of loss requests", "list_type") from None
    if not items:
        raise Invalid.at(("items",), "items is empty; a batch needs at least one", "too_short")
    if len(items) > limit:
        raise PayloadTooLarge(
            f"the batch holds {len(items)} items, more than max_batch_items ({limit})"
        )
    return items


def _item(plane: DataPlane, raw: msgspec.Raw, budget: Budget) -> dict[str, Any]:
    """{"ok": true, ...response} or {"ok": false, "error": problem}; a batch's element budget
    passed is the whole request's 413, raised."""
    try:
        fields = parse_fields(raw)
        spec = LOSSES.specs.get(name := _name(fields))
        if spec is None:
            raise not_found(list(LOSSES.specs), "loss", name)
        return {"ok": True} | plane.execute(
            LOSSES,
            spec,
            lambda: requests.decode(spec, fields, budget),
            lambda request, result: LOSSES.body(result, request.options),
        )
    except PayloadTooLarge:
        raise
    except ServiceError as error:
        return {"ok": False, "error": error.under("body").problem()}


def _name(fields: dict[str, msgspec.Raw]) -> str:
    """The item's `loss`, taken out of its fields."""
    if "loss" not in fields:
        raise Invalid.at(("loss",), "loss is required: the name of the loss to compute", "missing")
    name = plain(fields.pop("loss"))
    if not isinstance(name, str):
        raise Invalid.at(("loss",), "loss must be the name of a loss, a string", "string_type")
    return name
