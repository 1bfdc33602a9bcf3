"""The Protocol's gRPC messages <-> its transport-free forms (service.protocol): a
ModelInferRequest as an Inference, an Answer as a ModelInferResponse, metadata as its
responses.

Inputs come as raw_input_contents (one per input, in order, little-endian bytes) or as typed
contents, never a mix. Outputs go raw unless the request's binary_data_output parameter is
false, and all one way: raw_output_contents is indexed by output, so a response cannot mix
them either. Parameters take all five kinds of InferParameter.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from google.protobuf.message import DecodeError

from service.errors import BadRequest
from service.grpc import open_inference_grpc_pb2 as pb
from service.protocol.exchange import Answer, Inference, Parameters, RequestedOutput
from service.protocol.structs import ModelMetadata
from service.protocol.tensors import Data, Input, Values

CONTENTS: Final[dict[str, tuple[str, np.dtype[Any]]]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
}
"""The typed contents field of each datatype that has one (FP16 and BF16 have none), and the
type of its values."""


@dataclass(frozen=True, slots=True)
class Received:
    """A ModelInferRequest: the message, and its raw_input_contents as views of its bytes."""

    message: pb.ModelInferRequest
    raw: Sequence[bytes | memoryview]


def parse(body: bytes) -> Received:
    """The request's bytes as its message, the raw contents left in place.

    protobuf would copy each raw content twice (into the message, then out of it as bytes),
    so the top-level fields are walked first and the raw contents' spans cut out; protobuf
    parses the rest. A message of more than SCANNED top-level fields (raw contents are a few,
    and the rest a few dozen) is parsed by protobuf whole, so that walking it in Python never
    costs more than its size."""
    try:
        rest, raw = _cut_raw_inputs(memoryview(body))
        return Received(pb.ModelInferRequest.FromString(rest), raw)
    except (_Unscanned, DecodeError):
        pass
    try:
        message = pb.ModelInferRequest.FromString(body)
    except DecodeError as error:
        raise BadRequest(f"the request is not a ModelInferRequest: {error}") from None
    return Received(message, message.raw_input_contents)


RAW_INPUT: Final = pb.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number
SCANNED: Final = 4096
FIXED: Final = {1: 8, 5: 4}
"""The sizes of the fixed-width wire types: 64-bit and 32-bit."""


class _Unscanned(Exception):
    """The message is not walked: protobuf parses it whole (and names any fault)."""


def _cut_raw_inputs(body: memoryview) -> tuple[bytes, list[memoryview]]:
    """The message without its raw_input_contents, and those contents as views of `body`."""
    rest: list[memoryview] = []
    raw: list[memoryview] = []
    kept = position = 0  # the rest runs from `kept` up to the field being read
    for _ in range(SCANNED):
        if position == len(body):
            rest.append(body[kept:])
            return b"".join(rest), raw
        field = position
        key, position = _read_varint(body, position)
        wire = key & 7
        if wire == 0:
            _, after = _read_varint(body, position)
        elif wire == 2:
            length, position = _read_varint(body, position)
            after = position + length
        elif wire in FIXED:
            after = position + FIXED[wire]
        else:  # groups, or no wire type at all
            raise _Unscanned
        if after > len(body):
            raise _Unscanned
        if key >> 3 == RAW_INPUT and wire == 2:
            rest.append(body[kept:field])
            raw.append(body[position:after])
            kept = after
        position = after
    raise _Unscanned


def _read_varint(body: memoryview, position: int) -> tuple[int, int]:
    """The varint at `position`, and the position after it."""
    value = shift = 0
    while shift < 64:
        if position == len(body):
            raise _Unscanned
        byte = body[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    raise _Unscanned


def inference(received: Received) -> Inference:
    """The request as the Protocol's Inference: its inputs' data still unread."""
    request, raw = received.message, received.raw
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"the request has {len(raw)} raw_input_contents for {len(request.inputs)} inputs;"
            " give one for each input, in their order"
        )
    inputs = []
    for index, given in enumerate(request.inputs):
        if given.parameters:
            raise BadRequest(
                f"input '{given.name}' has parameter '{min(given.parameters)}'; inputs take none"
            )
        data: Data = memoryview(raw[index]) if raw else _typed(given)
        if raw and any(given.contents.ListFields()):
            raise BadRequest(
                f"input '{given.name}' has typed contents, but the request has"
                " raw_input_contents: send every input one way"
            )
        inputs.append(Input(given.name, given.datatype, list(given.shape), data))
    outputs = None
    if request.outputs:
        outputs = [RequestedOutput(o.name, parameters(o.parameters)) for o in request.outputs]
    return Inference(inputs, request.id or None, parameters(request.parameters), outputs)


def _typed(given: pb.ModelInferRequest.InferInputTensor) -> Values:
    """The input's typed contents, from the one field its datatype takes."""
    name, datatype = given.name, given.datatype
    used = [field for field, _ in given.contents.ListFields()]
    if datatype in ("FP16", "BF16"):
        raise BadRequest(
            f"input '{name}' has datatype {datatype}, which typed contents cannot hold: send it"
            " in raw_input_contents"
        )
    if datatype not in CONTENTS:
        return Values([], np.dtype(np.float64))  # read_inputs names the datatype's fault
    field, dtype = CONTENTS[datatype]
    stray = [f.name for f in used if f.name != field]
    if stray:
        raise BadRequest(
            f"input '{name}' of datatype {datatype} has its values in {stray[0]};"
            f" {datatype} takes {field}"
        )
    return Values(getattr(given.contents, field), dtype)


