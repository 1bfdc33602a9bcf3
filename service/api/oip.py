"""/v2 over REST: the Open Inference Protocol (KServe v2, Triton's HTTP/REST API) with
Triton's binary tensor data extension, as a thin adapter over the protocol's transport-free
logic (service.protocol.exchange) and the data plane.

The body is JSON, or with Inference-Header-Content-Length a JSON header followed by binary
tensor data; the answer likewise. Errors are the protocol's {"error": message} (rendered by
service.app for every /v2 path).
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from math import prod
from typing import Any

import msgspec
import numpy as np
from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from starlette.requests import Request as HTTPRequest

from service import __version__
from service.api.body import Body, client_left, read_body
from service.api.deps import DataPlaneDep, ReadyDep, get_dataplane, get_settings
from service.api.responses import json_response
from service.dataplane import Request
from service.errors import BadRequest
from service.protocol.exchange import (
    EXTENSIONS,
    Answer,
    Exchange,
    Inference,
    RequestedOutput,
    lookup,
    metadata,
)
from service.protocol.structs import (
    InferenceRequest,
    ModelReady,
    RequestInput,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from service.protocol.tensors import DATATYPES, Input
from service.tensors.json import Piece, encode

HEADER_LENGTH = b"inference-header-content-length"
ERRORS = (400, 404, 413, 415, 422, 503)
INFER = "/models/{name}/infer"


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["v2"])

    def route(
        path: str,
        endpoint: Callable[..., Awaitable[Response]],
        schema: str,
        method: str = "GET",
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The route, and its /versions/{version} twin for model paths (not in the schema)."""
        responses: dict[int | str, dict[str, Any]] = {200: _content(schema)}
        responses |= {status: _content("InferenceError") for status in ERRORS}
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            responses=responses,
            response_class=Response,
            openapi_extra=extra,
        )
        if path.startswith("/models/{name}"):
            versioned = path.replace("{name}", "{name}/versions/{version}")
            router.add_api_route(versioned, endpoint, methods=[method], include_in_schema=False)

    async def server_metadata() -> Response:
        """The server's name, version and protocol extensions."""
        return _json(ServerMetadata("loss-service", __version__, EXTENSIONS))

    async def server_live() -> Response:
        """Liveness: the process answers."""
        return _json(ServerLive(True))

    async def server_ready(plane: ReadyDep) -> Response:
        """Readiness: every model is ready once the engine is loaded (503 before, and while
        every computation slot has been busy for unready_after seconds)."""
        return _json(ServerReady(True))

    async def model_metadata(name: str, version: str | None = None) -> Response:
        """The model's inputs and outputs, with datatypes and shapes (-1: any size)."""
        _, spec = lookup(name, version)
        return _json(metadata(spec))

    async def model_ready(plane: DataPlaneDep, name: str, version: str | None = None) -> Response:
        """Whether the model is ready: every model is, once the engine is loaded."""
        lookup(name, version)
        return _json(ModelReady(name, True))

    route("", server_metadata, "ServerMetadata")
    route("/health/live", server_live, "ServerLive")
    route("/health/ready", server_ready, "ServerReady")
    route("/models/{name}", model_metadata, "ModelMetadata")
    route("/models/{name}/ready", model_ready, "ModelReady")
    route(INFER, infer, "InferenceResponse", method="POST", extra=INFER_OPENAPI)
    return router


async def infer(request: HTTPRequest) -> Response:  # served by service.api.direct
    """Computes the model on the request's inputs and parameters: see docs/protocol.md."""
    path = request.path_params
    kind, spec = lookup(path["name"], path.get("version"))
    plane, settings = await get_dataplane(request), await get_settings(request)
    # JSON whatever the Content-Type, as Triton takes it (curl -d sends a form's type);
    # binary data is told by its header.
    header_length = _header(request, HEADER_LENGTH)
    body = Body(await read_body(request, settings))
    exchange = Exchange(kind, spec, path["name"], binary=False)

    def decode() -> Request:  # takes the body: it is freed once its tensors are read
        inference = _inference(body.take(), header_length)
        return exchange.decode(inference, settings.max_elements)

    return await plane.run(
        kind,
        spec,
        decode,
        lambda request, result: _response(exchange.encode(result)),
        size=len(body),
        left=client_left(request),
    )


def _header(request: HTTPRequest, name: bytes) -> str | None:
    for key, value in request.scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _inference(body: bytearray, header_length: str | None) -> Inference:
    """The body as an Inference: its JSON header, and the binary data after it cut into each
    input's bytes by their binary_data_size."""
    view = memoryview(body)
    length = _header_length(header_length, len(body))
    try:
        header = msgspec.json.decode(view[:length], type=InferenceRequest)
    except msgspec.DecodeError as error:  # ValidationError among them
        raise BadRequest(f"the inference request is not valid: {error}") from None
    except RecursionError:  # msgspec stops at Python's recursion limit, about 1000 deep
        raise BadRequest(
            "the inference request's arrays or objects are nested too deeply"
        ) from None
    outputs = None
    if header.outputs is not None:
        outputs = [RequestedOutput(o.name, o.parameters) for o in header.outputs]
    inputs = _inputs(header.inputs, view[length:])
    return Inference(inputs, header.id, header.parameters, outputs)


