"""The Open Inference Protocol over gRPC, end to end: tritonclient.grpc and tritonclient's own
stub against `loss-service serve` on 127.0.0.1, grpcio-health-checking's and
grpcio-reflection's clients beside them.

Requests a client would refuse to build are sent through tritonclient's generated stub
(tritonclient.grpc.service_pb2), as a Go or Java pipeline's stubs would send them.
"""

import gzip
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tritonclient.grpc as triton_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from tritonclient.grpc import service_pb2 as tpb
from tritonclient.grpc import service_pb2_grpc
from tritonclient.utils import InferenceServerException

from service import __version__
from tests.e2e.conftest import GRPC, free_port, launch, running, serving, wait_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def address(server: str) -> str:
    return GRPC[server]


@pytest.fixture(scope="module")
def stub(address: str) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def logits(rows: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, classes)).astype(np.float32), rng.integers(0, classes, rows)


def ce_inputs(x: np.ndarray, target: np.ndarray) -> list[triton_grpc.InferInput]:
    inputs = [
        triton_grpc.InferInput("input", list(x.shape), "FP32"),
        triton_grpc.InferInput("target", list(target.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(target)
    return inputs


def torch_ce(x: np.ndarray, target: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    tensor = torch.from_numpy(x).requires_grad_()
    loss = F.cross_entropy(tensor, torch.from_numpy(target), **kwargs)
    loss.sum().backward()
    assert tensor.grad is not None
    return loss.detach().numpy(), tensor.grad.numpy()


def refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_server_and_model_metadata(address: str) -> None:
    with triton_grpc.InferenceServerClient(address) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("cross_entropy") and client.is_model_ready("softmax", "1")
        assert client.get_server_metadata(as_json=True) == {
            "name": "loss-service",
            "version": __version__,
            "extensions": ["binary_tensor_data"],
        }
        metadata = client.get_model_metadata("nll_loss", "1", as_json=True)
        assert [i["name"] for i in metadata["inputs"]] == ["input", "target", "weight"]
        grad = {"name": "grad_input", "datatype": "FP32", "shape": ["-1", "-1"]}
        assert grad in metadata["outputs"]
        with pytest.raises(InferenceServerException) as raised:
            client.get_model_metadata("hinge")
        assert raised.value.status() == "StatusCode.NOT_FOUND"
        assert raised.value.message().startswith("unknown model 'hinge'; known: cross_entropy,")
        with pytest.raises(InferenceServerException) as raised:
            client.is_model_ready("softmax", "2")
        assert raised.value.message() == "model 'softmax' has no version '2'; it has: 1"


def test_a_large_cross_entropy_with_gradient_and_every_kind_of_parameter(address: str) -> None:
    """4096 x 1000 float32 logits: a 16 MB message, past gRPC's default 4 MiB limit. The
    parameters are of all five kinds: string, bool, double, int64 and uint64."""
    x, target = logits(4096, 1000)
    with triton_grpc.InferenceServerClient(address) as client:
        result = client.infer(
            "cross_entropy",
            ce_inputs(x, target),
            parameters={"reduction": "none", "grad": True, "label_smoothing": 0.1},
        )
        loss, grad = torch_ce(x, target, reduction="none", label_smoothing=0.1)
        np.testing.assert_allclose(result.as_numpy("loss"), loss, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(result.as_numpy("grad_input"), grad, rtol=2e-5, atol=1e-6)
        parameters = result.get_response().parameters
        assert parameters["device"].string_param == "cpu"
        # ignore_index as int64 (tritonclient's int) and as uint64 (a stub's)
        indices = triton_grpc.InferInput("target", [4096], "INT64")
        indices.set_data_from_numpy(target)
        ignored = client.infer(
            "cross_entropy", ce_inputs(x, target), parameters={"ignore_index": 3}
        )
    expected, _ = torch_ce(x, target, ignore_index=3)
    np.testing.assert_allclose(ignored.as_numpy("loss"), expected, rtol=2e-5)


def cross_entropy_request(**parameters: tpb.InferParameter) -> tpb.ModelInferRequest:
    """A 2 x 3 cross entropy with typed contents."""
    request = tpb.ModelInferRequest(model_name="cross_entropy", id="r1")
    given = request.inputs.add(name="input", datatype="FP32", shape=[2, 3])
    given.contents.fp32_contents.extend([0.5, -1.0, 2.0, 0.0, 1.0, -0.5])
    target = request.inputs.add(name="target", datatype="INT64", shape=[2])
    target.contents.int64_contents.extend([2, 1])
    for name, value in parameters.items():
        request.parameters[name].CopyFrom(value)
    return request


def test_typed_contents_and_a_uint64_parameter(stub: Any) -> None:
    request = cross_entropy_request(
        ignore_index=tpb.InferParameter(uint64_param=1),
        grad=tpb.InferParameter(bool_param=True),
        binary_data_output=tpb.InferParameter(bool_param=False),
    )
    response = stub.ModelInfer(request)
    x = np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]], dtype=np.float32)
    loss, grad = torch_ce(x, np.array([2, 1]), ignore_index=1)
    assert response.id == "r1" and not response.raw_output_contents
    assert [o.name for o in response.outputs] == ["loss", "grad_input"]
    np.testing.assert_allclose(response.outputs[0].contents.fp32_contents, [loss], rtol=1e-6)
    np.testing.assert_allclose(
        response.outputs[1].contents.fp32_contents, grad.reshape(-1), rtol=1e-6
    )
    assert list(response.outputs[1].shape) == [2, 3]


def with_raw(request: tpb.ModelInferRequest, *raw: bytes) -> tpb.ModelInferRequest:
    request.raw_input_contents.extend(raw)
    return request


def edited(change: Any) -> tpb.ModelInferRequest:
    request = cross_entropy_request()
    change(request)
    return request


def clear_contents(request: tpb.ModelInferRequest) -> None:
    for given in request.inputs:
        given.ClearField("contents")


RAW_INPUT = np.zeros((2, 3), np.float32).tobytes()
RAW_TARGET = np.array([2, 1], np.int64).tobytes()

REFUSED = [
    (
        edited(lambda r: r.parameters["bogus"].CopyFrom(tpb.InferParameter(double_param=0.1))),
        "unknown parameter 'bogus'; cross_entropy takes: ignore_index, label_smoothing, dtype,"
        " device, reduction, grad",
    ),
    (
        edited(lambda r: r.parameters["label_smoothing"].CopyFrom(tpb.InferParameter())),
        "parameter 'label_smoothing' has no value",
    ),
    (
        edited(
            lambda r: r.parameters["label_smoothing"].CopyFrom(tpb.InferParameter(double_param=1.5))
        ),
        "label_smoothing: Input should be less than or equal to 1",
    ),
    (
        with_raw(cross_entropy_request(), RAW_INPUT, RAW_TARGET),
        "input 'input' has typed contents, but the request has raw_input_contents: send every"
        " input one way",
    ),
    (
        with_raw(edited(clear_contents), RAW_INPUT),
        "the request has 1 raw_input_contents for 2 inputs; give one for each input, in their"
        " order",
    ),
    (
        with_raw(edited(clear_contents), RAW_INPUT[:-4], RAW_TARGET),
        "input 'input' holds 20 bytes, but shape [2, 3] of FP32 takes 24",
    ),
    (
        edited(lambda r: r.inputs[0].ClearField("contents")),
        "input 'input' holds 0 values, but its shape [2, 3] takes 6",
    ),
    (
        edited(lambda r: r.inputs[0].contents.fp32_contents.append(1.0)),
        "input 'input' holds 7 values, but its shape [2, 3] takes 6",
    ),
    (
        edited(lambda r: setattr(r.inputs[1], "datatype", "FP32")),
        "input 'target' of datatype FP32 has its values in int64_contents; FP32 takes"
        " fp32_contents",
    ),
    (
        edited(lambda r: setattr(r.inputs[0], "datatype", "FP16")),
        "input 'input' has datatype FP16, which typed contents cannot hold: send it in"
        " raw_input_contents",
    ),
    (
        edited(lambda r: setattr(r.inputs[0], "datatype", "FP8")),
        "input 'input' has datatype 'FP8'; this server takes: BOOL, UINT8, INT8, INT16, INT32,"
        " INT64, FP16, BF16, FP32, FP64",
    ),
    (
        edited(lambda r: r.inputs[0].contents.fp32_contents.__setitem__(4, float("nan"))),
        "input[1, 1] = nan is not finite (NaN or infinity)",
    ),
    (
        edited(lambda r: r.inputs[1].contents.int64_contents.__setitem__(0, 7)),
        "target[0] = 7 is not a class index in [0, 3) and is not ignore_index (-100)",
    ),
    (
        edited(
            lambda r: (
                r.inputs[0]
                .parameters["binary_data_size"]
                .CopyFrom(tpb.InferParameter(int64_param=24))
            )
        ),
        "input 'input' has parameter 'binary_data_size'; inputs take none",
    ),
    (
        edited(lambda r: r.outputs.add(name="grad_input")),
        "output 'grad_input' is computed only with the parameter grad: true",
    ),
    (
        edited(lambda r: r.inputs.add(name="weights", datatype="FP32", shape=[3])),
        "unknown input 'weights'; cross_entropy takes: input, target, weight",
    ),
]


@pytest.mark.parametrize(("request_", "message"), REFUSED, ids=[m[:40] for _, m in REFUSED])
def test_bad_input_is_invalid_argument_with_the_rest_words(
    stub: Any, request_: tpb.ModelInferRequest, message: str
) -> None:
    error = refusal(lambda: stub.ModelInfer(request_))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_the_same_words_as_rest(server: str, stub: Any) -> None:
    """A REST refusal and its gRPC twin say the same."""
    body = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [2, 3],
                "data": [0.5, -1, 2, 0, 1, -0.5],
            },
            {"name": "target", "datatype": "INT64", "shape": [2], "data": [7, 1]},
        ]
    }
    rest = httpx2.post(f"{server}/v2/models/cross_entropy/infer", json=body).json()["error"]
    error = refusal(lambda: stub.ModelInfer(REFUSED[12][0]))
    assert error.details() == rest