def parameters(given: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """Parameters by name, of any of the five kinds."""
    found = {}
    for name, parameter in given.items():
        kind = parameter.WhichOneof("parameter_choice")
        if kind is None:
            raise BadRequest(f"parameter '{name}' has no value")
        found[name] = getattr(parameter, kind)
    return found


def one_way(outputs: Mapping[str, bool]) -> None:
    """The outputs asked for (each with whether it goes raw) all go one way, or 400: checked
    before anything is computed."""
    if len(set(outputs.values())) > 1:
        raise BadRequest("over gRPC the outputs go all raw or all typed; binary_data differs")


def response(answer: Answer) -> bytes:
    """The Answer as a serialized ModelInferResponse: every output raw, or every one typed.

    The raw contents are written after the rest of the message, framed as the field they
    are: protobuf reads a repeated field's entries wherever they come, in order. So each
    output's bytes are copied once, into the answer, where the message would have copied
    them three times (to bytes, into the message, into its serialization)."""
    message = pb.ModelInferResponse(
        model_name=answer.model_name, model_version=answer.model_version, id=answer.id or ""
    )
    _set_parameters(message.parameters, answer.parameters)
    raw: list[bytes | memoryview] = []
    for output in answer.outputs:
        array = output.array
        tensor = message.outputs.add(name=output.name, datatype=output.datatype)
        tensor.shape.extend(array.shape)
        if output.binary:
            little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            data = little.reshape(-1).data.cast("B")
            raw += [RAW_OUTPUT_TAG, _varint(len(data)), data]
        else:
            field, _ = CONTENTS[output.datatype]
            getattr(tensor.contents, field).extend(array.reshape(-1).tolist())
    return b"".join([message.SerializeToString(), *raw])


RAW_OUTPUT_TAG: Final = bytes(
    [pb.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number << 3 | 2]
)
"""raw_output_contents' key: its field number, and wire type 2 (length-delimited)."""


def _varint(value: int) -> bytes:
    """A protobuf base-128 varint: seven bits a byte, least significant first."""
    found = bytearray()
    while value > 0x7F:
        found.append(value & 0x7F | 0x80)
        value >>= 7
    found.append(value)
    return bytes(found)


def _set_parameters(target: Any, values: Parameters) -> None:
    for name, value in values.items():
        parameter: pb.InferParameter = target[name]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int):
            parameter.int64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        else:
            parameter.string_param = str(value)


def model_metadata(found: ModelMetadata) -> pb.ModelMetadataResponse:
    def tensors(entries: Any) -> list[pb.ModelMetadataResponse.TensorMetadata]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype, shape=t.shape)
            for t in entries
        ]

    return pb.ModelMetadataResponse(
        name=found.name,
        versions=found.versions,
        platform=found.platform,
        inputs=tensors(found.inputs),
        outputs=tensors(found.outputs),
    )
