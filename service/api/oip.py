"""/v2: the Open Inference Protocol (KServe v2, Triton) with binary tensor data.

Every loss and activation is a model of one version, "1". An inference request's inputs are
the /v1 tensors by name, its `parameters` the /v1 scalar fields, validated alike; its outputs
are the value ("loss", "output") and, with grad, grad_{tensor}. The body is JSON, or with
Inference-Header-Content-Length a JSON header followed by binary tensor data. Errors are the
protocol's {"error": message} (rendered by service.app for every /v2 path).
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import numpy as np
from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from starlette.requests import Request as HTTPRequest

from service import __version__
from service.api.body import Body, client_left, read_body
from service.api.deps import DataPlaneDep, ReadyDep, SettingsDep
from service.api.responses import json_response
from service.dataplane import Request
from service.engine import Result
from service.errors import BadRequest, Invalid, NotFound, not_found
from service.kinds import MODELS, Kind
from service.protocol import (
    InferenceRequest,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from service.spec import Spec
from service.tensors import oip
from service.tensors.torch import warnings

VERSION = "1"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "inference-header-content-length"
ERRORS = (400, 404, 413, 415, 422, 503)


def build_router(models: dict[str, tuple[Kind, Spec]] = MODELS) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["v2"])

    def route(
        path: str,
        endpoint: Callable[..., Awaitable[Response]],
        schema: str,
        method: str = "GET",
        body: dict[str, Any] | None = None,
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
            openapi_extra={"requestBody": body} if body else None,
        )
        if path.startswith("/models/{name}"):
            versioned = path.replace("{name}", "{name}/versions/{version}")
            router.add_api_route(versioned, endpoint, methods=[method], include_in_schema=False)

    def lookup(name: str, version: str | None) -> tuple[Kind, Spec]:
        if name not in models:
            raise not_found(list(models), "model", name)
        if version not in (None, VERSION):
            raise NotFound(f"model '{name}' has no version '{version}'; it has: {VERSION}")
        return models[name]

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

    async def infer(
        request: HTTPRequest,
        plane: DataPlaneDep,
        settings: SettingsDep,
        name: str,
        version: str | None = None,
    ) -> Response:
        """Computes the model on the request's inputs and parameters: see the README."""
        kind, spec = lookup(name, version)
        # JSON whatever the Content-Type, as Triton takes it (curl -d sends a form's type);
        # binary data is told by its header.
        header_length = request.headers.get(HEADER_LENGTH)
        body = Body(await read_body(request, settings))
        exchange = Exchange(kind, spec, name)

        def decode() -> Request:
            return exchange.decode(body.take(), header_length, settings.max_elements)

        return await plane.run(
            kind, spec, decode, exchange.encode, size=len(body), left=client_left(request)
        )

    route("", server_metadata, "ServerMetadata")
    route("/health/live", server_live, "ServerLive")
    route("/health/ready", server_ready, "ServerReady")
    route("/models/{name}", model_metadata, "ModelMetadata")
    route("/models/{name}/ready", model_ready, "ModelReady")
    route("/models/{name}/infer", infer, "InferenceResponse", method="POST", body=INFER_BODY)
    return router


def metadata(spec: Spec) -> ModelMetadata:
    """Inputs: the tensors, then the optional tensor parameters; outputs: every result the
    model can give. Shapes show the usual batched rank (TensorSpec.dims), all dimensions -1."""
    inputs = [
        MetadataTensor(t.name, oip.METADATA_DATATYPE[t.dtype], [-1] * t.dims) for t in spec.tensors
    ]
    inputs += [MetadataTensor(p.name, "FP32", [-1] * p.dims) for p in spec.tensor_params]
    outputs = [
        MetadataTensor(name, oip.OUTPUT_DATATYPE.get(name, "FP32"), [-1] * dims)
        for name, dims in spec.outputs().items()
    ]
    return ModelMetadata(spec.name, [VERSION], "pytorch", inputs, outputs)