def test_unknown_model_and_version_are_not_found(stub: Any) -> None:
    error = refusal(lambda: stub.ModelInfer(tpb.ModelInferRequest(model_name="hinge")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details().startswith("unknown model 'hinge'; known: cross_entropy, nll_loss,")
    request = tpb.ModelInferRequest(model_name="sigmoid", model_version="3")
    error = refusal(lambda: stub.ModelInfer(request))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "model 'sigmoid' has no version '3'; it has: 1",
    )


def test_a_refusal_naming_a_huge_name_is_clipped_to_arrive(stub: Any) -> None:
    """Its words travel in a trailer, which clients take up to 16 KiB of."""
    name = "m" * 20_000
    error = refusal(lambda: stub.ModelMetadata(tpb.ModelMetadataRequest(name=name)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details().startswith("unknown model 'mmm") and error.details().endswith("...")
    assert len(error.details()) == 4096


def test_bytes_that_are_not_a_message_are_invalid_argument(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        error = refusal(lambda: infer(b"\xff\xff\xff"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("the request is not a ModelInferRequest: ")


def test_outputs_go_all_raw_or_all_typed(stub: Any) -> None:
    request = cross_entropy_request(grad=tpb.InferParameter(bool_param=True))
    request.outputs.add(name="loss")
    grad = request.outputs.add(name="grad_input")
    grad.parameters["binary_data"].CopyFrom(tpb.InferParameter(bool_param=False))
    error = refusal(lambda: stub.ModelInfer(request))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "over gRPC the outputs go all raw or all typed; binary_data differs",
    )


LIMITS = {"max_body_bytes": "1000000", "max_elements": "200000", "max_work": "0.05"}


@pytest.fixture(scope="module")
def limited() -> Iterator[str]:
    with serving(**LIMITS) as url:
        yield GRPC[url]


def test_the_limits_are_resource_exhausted(limited: str) -> None:
    with triton_grpc.InferenceServerClient(limited) as client:
        # past max_body_bytes: gRPC's own receive limit, before the message is read
        x, target = logits(300, 1000)
        with pytest.raises(InferenceServerException) as raised:
            client.infer("cross_entropy", ce_inputs(x, target))
        assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert raised.value.message().startswith("SERVER: Received message larger than max (")
        assert raised.value.message().endswith(" vs. 1000000)")
        # past max_body_bytes once inflated: a gzip message of 5 kB
        x, target = np.zeros((300, 1000), np.float32), np.zeros(300, np.int64)
        with pytest.raises(InferenceServerException) as raised:
            client.infer("cross_entropy", ce_inputs(x, target), compression_algorithm="gzip")
        assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        # past max_work: a CTC lattice small on the wire
        with pytest.raises(InferenceServerException) as raised:
            client.infer("ctc_loss", ctc_inputs(8000, 4000))
        assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert raised.value.message().startswith("ctc_loss would take about")
    # past max_elements, in typed contents: refused before any is read
    request = tpb.ModelInferRequest(model_name="sigmoid")
    given = request.inputs.add(name="input", datatype="FP32", shape=[2, 105_000])
    given.contents.fp32_contents.extend(np.zeros(210_000, np.float32).tolist())
    with grpc.insecure_channel(limited) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        error = refusal(lambda: stub.ModelInfer(request))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "the tensors hold more than max_elements (200000) elements",
    )


def test_a_gzip_request_is_inflated(address: str) -> None:
    x, target = logits(64, 10)
    with triton_grpc.InferenceServerClient(address) as client:
        result = client.infer("cross_entropy", ce_inputs(x, target), compression_algorithm="gzip")
    np.testing.assert_allclose(result.as_numpy("loss"), torch_ce(x, target)[0], rtol=1e-6)
    assert len(gzip.compress(x.tobytes())) < x.nbytes  # what gzip had to work with


def ctc_inputs(steps: int, labels: int) -> list[triton_grpc.InferInput]:
    """A long CTC lattice: a few hundred kB that take about a second to compute."""
    rng = np.random.default_rng(1)
    arrays = {
        "log_probs": np.log(np.full((steps, 1, 3), 1 / 3, np.float32)),
        "targets": rng.integers(1, 3, (1, labels)),
        "input_lengths": np.array([steps]),
        "target_lengths": np.array([labels]),
    }
    found = []
    for name, array in arrays.items():
        datatype = "FP32" if array.dtype == np.float32 else "INT64"
        given = triton_grpc.InferInput(name, list(array.shape), datatype)
        given.set_data_from_numpy(array)
        found.append(given)
    return found


def test_keys_from_metadata() -> None:
    x, target = logits(4, 3)
    with serving(api_keys="k1,k2") as url, triton_grpc.InferenceServerClient(GRPC[url]) as client:
        assert client.is_server_live() and client.is_server_ready()  # open, as on REST
        for headers, detail in [
            (
                None,
                "an API key is required: send authorization: Bearer KEY metadata (its name in"
                " lowercase, as gRPC requires)",
            ),
            ({"authorization": "Bearer k3"}, "the API key is not valid"),
            ({"authorization": "Basic k1"}, "the API key is not valid"),
        ]:
            with pytest.raises(InferenceServerException) as raised:
                client.infer("cross_entropy", ce_inputs(x, target), headers=headers)
            assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
            assert raised.value.message() == detail
        with pytest.raises(InferenceServerException) as raised:
            client.get_model_metadata("cross_entropy")
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
        result = client.infer(
            "cross_entropy", ce_inputs(x, target), headers={"authorization": "Bearer k2"}
        )
        assert result.as_numpy("loss").shape == ()
        with grpc.insecure_channel(GRPC[url]) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest()).status == SERVING


SERVING = health_pb2.HealthCheckResponse.SERVING


def test_overload_is_unavailable_with_a_retry_pushback() -> None:
    """One slot, and a wait of 10 ms for it: beside a second's CTC, UNAVAILABLE, with when to
    retry in the trailing metadata (gRFC A6), while the health service answers."""
    with serving(max_concurrency="1", queue_timeout="0.01", unready_after="0.2") as url:
        address = GRPC[url]

        def infer(_: int) -> Any:
            with grpc.insecure_channel(address) as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                request = tpb.ModelInferRequest(model_name="ctc_loss")
                for given in ctc_inputs(8000, 4000):
                    request.inputs.append(given._get_tensor())
                    request.raw_input_contents.append(given._get_content())
                try:
                    return stub.ModelInfer(request)
                except grpc.RpcError as error:
                    return error

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(infer, range(4)))
            busy = [a for a in answers if isinstance(a, grpc.RpcError)]
        assert len(busy) in (1, 2, 3), answers
        error = busy[0]
        assert (error.code(), error.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "all 1 computation slots are busy; retry shortly",
        )
        trailing = dict(error.trailing_metadata())
        assert trailing["grpc-retry-pushback-ms"] == "1000"
        assert len(trailing["x-request-id"]) == 32


def test_health_answers_while_every_slot_computes() -> None:
    """The health service runs on the event loop, which computations leave free: SERVING
    while one computes, NOT_SERVING once every slot has been busy for unready_after."""
    with serving(max_concurrency="1", unready_after="0.3") as url:
        address = GRPC[url]
        finished: dict[str, float] = {}

        def compute() -> None:
            with triton_grpc.InferenceServerClient(address) as client:
                client.infer("ctc_loss", ctc_inputs(8000, 4000))
            finished["loss"] = time.monotonic()

        worker = threading.Thread(target=compute)
        worker.start()
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            time.sleep(0.1)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
            time.sleep(0.4)
            answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            finished["health"] = time.monotonic()
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        worker.join(60)
        assert finished["health"] < finished["loss"]


def test_the_health_service(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == SERVING
        error = refusal(lambda: health.Check(health_pb2.HealthCheckRequest(service="other")))
        assert (error.code(), error.details()) == (
            grpc.StatusCode.NOT_FOUND,
            "unknown service 'other'",
        )
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        assert next(watch).status == SERVING
        watch.cancel()


def test_reflection_lists_and_describes_the_services(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert set(database.get_services()) == {
            "inference.GRPCInferenceService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        found = database.FindFileContainingSymbol("inference.ModelInferRequest")
        assert found.name == "open_inference_grpc.proto"
        assert "InferParameter" in [m.name for m in found.message_type]


def test_metrics_and_the_access_log_name_the_protocol(caplog: pytest.LogCaptureFixture) -> None:
    x, target = logits(4, 3)
    with (
        running(grpc_port=free_port()) as server,
        caplog.at_level(logging.INFO, "loss_service.access"),
        triton_grpc.InferenceServerClient(f"127.0.0.1:{server.settings.grpc_port}") as client,
    ):
        result = client.infer(
            "cross_entropy", ce_inputs(x, target), headers={"x-request-id": "abc.1"}
        )
        text = httpx2.get(f"{server.url}/metrics").text
    assert result.get_response().id == ""
    line = (
        'loss_service_requests_total{loss="cross_entropy",method="POST",protocol="grpc",'
        'route="/inference.GRPCInferenceService/ModelInfer",status="OK"} 1.0'
    )
    assert line in text.splitlines()
    logged = [json.loads(r.getMessage()) for r in caplog.records if "grpc" in r.getMessage()]
    (access,) = [entry for entry in logged if entry["route"].endswith("ModelInfer")]
    assert {k: access[k] for k in ("request_id", "protocol", "method", "loss", "status")} == {
        "request_id": "abc.1",
        "protocol": "grpc",
        "method": "POST",
        "loss": "cross_entropy",
        "status": "OK",
    }
    assert access["bytes_in"] > x.nbytes and access["bytes_out"] > 0


def test_stubs_are_as_the_proto_makes_them(tmp_path: Path) -> None:
    """The checked-in modules are what `make protos` writes from docs/open_inference_grpc.proto."""
    from tools.protos import MODULE, generate

    generate(tmp_path)
    for suffix in (".py", ".pyi"):
        made = (tmp_path / f"{MODULE}{suffix}").read_text()
        assert made == (ROOT / "service" / "grpc" / f"{MODULE}{suffix}").read_text()


@pytest.mark.parametrize(
    "order",
    [
        "import service.grpc.messages, tritonclient.grpc",
        "import tritonclient.grpc, service.grpc.messages",
    ],
)
def test_the_service_and_tritonclient_import_together(order: str) -> None:
    """Both register inference.* messages: the service in a pool of its own."""
    subprocess.run([sys.executable, "-c", order], check=True, cwd=ROOT)


def test_sigterm_drains_a_call_in_flight() -> None:
    server = launch()
    try:
        wait_ready(server.process, server.url)
        with ThreadPoolExecutor(1) as pool:

            def compute() -> Any:
                with triton_grpc.InferenceServerClient(server.grpc) as client:
                    return client.infer("ctc_loss", ctc_inputs(8000, 4000)).as_numpy("loss")

            future = pool.submit(compute)
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            assert np.isfinite(future.result(30))
    finally:
        assert server.process.wait(30) == 0


def test_two_workers_share_the_grpc_port() -> None:
    """Each worker listens on the port (SO_REUSEPORT) and the kernel spreads connections:
    every call on a channel of its own is answered, and the pod's metrics count them all."""
    x, target = logits(4, 3)
    with serving(workers="2") as url:

        def infer(_: int) -> np.ndarray:
            with triton_grpc.InferenceServerClient(GRPC[url]) as client:
                loss: np.ndarray = client.infer("cross_entropy", ce_inputs(x, target)).as_numpy(
                    "loss"
                )
                return loss

        with ThreadPoolExecutor(8) as pool:
            losses = list(pool.map(infer, range(40)))
        assert all(loss == losses[0] for loss in losses)
        text = httpx2.get(f"{url}/metrics").text
    line = (
        'loss_service_requests_total{loss="cross_entropy",method="POST",protocol="grpc",'
        'route="/inference.GRPCInferenceService/ModelInfer",status="OK"} 40.0'
    )
    assert line in text.splitlines()


def test_a_large_message_without_a_key_is_refused_unread(caplog: pytest.LogCaptureFixture) -> None:
    """The key is checked on the metadata, before the message is read: a 24 MB message
    without one is UNAUTHENTICATED, and the access line shows no byte of it read."""
    x, target = logits(6000, 1000)
    with (
        running(grpc_port=free_port(), api_keys="k") as server,
        caplog.at_level(logging.INFO, "loss_service.access"),
        triton_grpc.InferenceServerClient(f"127.0.0.1:{server.settings.grpc_port}") as client,
    ):
        with pytest.raises(InferenceServerException) as raised:
            client.infer("cross_entropy", ce_inputs(x, target))
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
        result = client.infer(
            "cross_entropy", ce_inputs(x, target), headers={"authorization": "Bearer k"}
        )
        assert result.as_numpy("loss").shape == ()
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    refused, answered = [e for e in logged if e["route"].endswith("/ModelInfer")]
    assert (refused["status"], refused["bytes_in"]) == ("UNAUTHENTICATED", 0)
    assert (answered["status"], answered["bytes_in"] > x.nbytes) == ("OK", True)


def test_sigterm_ends_an_open_watch_with_not_serving() -> None:
    """An open Watch would hold the stop up for its whole grace period: stopping ends it, after
    NOT_SERVING, with OK (not the UNAVAILABLE gRPC gives calls cut at the end of the grace)."""
    server = launch()
    try:
        wait_ready(server.process, server.url)
        with grpc.insecure_channel(server.grpc) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            assert next(watch).status == SERVING
            server.process.send_signal(signal.SIGTERM)
            assert [answer.status for answer in watch] == [
                health_pb2.HealthCheckResponse.NOT_SERVING
            ]
            assert watch.code() == grpc.StatusCode.OK
    finally:
        assert server.process.wait(30) == 0
