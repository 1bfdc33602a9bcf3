"""The Open Inference Protocol's REST objects, field for field, as msgspec structs.

Spec: https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
with Triton's binary tensor data extension:
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md

Requests decode with msgspec, which leaves each input's `data` as its raw JSON span (no Python
object per number); responses encode with msgspec. The OpenAPI document takes their JSON
Schemas from here, so the wire format is declared once.
"""

import msgspec

Parameters = dict[str, bool | int | float | str]
"""$parameters = { $parameter, ... }: string keys, bool, number or string values. Typed so, an
array or object where a value should be is refused as it is read, before it costs memory."""


class ServerMetadata(msgspec.Struct):
    """$metadata_server_response = {"name": $string, "version": $string,
    "extensions": [$string, ...]}"""

    name: str
    version: str
    extensions: list[str]


class MetadataTensor(msgspec.Struct):
    """$metadata_tensor = {"name": $string, "datatype": $string, "shape": [$number, ...]};
    -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct):
    """$metadata_model_response = {"name": $string, "versions": [$string, ...] #optional,
    "platform": $string, "inputs": [$metadata_tensor, ...], "outputs": [$metadata_tensor, ...]}"""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerLive(msgspec.Struct):
    """$live_server_response = {"live": $bool}"""

    live: bool


class ServerReady(msgspec.Struct):
    """$ready_server_response = {"ready": $bool}"""

    ready: bool


class ModelReady(msgspec.Struct):
    """$ready_model_response = {"name": $string, "ready": $bool}"""

    name: str
    ready: bool


class RequestInput(msgspec.Struct):
    """$request_input = {"name": $string, "shape": [$number, ...], "datatype": $string,
    "parameters": $parameters #optional, "data": $tensor_data}; with binary data, `data` is
    absent and parameters.binary_data_size gives its bytes after the JSON header."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters = {}
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    """The raw JSON of the tensor data, flat or nested, row-major; empty when absent."""


class RequestOutput(msgspec.Struct):
    """$request_output = {"name": $string, "parameters": $parameters #optional};
    parameters.binary_data asks for the output as binary data."""

    name: str
    parameters: Parameters = {}


class InferenceRequest(msgspec.Struct):
    """$inference_request = {"id": $string #optional, "parameters": $parameters #optional,
    "inputs": [$request_input, ...], "outputs": [$request_output, ...] #optional}"""

    inputs: list[RequestInput]
    id: str | None = None
    parameters: Parameters = {}
    outputs: list[RequestOutput] | None = None


class ResponseOutput(msgspec.Struct, omit_defaults=True):
    """$response_output = {"name": $string, "shape": [$number, ...], "datatype": $string,
    "parameters": $parameters #optional, "data": $tensor_data}; a binary output has
    parameters.binary_data_size and no `data`."""

    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters = {}
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class InferenceResponse(msgspec.Struct, omit_defaults=True):
    """$inference_response = {"model_name": $string, "model_version": $string #optional,
    "id": $string, "parameters": $parameters #optional, "outputs": [$response_output, ...]}"""

    model_name: str
    outputs: list[ResponseOutput]
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters = {}


class InferenceError(msgspec.Struct):
    """$inference_error_response = {"error": $string}: every /v2 error."""

    error: str


SCHEMAS = (
    ServerMetadata,
    ModelMetadata,
    ServerLive,
    ServerReady,
    ModelReady,
    InferenceRequest,
    InferenceResponse,
    InferenceError,
)
