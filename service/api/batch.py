"""/v1/batch: many losses (and grades) in one request, each item isolated, on the same data
plane.

An item is what POST /v1/losses/{name} takes, plus "loss", the name; or what POST
/v1/grades/{name} takes, plus "grade", the metric's name (or "grades" for several). Each item
is decoded, computed and encoded alone; a bad one answers the problem document it would have
got alone. The request as a whole fails only when it is not a batch: not JSON (400), no items
or an empty list (422), more than max_batch_items items or more than max_elements elements in all
(413).
"""

from dataclasses import dataclass
from typing import Any

import msgspec
from fastapi import APIRouter, Response
from starlette.requests import Request as HTTPRequest

from service.api import requests
from service.api.body import Body, client_left, read_json_body
from service.api.deps import get_dataplane, get_settings
from service.api.models import BatchResponse
from service.api.v1 import PROBLEMS
from service.api.views import view
from service.dataplane import INLINE_BYTES, INLINE_SECONDS, Allowance, DataPlane, Request
from service.errors import Invalid, PayloadTooLarge, ServiceError, not_found
from service.kinds import KINDS, Kind
from service.spec import Spec
from service.tensors.fields import Fields, parse_fields, parse_object, plain
from service.tensors.json import Budget, encode

ITEM_KINDS = {"loss": KINDS[0], "grade": KINDS[3]}
"""What an item names, by the field it names it in."""

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
async def batch(request: HTTPRequest) -> Response:  # served by service.api.direct
    """Computes each item as POST /v1/losses/{item.loss} (or /v1/grades/{item.grade}) would."""
    plane, settings = await get_dataplane(request), await get_settings(request)
    body = Body(await read_json_body(request, settings))
    allowance = Allowance(settings.max_work)

    def admit() -> list[Admitted | dict[str, Any]]:
        items = _items(body.take(), settings.max_batch_items)
        budget = Budget(settings.max_elements)
        return [_admit(plane, raw, budget, allowance) for raw in items]

    def compute(admitted: list[Admitted | dict[str, Any]]) -> bytes:
        results = [
            _compute(plane, item) if isinstance(item, Admitted) else item for item in admitted
        ]
        content = encode({"results": results})
        return content if isinstance(content, bytes) else b"".join(content)

    left = client_left(request)
    try:
        async with plane.slot(left):
            admitted = await plane.place(admit, inline=len(body) <= INLINE_BYTES, left=left)
            inline = allowance.seconds <= INLINE_SECONDS
            content = await plane.place(lambda: compute(admitted), inline=inline, left=left)
    except ServiceError as error:
        raise error.under("body") from None
    return Response(content, media_type="application/json")


@dataclass(frozen=True, slots=True)
class Admitted:
    kind: Kind
    spec: Spec
    request: Request


def _items(body: bytearray, limit: int) -> list[msgspec.Raw]:
    fields = parse_object(body)
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


def _admit(
    plane: DataPlane, raw: msgspec.Raw, budget: Budget, allowance: Allowance
) -> Admitted | dict[str, Any]:
    """The item decoded and validated, or its error result; a batch's element budget or
    work allowance passed is the whole request's 413, raised."""
    try:
        fields = parse_fields(raw)
        field, name = _name(fields)
        kind = ITEM_KINDS[field]
        spec = kind.specs.get(name)
        if spec is None:
            raise not_found(list(kind.specs), field, name)
        return Admitted(
            kind, spec, plane.admit(spec, lambda: requests.decode(spec, fields, budget), allowance)
        )
    except PayloadTooLarge:
        raise
    except ServiceError as error:
        return _failed(error)


def _compute(plane: DataPlane, item: Admitted) -> dict[str, Any]:
    """{"ok": true, ...response} or {"ok": false, "error": problem}."""
    try:
        result = plane.compute(item.kind, item.spec, item.request)
    except ServiceError as error:
        return _failed(error)
    return {"ok": True} | view(item.kind).body(item.spec, result, item.request.options)


def _failed(error: ServiceError) -> dict[str, Any]:
    return {"ok": False, "error": error.under("body").problem()}


def _name(fields: Fields) -> tuple[str, str]:
    """The item's `loss` (or `grade`) and the name it gives, taken out of its fields."""
    given = [field for field in ITEM_KINDS if field in fields]
    if len(given) != 1:
        raise Invalid.at(
            ("loss",),
            "loss is required: the name of the loss to compute (or grade, a metric's name)"
            if not given
            else "an item names a loss or a grade, not both",
            "missing" if not given else "extra_forbidden",
        )
    field = given[0]
    name = plain(fields.pop(field))
    if not isinstance(name, str):
        raise Invalid.at(
            (field,), f"{field} must be the name of a {field}, a string", "string_type"
        )
    return field, name
