"""Hypothesis over ModelInfer messages, through a real server's gRPC port: names, datatypes,
shapes, raw and typed contents (in the right field or another), parameters of every kind,
requested outputs, and bytes that are cut short or are not a message at all. The pass rule:
every answer is OK or a refusal of the client's (INVALID_ARGUMENT, NOT_FOUND,
RESOURCE_EXHAUSTED), never INTERNAL or UNKNOWN.

In `make test` it runs derandomized; `make fuzz` runs it randomly, with more examples. Every
finding becomes a case in tests/e2e/test_grpc.py.
"""

import os
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as tpb

from service.grpc.messages import CONTENTS
from service.kinds import MODELS
from service.protocol.tensors import DATATYPES
from tests.api.test_fuzz_v2 import DIMENSIONS, MODEL_NAMES, TENSOR_NAMES, coherent
from tests.e2e.conftest import free_port, running

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "75")) * 2
FIELDS = sorted({field for field, _ in CONTENTS.values()} | {"uint64_contents", "bytes_contents"})
REFUSALS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
PARAMETERS = st.one_of(
    st.builds(lambda v: tpb.InferParameter(bool_param=v), st.booleans()),
    st.builds(lambda v: tpb.InferParameter(int64_param=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: tpb.InferParameter(uint64_param=v), st.integers(0, 2**64 - 1)),
    st.builds(lambda v: tpb.InferParameter(double_param=v), st.floats()),
    st.builds(
        lambda v: tpb.InferParameter(string_param=v),
        st.sampled_from(["mean", "none", "sum", "float64", "cpu", "cuda", "self_confidence", ""]),
    ),
    st.just(tpb.InferParameter()),
)


def typed_values(field: str, array: np.ndarray) -> list[Any]:
    """The array's values as the field holds them."""
    flat = array.reshape(-1)
    if field in ("fp32_contents", "fp64_contents"):
        return [float(v) for v in flat]
    if field == "bool_contents":
        return [bool(v) for v in flat]
    if field == "bytes_contents":
        return [str(v).encode() for v in flat]
    low = 0 if field.startswith("uint") else None
    return [int(v) if low is None else abs(int(v)) for v in flat]


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in n draws (st.integers leans to its bounds, so 0 comes far more often)."""
    return bool(draw(st.sampled_from([True] + [False] * (n - 1))))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A ModelInferRequest's bytes: a coherent request, then bent."""
    model = draw(st.sampled_from([*MODEL_NAMES, "unknown"]))
    spec = MODELS[model if model in MODELS else "cross_entropy"][1]
    rows, classes = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    raw = draw(st.booleans())
    request = tpb.ModelInferRequest(
        model_name=model,
        model_version="2" if one_in(draw, 10) else draw(st.sampled_from(["", "1"])),
    )
    for tensor in draw(coherent(spec, rows, classes)):
        array, datatype = tensor["array"], tensor["datatype"]
        if not raw and datatype in ("FP16", "BF16"):  # which typed contents cannot hold
            datatype = draw(st.sampled_from(["FP32", "FP64"]))
        given = request.inputs.add(name=tensor["name"], datatype=datatype, shape=array.shape)
        change = draw(st.sampled_from(range(7))) if one_in(draw, 4) else None  # some bent
        if change == 0:
            given.name = draw(st.sampled_from([*TENSOR_NAMES, "", "unknown"]))
        elif change == 1:
            given.datatype = draw(st.sampled_from([*DATATYPES, "FP8", "BYTES", "fp32"]))
        elif change == 2:
            given.ClearField("shape")
            given.shape.extend(draw(st.lists(DIMENSIONS, max_size=4)))
        elif change == 3:
            given.parameters[draw(st.text(max_size=4))].CopyFrom(draw(PARAMETERS))
        if raw:
            wire = array.astype(DATATYPES.get(datatype, np.dtype("<f4"))).tobytes()
            if change == 4:
                wire = draw(st.binary(max_size=len(wire) + 8))
            request.raw_input_contents.append(wire)
        else:
            field = CONTENTS.get(datatype, ("fp32_contents", None))[0]
            if change == 5:
                field = draw(st.sampled_from(FIELDS))
            values = typed_values(field, array)
            if change == 6:
                values = values[: draw(st.integers(0, len(values)))] + values[:2]
            getattr(given.contents, field).extend(values)
    if one_in(draw, 10) and request.inputs:  # raw and typed mixed, or miscounted
        request.raw_input_contents.append(b"\0" * 8)
    names = [*spec.scalars, "binary_data_output", "unknown"]
    for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        if one_in(draw, 2):
            request.parameters[name].CopyFrom(draw(PARAMETERS))
    outputs = st.lists(st.sampled_from([*spec.outputs(), "x"]), max_size=3)
    for name in draw(outputs) if one_in(draw, 4) else []:
        output = request.outputs.add(name=name)
        if draw(st.booleans()):
            output.parameters[draw(st.sampled_from(["binary_data", "x"]))].CopyFrom(
                draw(PARAMETERS)
            )
    body = request.SerializeToString()
    if one_in(draw, 20):
        body = body[: draw(st.integers(0, len(body)))] + draw(st.binary(max_size=4))
    return body


@pytest.fixture(scope="module")
def infer() -> Iterator[Any]:
    with (
        running(grpc_port=free_port()) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.settings.grpc_port}") as channel,
    ):
        yield channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")


@given(messages())
@settings(max_examples=EXAMPLES)
def test_generated_infer_messages(infer: Any, body: bytes) -> None:
    try:
        answer = infer(body, timeout=30)
    except grpc.RpcError as error:
        event(error.code().name)  # --hypothesis-show-statistics shows how often each came
        assert error.code() in REFUSALS, (error.code(), error.details())
        assert error.details()
    else:
        event("OK")
        assert tpb.ModelInferResponse.FromString(answer).model_name
