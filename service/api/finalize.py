"""POST /v1/grades/finalize: states of parts (from /v1/grades, /v2 or gRPC answers) merged and
turned into values and tables by the formulas the service grades with, so that a client holds
no second copy of them."""

from typing import Any

import msgspec
import numpy as np
from fastapi import APIRouter, Response
from starlette.requests import Request as HTTPRequest

from service.api.body import Body, client_left, read_json_body
from service.api.deps import get_dataplane, get_settings
from service.api.models import FinalizeResponse
from service.api.v1 import PROBLEMS
from service.dataplane import INLINE_BYTES
from service.errors import BadRequest, Invalid, ServiceError
from service.grades import finalize, read_state
from service.tensors.json import encode
from service.tensors.torch import warnings

router = APIRouter(prefix="/v1", tags=["v1"])


@router.post(
    "/grades/finalize",
    response_model=None,
    responses={200: {"model": FinalizeResponse}, **PROBLEMS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/FinalizeRequest"}}
            },
        }
    },
)
async def finalize_states(request: HTTPRequest) -> Response:  # served by service.api.direct
    """Merges each key's states (of one metric and equal settings) and finalises them."""
    plane, settings = await get_dataplane(request), await get_settings(request)
    body = Body(await read_json_body(request, settings))
    left = client_left(request)
    try:
        async with plane.slot(left):
            content = await plane.place(
                lambda: _finalize(body.take()), inline=len(body) <= INLINE_BYTES, left=left
            )
    except ServiceError as error:
        raise error.under("body") from None
    return Response(content, media_type="application/json")


def _finalize(raw: bytes | bytearray) -> bytes:
    try:
        given = msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        raise BadRequest(f"the body is not JSON: {error}") from None
    if not isinstance(given, dict) or set(given) != {"states"}:
        raise Invalid.at((), "the body is an object with one field, states", "finalize_body")
    states = given["states"]
    if not isinstance(states, dict):
        raise Invalid.at(
            ("states",), "states must be an object of lists of states, by key", "states"
        )
    if not states:
        raise Invalid.at(("states",), "states is empty; it needs a key and its states", "too_short")
    grades: dict[str, Any] = {}
    outputs: dict[str, np.ndarray] = {}
    for key, listed in states.items():
        parts = listed if isinstance(listed, list) else [listed]
        if not parts:
            raise Invalid.at(("states", key), f"states.{key} is empty", "too_short")
        read = []
        for index, part in enumerate(parts):
            try:
                read.append(read_state(part))
            except ServiceError as error:
                raise error.under("states", key, index) from None
        try:
            grade = finalize(read)
        except ServiceError as error:
            raise error.under("states", key) from None
        grades[key] = grade.body()
        outputs |= grade.outputs(f"{key}.")
    content: dict[str, Any] = {"grades": grades}
    if found := warnings(outputs):
        content["warnings"] = found
    encoded = encode(content)
    return encoded if isinstance(encoded, bytes) else b"".join(encoded)