class Exchange:
    """One inference: decodes the body into a Request and encodes its Result, remembering in
    between the request's id and the outputs it asked for."""

    def __init__(self, kind: Kind, spec: Spec, name: str) -> None:
        self.kind, self.spec, self.name = kind, spec, name
        self.id: str | None = None
        self.outputs: dict[str, bool] = {}
        """The outputs to answer, by name, each with whether it goes as binary data."""

    def decode(self, body: bytearray, header_length: str | None, max_elements: int) -> Request:
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
        self.id = header.id
        parameters = dict(header.parameters)
        binary_output = _flag(parameters.pop("binary_data_output", False), "binary_data_output")
        for key in parameters:
            if key not in self.spec.scalars:
                raise Invalid.at(
                    (key,),
                    f"unknown parameter '{key}'; {self.spec.name} takes:"
                    f" {', '.join(self.spec.scalars)}",
                    "extra_forbidden",
                )
        params, options = self.spec.parse_options(parameters)
        self.outputs = self._select(header, params, options, binary_output)
        arrays = oip.read_inputs(
            header.inputs, view[length:], self.spec, max_elements, np.dtype(options.dtype)
        )
        return Request(arrays, params, options)

    def _select(
        self, header: InferenceRequest, params: Any, options: Any, binary: bool
    ) -> dict[str, bool]:
        produced = self.spec.produced(params, options)
        if header.outputs is None:
            return dict.fromkeys(produced, binary)
        known = list(self.spec.outputs())
        selected: dict[str, bool] = {}
        for output in header.outputs:
            if output.name not in known:
                raise Invalid.at(
                    (output.name,),
                    f"unknown output '{output.name}'; {self.spec.name} gives: {', '.join(known)}",
                    "unknown_output",
                )
            if output.name not in produced:
                needs = "grad: true" if output.name.startswith("grad_") else f"'{output.name}'"
                raise Invalid.at(
                    (output.name,),
                    f"output '{output.name}' is computed only with the parameter {needs}"
                    + ("" if output.name.startswith("grad_") else " in scores"),
                    "not_computed",
                )
            if output.name in selected:
                raise BadRequest(f"output '{output.name}' is asked for twice")
            unknown = set(output.parameters) - {"binary_data"}
            if unknown:
                raise BadRequest(
                    f"output '{output.name}' has parameter '{min(unknown)}';"
                    " outputs take binary_data"
                )
            flag = output.parameters.get("binary_data", binary)
            selected[output.name] = _flag(flag, "binary_data")
        return selected

    def encode(self, request: Request, result: Result) -> Response:
        values = {name: result.outputs[name] for name in self.outputs}
        parameters: dict[str, Any] = {"device": result.device}
        if result.divisor is not None:
            parameters["divisor"] = result.divisor
        if found := warnings(values):
            parameters["warnings"] = "; ".join(found)
        header: dict[str, Any] = {"model_name": self.name, "model_version": VERSION}
        if self.id is not None:
            header["id"] = self.id
        header["parameters"] = parameters
        text, binary = oip.write_outputs(
            header, {name: (values[name], self.outputs[name]) for name in values}
        )
        if not binary:
            return json_response(text)
        head = text if isinstance(text, bytes) else b"".join(text)
        size = len(head) + sum(part.nbytes for part in binary)
        return StreamingResponse(
            _chunks([memoryview(head), *binary]),
            media_type="application/octet-stream",
            headers={
                "Content-Length": str(size),
                "Inference-Header-Content-Length": str(len(head)),
            },
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


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false, not {msgspec.json.encode(value).decode()}")
    return value


def _json(value: msgspec.Struct) -> Response:
    return Response(msgspec.json.encode(value), media_type="application/json")


def _content(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": schema, "content": {"application/json": {"schema": ref}}}


INFER_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "An InferenceRequest of Inference-Header-Content-Length bytes, then"
            " the inputs' binary data in their order (Triton's binary tensor data extension).",
        },
    },
}
