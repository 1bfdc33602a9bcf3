"""/v2 in-process: metadata, health, the binary and JSON wire formats, and every bad input's
status and {"error": ...} body, in the same words as /v1."""

from typing import Any

import httpx2
import numpy as np
import orjson
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

from service import __version__
from service.kinds import MODELS
from service.losses import REGISTRY
from tests.conftest import make_client

INFER = "/v2/models/cross_entropy/infer"


def error(response: httpx2.Response, status: int) -> str:
    """The protocol's error message, after checking the status and the body's shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    message: str = body["error"]
    return message


def tensor(name: str, array: np.ndarray, datatype: str, binary: bool) -> tuple[dict, bytes]:
    """A $request_input and the bytes it contributes after the header."""
    entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype}
    if binary:
        entry["parameters"] = {"binary_data_size": array.nbytes}
        return entry, array.tobytes()
    entry["data"] = array.reshape(-1).tolist()
    return entry, b""


def binary_request(header: dict[str, Any], data: bytes) -> dict[str, Any]:
    """httpx2 keyword arguments for a JSON header followed by binary data."""
    text = orjson.dumps(header)
    return {
        "content": text + data,
        "headers": {"Inference-Header-Content-Length": str(len(text))},
    }


def ce_request(binary: bool = True, **parameters: Any) -> dict[str, Any]:
    logits = np.array([[1, 2, 3], [0, 0, 5]], dtype=np.float32)
    target = np.array([2, 0], dtype=np.int64)
    (a, da), (b, db) = (
        tensor("input", logits, "FP32", binary),
        tensor("target", target, "INT64", binary),
    )
    return binary_request({"inputs": [a, b], "parameters": parameters}, da + db)


def test_server_metadata_names_the_binary_extension(client: TestClient) -> None:
    assert client.get("/v2").json() == {
        "name": "loss-service",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    for path in ("/v2/models/softmax/ready", "/v2/models/softmax/versions/1/ready"):
        assert client.get(path).json() == {"name": "softmax", "ready": True}


def test_not_ready_before_the_engine_loads() -> None:
    client = TestClient(make_client().app)  # no lifespan: the engine never loads
    assert error(client.get("/v2/health/ready"), 503) == "the engine is not loaded yet"
    assert error(client.post(INFER, **ce_request()), 503) == "the engine is not loaded yet"


def test_every_function_is_a_model(client: TestClient) -> None:
    for name, (_, spec) in MODELS.items():
        metadata = client.get(f"/v2/models/{name}").json()
        assert client.get(f"/v2/models/{name}/versions/1").json() == metadata
        assert (metadata["name"], metadata["versions"], metadata["platform"]) == (
            name,
            ["1"],
            "pytorch",
        )
        names = [t.name for t in spec.tensors] + [p.name for p in spec.tensor_params]
        assert [i["name"] for i in metadata["inputs"]] == names
        assert [o["name"] for o in metadata["outputs"]] == list(spec.outputs())


def test_cross_entropy_metadata_shows_the_batched_shapes(client: TestClient) -> None:
    metadata = client.get("/v2/models/cross_entropy").json()
    assert metadata["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "target", "datatype": "INT64", "shape": [-1]},
        {"name": "weight", "datatype": "FP32", "shape": [-1]},
    ]
    assert metadata["outputs"] == [
        {"name": "loss", "datatype": "FP32", "shape": []},
        {"name": "grad_input", "datatype": "FP32", "shape": [-1, -1]},
    ]


def reference(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[1.0, 2, 3], [0, 0, 5]], dtype=dtype, requires_grad=True)
    loss = F.cross_entropy(x, torch.tensor([2, 0]))
    loss.backward()
    assert x.grad is not None
    return loss.detach(), x.grad


def test_binary_in_binary_out(client: TestClient) -> None:
    response = client.post(INFER, **ce_request(grad=True, binary_data_output=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    assert header == {
        "model_name": "cross_entropy",
        "model_version": "1",
        "parameters": {"device": "cpu", "divisor": 2.0},
        "outputs": [
            {
                "name": "loss",
                "datatype": "FP32",
                "shape": [],
                "parameters": {"binary_data_size": 4},
            },
            {
                "name": "grad_input",
                "datatype": "FP32",
                "shape": [2, 3],
                "parameters": {"binary_data_size": 24},
            },
        ],
    }
    data = response.content[length:]
    assert len(data) == 28 and int(response.headers["content-length"]) == length + 28
    loss, grad = reference()
    assert np.frombuffer(data[:4], "<f4")[0] == loss.item()
    np.testing.assert_array_equal(np.frombuffer(data[4:], "<f4").reshape(2, 3), grad.numpy())


def test_json_in_json_out_with_nested_data_and_no_content_type(client: TestClient) -> None:
    body = {
        "id": "42",
        "inputs": [
            {"name": "input", "shape": [2, 3], "datatype": "FP64", "data": [[1, 2, 3], [0, 0, 5]]},
            {"name": "target", "shape": [2], "datatype": "INT32", "data": [2, 0]},
        ],
        "parameters": {"dtype": "float64", "grad": True},
        "outputs": [{"name": "grad_input"}],
    }
    response = client.post(INFER, content=orjson.dumps(body))  # tritonclient sends no type
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    _, grad = reference(torch.float64)
    assert answer["id"] == "42"
    (output,) = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("grad_input", "FP64", [2, 3])
    assert output["data"] == grad.reshape(-1).tolist()


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP16", np.float16), ("FP64", np.float64), ("INT32", np.int32), ("INT8", np.int8)],
)
def test_inputs_of_every_float_and_integer_datatype(
    client: TestClient, datatype: str, dtype: type
) -> None:
    values = (
        np.array([[0.5, -1.0], [2.0, 0.25]]) if "FP" in datatype else np.array([[1, -2], [3, 0]])
    )
    target = np.array([[0.0, 1.0], [1.0, 0.0]])
    (a, da), (b, db) = (
        tensor("input", values.astype(dtype), datatype, True),
        tensor("target", target.astype(np.uint8), "UINT8", True),
    )
    request = binary_request(
        {"inputs": [a, b], "parameters": {"dtype": "float64", "reduction": "none"}}, da + db
    )
    response = client.post("/v2/models/binary_cross_entropy_with_logits/infer", **request)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    expected = F.binary_cross_entropy_with_logits(
        torch.from_numpy(values.astype(dtype).astype(np.float64)),
        torch.from_numpy(target),
        reduction="none",
    )
    assert output["data"] == expected.reshape(-1).tolist()


def test_bf16_and_bool_inputs(client: TestClient) -> None:
    values = np.array([1.5, -2.0, 0.15625], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)  # these three are exact in BF16
    (a, da), (b, db) = (
        tensor("input", bf16, "BF16", True),
        tensor("target", np.array([True, False, True]), "BOOL", True),
    )
    request = binary_request({"inputs": [a, b], "parameters": {"reduction": "sum"}}, da + db)
    response = client.post("/v2/models/binary_cross_entropy_with_logits/infer", **request)
    assert response.status_code == 200, response.text
    expected = F.binary_cross_entropy_with_logits(
        torch.from_numpy(values), torch.tensor([1.0, 0.0, 1.0]), reduction="sum"
    )
    (value,) = response.json()["outputs"][0]["data"]
    assert np.float32(value) == expected.numpy()


def test_finite_values_whose_sum_overflows_are_taken(client: TestClient) -> None:
    values = np.full(4, 3e38, dtype=np.float32)
    (a, data) = tensor("input", values, "FP32", True)
    request = binary_request({"inputs": [a], "parameters": {"dtype": "float64"}}, data)
    response = client.post("/v2/models/sigmoid/infer", **request)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1.0] * 4


def test_an_activation_answers_output(client: TestClient) -> None:
    (a, data) = tensor("input", np.array([[1.0, 2.0, 3.0]], dtype=np.float32), "FP32", True)
    request = binary_request({"inputs": [a], "parameters": {"dim": 1}}, data)
    response = client.post("/v2/models/softmax/versions/1/infer", **request)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    expected = torch.softmax(torch.tensor([[1.0, 2.0, 3.0]]), dim=1)
    assert (output["name"], output["shape"]) == ("output", [1, 3])
    np.testing.assert_array_equal(np.array(output["data"], np.float32), expected.reshape(-1))


def test_non_finite_results_come_with_a_warning(client: TestClient) -> None:
    body = {
        "inputs": [
            {"name": "log_probs", "shape": [1, 3], "datatype": "FP32", "data": [-1, -1, -1]},
            {"name": "targets", "shape": [2], "datatype": "INT64", "data": [1, 2]},
            {"name": "input_lengths", "shape": [], "datatype": "INT64", "data": [1]},
            {"name": "target_lengths", "shape": [], "datatype": "INT64", "data": [2]},
        ],
        "parameters": {"binary_data_output": True},
    }
    response = client.post("/v2/models/ctc_loss/infer", json=body)
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    assert header["parameters"]["warnings"] == (
        "loss: 1 of 1 values are not finite (NaN or infinity), written as null"
    )
    assert np.frombuffer(response.content[length:], "<f4")[0] == np.inf


def v1_detail(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post("/v1/losses/cross_entropy", json=body)
    assert response.status_code == 422
    detail: str = response.json()["detail"]
    return detail


@pytest.mark.parametrize(
    ("v1", "inputs", "parameters"),
    [
        (
            {"input": [[1, 2, 3]], "target": [7]},
            [("input", [[1, 2, 3]], "FP32"), ("target", [7], "INT64")],
            {},
        ),
        (
            {"input": [[1, 2, 3]], "target": [[0.5, 0.5, 1.5]]},
            [("input", [[1, 2, 3]], "FP32"), ("target", [[0.5, 0.5, 1.5]], "FP32")],
            {},
        ),
        (
            {"input": [[1, 2, 3]], "target": [2], "reduction": "avg"},
            [("input", [[1, 2, 3]], "FP32"), ("target", [2], "INT64")],
            {"reduction": "avg"},
        ),
        (
            {"input": [[1, 2, 3]], "target": [2], "label_smoothing": 2.0},
            [("input", [[1, 2, 3]], "FP32"), ("target", [2], "INT64")],
            {"label_smoothing": 2.0},
        ),
        ({"input": [[1, 2, 3]]}, [("input", [[1, 2, 3]], "FP32")], {}),
        (
            {"input": [[1, 2, 3]], "target": [2], "weight": [1, 2]},
            [("input", [[1, 2, 3]], "FP32"), ("target", [2], "INT64"), ("weight", [1, 2], "FP32")],
            {},
        ),
    ],
    ids=["class index", "probability", "reduction", "label_smoothing", "missing", "weight"],
)
def test_every_v1_rule_holds_with_the_same_words(
    client: TestClient, v1: dict, inputs: list, parameters: dict
) -> None:
    for binary in (True, False):
        entries, data = [], b""
        for name, values, datatype in inputs:
            dtype = {"FP32": np.float32, "INT64": np.int64}[datatype]
            entry, chunk = tensor(name, np.array(values, dtype=dtype), datatype, binary)
            entries.append(entry)
            data += chunk
        request = binary_request({"inputs": entries, "parameters": parameters}, data)
        assert error(client.post(INFER, **request), 422) == v1_detail(client, v1)


def raw(header: dict[str, Any], data: bytes = b"", length: int | None = None) -> dict[str, Any]:
    text = orjson.dumps(header)
    size = str(len(text) if length is None else length)
    return {"content": text + data, "headers": {"Inference-Header-Content-Length": size}}


FP32_2x3 = {"name": "input", "shape": [2, 3], "datatype": "FP32"}
TARGET = {"name": "target", "shape": [2], "datatype": "INT64", "data": [2, 0]}
SIX = np.arange(6, dtype=np.float32).tobytes()


@pytest.mark.parametrize(
    ("request_", "status", "message"),
    [
        (
            raw(
                {"inputs": [FP32_2x3 | {"parameters": {"binary_data_size": 24}}, TARGET]}, SIX[:20]
            ),
            400,
            "the body holds 20 bytes of binary data after its JSON header, but the inputs'"
            " binary_data_size add up to 24",
        ),
        (
            raw(
                {"inputs": [FP32_2x3 | {"parameters": {"binary_data_size": 20}}, TARGET]}, SIX[:20]
            ),
            400,
            "input 'input': binary_data_size is 20 bytes, but shape [2, 3] of FP32 takes 24",
        ),
        (
            raw({"inputs": [FP32_2x3 | {"data": [1, 2, 3, 4]}, TARGET]}),
            400,
            "input 'input' holds 4 values, but its shape [2, 3] takes 6",
        ),
        (
            raw({"inputs": [FP32_2x3 | {"datatype": "FP8", "data": [1]}, TARGET]}),
            400,
            "input 'input' has datatype 'FP8'; this server takes: BOOL, UINT8, INT8, INT16,"
            " INT32, INT64, FP16, BF16, FP32, FP64",
        ),
        (
            raw({"inputs": [TARGET]}, length=10_000),
            400,
            "Inference-Header-Content-Length is 10000 bytes, beyond the body's 74",
        ),
        (
            raw({"inputs": [TARGET]}, length=-1),
            400,
            "Inference-Header-Content-Length must be a number of bytes, not '-1'",
        ),
        (
            {"content": b'{"inputs": [', "headers": {}},
            400,
            "the inference request is not valid: Input data was truncated",
        ),
        (
            {"content": b'{"inputs": [{"name": 3}]}', "headers": {}},
            400,
            "the inference request is not valid: Expected `str`, got `int` - at `$.inputs[0].name`",
        ),
        (
            raw({"inputs": [FP32_2x3, TARGET]}),
            400,
            "input 'input' has neither data nor binary_data_size",
        ),
        (
            raw({"inputs": [FP32_2x3 | {"data": [1] * 6, "parameters": {"binary_data_size": 24}}]}),
            400,
            "input 'input' has both data and binary_data_size",
        ),
        (
            raw({"inputs": [FP32_2x3 | {"shape": [-2, -3], "data": [1] * 6}, TARGET]}),
            400,
            "input 'input' has shape [-2, -3]; dimensions must be >= 0",
        ),
        (raw({"inputs": [TARGET, TARGET]}), 400, "input 'target' is given 2 times"),
        (
            raw({"inputs": [TARGET], "parameters": {"reduction": [0.5] * 1000}}),
            400,
            "the inference request is not valid: Expected `bool | int | float | str`, got"
            " `array` - at `$.parameters[...]`",
        ),
        (
            raw({"inputs": [TARGET], "parameters": {"binary_data_output": 1}}),
            400,
            "binary_data_output must be true or false, not 1",
        ),
        (
            raw({"inputs": [TARGET | {"parameters": {"content_type": "np"}}]}),
            400,
            "input 'target' has parameter 'content_type'; inputs take binary_data_size",
        ),
        (
            raw({"inputs": [TARGET], "outputs": [{"name": "loss"}, {"name": "loss"}]}),
            400,
            "output 'loss' is asked for twice",
        ),
        (
            raw(
                {"inputs": [FP32_2x3 | {"parameters": {"binary_data_size": 24}}, TARGET]},
                np.array([0, 1, np.nan, 3, 4, 5], dtype="<f4").tobytes(),
            ),
            422,
            "input[0, 2] = nan is not finite (NaN or infinity)",
        ),
        (
            raw({"inputs": [FP32_2x3 | {"data": [1] * 6}, TARGET | {"datatype": "FP32"}]}),
            422,
            "target holds floats (such as 2.0); each class index must be an integer: in JSON"
            " without a fraction or an exponent, on /v2 and gRPC with an integer datatype (INT64,"
            " INT32, ...)",
        ),
        (
            raw({"inputs": [TARGET | {"name": "targets"}]}),
            422,
            "unknown input 'targets'; cross_entropy takes: input, target, weight",
        ),
        (
            raw({"inputs": [TARGET], "parameters": {"gamma": 2.0}}),
            422,
            "unknown parameter 'gamma'; cross_entropy takes: ignore_index, label_smoothing,"
            " dtype, device, reduction, grad",
        ),
        (
            raw({"inputs": [TARGET], "outputs": [{"name": "grad_target"}]}),
            422,
            "unknown output 'grad_target'; cross_entropy gives: loss, grad_input",
        ),
        (
            raw({"inputs": [TARGET], "outputs": [{"name": "grad_input"}]}),
            422,
            "output 'grad_input' is computed only with the parameter grad: true",
        ),
        (
            raw({"inputs": [FP32_2x3 | {"shape": [1] * 9, "data": [1]}]}),
            422,
            "input has more than 8 dimensions",
        ),
        (
            raw({"inputs": [FP32_2x3 | {"shape": [5000, 5000], "data": [1]}]}),
            413,
            "the tensors hold more than max_elements (16777216) elements",
        ),
    ],
)
def test_bad_requests(
    client: TestClient, request_: dict[str, Any], status: int, message: str
) -> None:
    assert error(client.post(INFER, **request_), status) == message


def test_the_target_kind_is_named_for_integer_only_tensors(client: TestClient) -> None:
    body = raw(
        {
            "inputs": [
                {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0, 1]},
                {"name": "target", "shape": [1], "datatype": "FP32", "data": [1]},
            ]
        }
    )
    assert error(client.post("/v2/models/nll_loss/infer", **body), 422) == (
        "target has datatype FP32, but its class indices are integers: send one of INT64,"
        " INT32, INT16, INT8, UINT8, BOOL"
    )


def test_json_is_taken_whatever_the_content_type(client: TestClient) -> None:
    """As Triton takes it: curl -d sends application/x-www-form-urlencoded, aiohttp bytes."""
    body = ce_request(binary=False)["content"]
    for media in (
        None,
        "application/json; charset=utf-8",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        "text/plain",
    ):
        headers = {"content-type": media} if media else {}
        response = client.post(INFER, content=body, headers=headers)
        assert response.status_code == 200, (media, response.text)
        assert response.json()["outputs"][0]["name"] == "loss"
    request = ce_request()
    request["headers"]["content-type"] = "text/plain"  # binary data is told by its header
    assert client.post(INFER, **request).status_code == 200


def test_the_body_limit_holds() -> None:
    from service.config import Settings

    with make_client(Settings(max_body_bytes=100)) as small:
        assert error(small.post(INFER, **ce_request()), 413) == (
            "the body exceeds max_body_bytes (100 bytes)"
        )


def test_unknown_models_versions_paths_and_methods(client: TestClient) -> None:
    known = ", ".join(MODELS)
    assert error(client.get("/v2/models/hinge"), 404) == f"unknown model 'hinge'; known: {known}"
    assert error(client.post("/v2/models/hinge/infer", json={}), 404) == (
        f"unknown model 'hinge'; known: {known}"
    )
    assert error(client.get("/v2/models/softmax/versions/2"), 404) == (
        "model 'softmax' has no version '2'; it has: 1"
    )
    assert error(client.get("/v2/nothing"), 404) == "no route for GET /v2/nothing"
    assert error(client.get(INFER), 405) == "GET is not allowed on this path"


def test_every_loss_is_a_v2_model() -> None:
    assert set(REGISTRY) <= set(MODELS)
