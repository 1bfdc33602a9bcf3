"""service.grpc.messages without a server: the raw contents cut out of a ModelInferRequest's
bytes as protobuf itself would read them, and the answer's raw contents framed as protobuf
would write them."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from service.grpc import messages
from service.grpc import open_inference_grpc_pb2 as pb
from service.protocol.exchange import Answer, Output

RAW = st.binary(max_size=300)


@st.composite
def requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(
        model_name=draw(st.text(max_size=10)), id=draw(st.text(max_size=5))
    )
    for name in draw(st.lists(st.text(max_size=4), max_size=3)):
        given = request.inputs.add(
            name=name, datatype="FP32", shape=draw(st.lists(st.integers(-5, 2**40), max_size=3))
        )
        given.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=3)))
    for name in draw(st.lists(st.text(max_size=4), max_size=3)):
        request.parameters[name].double_param = draw(st.floats())
    request.raw_input_contents.extend(draw(st.lists(RAW, max_size=4)))
    return request


@given(requests(), st.data())
def test_raw_contents_are_cut_out_as_protobuf_reads_them(
    request: pb.ModelInferRequest, data: st.DataObject
) -> None:
    body = request.SerializeToString()
    if data.draw(st.booleans()):  # protobuf also reads fields out of order, and repeated
        extra = pb.ModelInferRequest(model_name="again", raw_input_contents=[b"\x01\x02"])
        body = extra.SerializeToString() + body
    received = messages.parse(body)
    whole = pb.ModelInferRequest.FromString(body)
    assert [bytes(r) for r in received.raw] == list(whole.raw_input_contents)
    whole.ClearField("raw_input_contents")
    assert received.message == whole


def test_a_message_of_many_fields_is_parsed_whole() -> None:
    """Past SCANNED top-level fields protobuf reads it at once: no Python loop over a large
    message of tiny fields."""
    request = pb.ModelInferRequest(raw_input_contents=[b"abc"])
    for index in range(messages.SCANNED + 1):
        request.parameters[str(index)].bool_param = True
    received = messages.parse(request.SerializeToString())
    assert list(received.raw) == [b"abc"] and len(received.message.parameters) == 4097


@given(st.binary(max_size=40))
def test_bytes_that_are_no_message_are_refused_as_protobuf_refuses_them(body: bytes) -> None:
    try:
        whole = pb.ModelInferRequest.FromString(body)
    except Exception:
        whole = None
    try:
        received = messages.parse(body)
    except Exception as error:
        assert whole is None, error
        assert str(error).startswith("the request is not a ModelInferRequest: ")
    else:
        assert whole is not None
        assert [bytes(r) for r in received.raw] == list(whole.raw_input_contents)


def test_raw_outputs_are_framed_as_protobuf_writes_them() -> None:
    loss = np.float32(0.25).reshape(())
    grad = np.arange(6, dtype=np.float64).reshape(2, 3)
    answer = Answer(
        "cross_entropy",
        "7",
        {"device": "cpu", "divisor": 2.0},
        [Output("loss", "FP32", loss, True), Output("grad_input", "FP64", grad, True)],
    )
    written = pb.ModelInferResponse.FromString(messages.response(answer))
    assert list(written.raw_output_contents) == [loss.tobytes(), grad.tobytes()]
    assert [list(o.shape) for o in written.outputs] == [[], [2, 3]]
    assert written.parameters["divisor"].double_param == 2.0 and written.id == "7"
    big = np.zeros(300, np.uint8)  # a length of two varint bytes
    framed = messages.response(Answer("m", None, {}, [Output("x", "UINT8", big, True)]))
    assert list(pb.ModelInferResponse.FromString(framed).raw_output_contents) == [big.tobytes()]