def _inputs(inputs: Sequence[RequestInput], binary: memoryview) -> list[Input]:
    """Each input with its JSON data or its bytes of the binary data, in their order."""
    sizes = [_binary_size(i) for i in inputs]
    total = sum(size for size in sizes if size is not None)
    if total != len(binary):
        raise BadRequest(
            f"the body holds {len(binary)} bytes of binary data after its JSON header, but the"
            f" inputs' binary_data_size add up to {total}"
        )
    found, offset = [], 0
    for given, size in zip(inputs, sizes, strict=True):
        data: msgspec.Raw | memoryview = given.data
        if size is not None:
            data, offset = binary[offset : offset + size], offset + size
        found.append(Input(given.name, given.datatype, given.shape, data))
    return found


def _binary_size(given: RequestInput) -> int | None:
    """The input's binary_data_size (None for JSON data), checked against its shape."""
    name = given.name
    unknown = set(given.parameters) - {"binary_data_size"}
    if unknown:
        raise BadRequest(
            f"input '{name}' has parameter '{min(unknown)}'; inputs take binary_data_size"
        )
    size = given.parameters.get("binary_data_size")
    has_data = len(given.data) > 0
    if size is None:
        if not has_data:
            raise BadRequest(f"input '{name}' has neither data nor binary_data_size")
        return None
    if has_data:
        raise BadRequest(f"input '{name}' has both data and binary_data_size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise BadRequest(f"input '{name}': binary_data_size must be a number of bytes")
    datatype = DATATYPES.get(given.datatype)
    if datatype is not None and all(d >= 0 for d in given.shape):
        needed = prod(given.shape) * datatype.itemsize
        if size != needed:
            raise BadRequest(
                f"input '{name}': binary_data_size is {size} bytes, but shape {given.shape} of"
                f" {given.datatype} takes {needed}"
            )
    return size


def _response(answer: Answer) -> Response:
    """JSON, or with binary outputs the JSON header, then their bytes a megabyte at a time."""
    header: dict[str, Any] = {
        "model_name": answer.model_name,
        "model_version": answer.model_version,
    }
    if answer.id is not None:
        header["id"] = answer.id
    header["parameters"] = answer.parameters
    entries, binary = [], []
    for output in answer.outputs:
        array = output.array
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(array.shape),
        }
        if output.binary:
            flat = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)
            entry["parameters"] = {"binary_data_size": flat.nbytes}
            binary.append(flat.data.cast("B"))
        else:
            entry["data"] = array.reshape(-1)
        entries.append(entry)
    text: bytes | Iterator[Piece] = encode(header | {"outputs": entries})
    if not binary:
        return json_response(text)
    head = text if isinstance(text, bytes) else b"".join(text)
    size = len(head) + sum(part.nbytes for part in binary)
    return StreamingResponse(
        _chunks([memoryview(head), *binary]),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size), "Inference-Header-Content-Length": str(len(head))},
    )


PIECE = 1 << 20
"""Binary outputs are written a megabyte at a time, so that little waits in a socket's buffer
for a client that stopped reading (service.http's write timeout)."""


async def _chunks(parts: list[memoryview]) -> AsyncIterator[memoryview]:
    for part in parts:
        for start in range(0, len(part), PIECE):
            yield part[start : start + PIECE]


def _header_length(value: str | None, body: int) -> int:
    """The JSON header's length: Inference-Header-Content-Length, or the whole body."""
    if value is None:
        return body
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise BadRequest(
            f"Inference-Header-Content-Length must be a number of bytes, not '{_clip(value)}'"
        )
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(body)) or int(digits) > body:
        raise BadRequest(
            f"Inference-Header-Content-Length is {_clip(digits)} bytes, beyond the body's {body}"
        )
    return int(digits)


def _clip(text: str, most: int = 40) -> str:
    """A client's text in a message, cut short."""
    return text if len(text) <= most else text[:most] + "..."


def _json(value: msgspec.Struct) -> Response:
    return Response(msgspec.json.encode(value), media_type="application/json")


def _content(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": schema, "content": {"application/json": {"schema": ref}}}


INFER_OPENAPI: dict[str, Any] = {
    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "An InferenceRequest of Inference-Header-Content-Length bytes,"
                " then the inputs' binary data in their order (Triton's binary tensor data"
                " extension).",
            },
        },
    },
}
