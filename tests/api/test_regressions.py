"""Requests the fuzz tests (`make fuzz`) once answered with a 5xx, each pinned to its 4xx."""

import httpx2
import numpy as np
import orjson
import pytest
import torch
from fastapi.testclient import TestClient

from tests.conftest import problem


@pytest.mark.parametrize(
    ("name", "body", "detail"),
    [
        (
            "gaussian_nll_loss",
            {"input": 0.0, "target": 0.0, "var": 0.0, "eps": 3.402823466385289e38},
            "eps = 3.402823466385289e+38 is beyond float32's range; send dtype float64",
        ),
        (
            "huber_loss",
            {"input": [1.0], "target": [0.0], "delta": 1e39},
            "delta = 1e+39 is beyond float32's range; send dtype float64",
        ),
    ],
)
def test_a_float_parameter_beyond_the_dtype(
    client: TestClient, name: str, body: dict, detail: str
) -> None:
    found = problem(client.post(f"/v1/losses/{name}", json=body), 422)
    assert found["detail"] == detail
    assert found["errors"][0]["loc"] == ["body", list(body)[-1]]
    assert client.post(f"/v1/losses/{name}", json=body | {"dtype": "float64"}).status_code == 200


DEEP = b"[" * 100_000 + b"]" * 100_000
TOO_DEEP = "the body's arrays or objects are nested too deeply (a tensor has at most 8 dimensions)"
NESTED = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize(
    ("path", "content", "status", "detail"),
    [
        ("/v1/losses/mse_loss", NESTED, 422, TOO_DEEP),
        ("/v1/losses/mse_loss", DEEP, 422, TOO_DEEP),
        ("/v1/losses/mse_loss", b"[[1, 2]]", 422, "the body must be a JSON object"),
        (
            "/v1/losses/mse_loss",
            b'{"input": ' + NESTED + b', "target": [1]}',
            422,
            "the body's arrays or objects are nested too deeply (a tensor has at most 8"
            " dimensions)",
        ),
        (
            "/v1/losses/mse_loss",
            b'{"input": [1], "target": [1], "reduction": ' + DEEP + b"}",
            422,
            "the body's arrays or objects are nested too deeply (a tensor has at most 8"
            " dimensions)",
        ),
        (
            "/v1/batch",
            b'{"items": ' + NESTED + b"}",
            422,
            "the body's arrays or objects are nested too deeply (a tensor has at most 8"
            " dimensions)",
        ),
        (
            "/v1/losses/mse_loss",
            b'{"input": [1], "target": [1], "reduction": [' + b"1, " * 2000 + b"1]}",
            422,
            "reduction is 6003 bytes of JSON; a parameter takes at most 4096",
        ),
    ],
)
def test_deep_or_large_json_is_a_4xx(
    client: TestClient, path: str, content: bytes, status: int, detail: str
) -> None:
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert problem(response, status)["detail"] == detail


def test_deep_json_on_v2_is_a_400(client: TestClient) -> None:
    data = b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": '
    response = client.post("/v2/models/softmax/infer", content=data + NESTED + b"}]}")
    assert response.status_code == 400
    assert response.json() == {
        "error": "the inference request's arrays or objects are nested too deeply"
    }
    in_parameters = b'{"inputs": [], "parameters": {"dim": ' + NESTED + b"}}"
    response = client.post("/v2/models/softmax/infer", content=in_parameters)
    assert response.json() == {
        "error": "the inference request is not valid: Expected `bool | int | float | str`,"
        " got `array` - at `$.parameters[...]`"
    }


V2 = "/v2/models/cross_entropy/infer"
JSON_REQUEST = (
    b'{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[1,2]},'
    b'{"name":"target","shape":[1],"datatype":"INT64","data":[1]}]}'
)


def v2_error(response: httpx2.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    return message


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b"\xb2", "must be a number of bytes, not '"),
        ("\u0663".encode(), "must be a number of bytes, not '"),
        (b"9" * 5000, f"is {'9' * 40}... bytes, beyond the body's {len(JSON_REQUEST)}"),
        (b"-1", "must be a number of bytes, not '-1'"),
    ],
    ids=["superscript two", "arabic-indic three", "5000 digits", "negative"],
)
def test_the_header_length_header_is_a_plain_number(
    client: TestClient, value: bytes, detail: str
) -> None:
    """Python's isdigit() takes '²' (0xB2 in latin-1) and int() refuses it; int() refuses
    5,000 digits: both were a 500. (The test client re-encodes a byte beyond ASCII, so the
    message is checked up to the value there.)"""
    headers = {"Inference-Header-Content-Length": value}
    response = client.post(V2, content=JSON_REQUEST, headers=headers)
    message = v2_error(response, 400)
    if value.isascii():
        assert message == "Inference-Header-Content-Length " + detail
    else:
        assert message.startswith("Inference-Header-Content-Length " + detail)


def test_an_empty_tensor_with_a_huge_dimension_is_a_413(client: TestClient) -> None:
    """numpy refuses the shape even with no element in it (500)."""
    body = (
        b'{"inputs":[{"name":"input","shape":[0,4611686018427387904],"datatype":"FP32","data":[]},'
        b'{"name":"target","shape":[0],"datatype":"INT64","data":[]}]}'
    )
    assert v2_error(client.post(V2, content=body), 413) == (
        "input 'input' has shape [0, 4611686018427387904]; a dimension may be at most"
        " max_elements (16777216)"
    )


@pytest.mark.parametrize(
    ("data", "shape", "status", "detail"),
    [
        ("[[true],[true,false]]", [2], 422, "target[1] has 2 elements where 1 are expected"),
        ("[" * 70 + "true" + "]" * 70, [1], 422, "target has more than 8 dimensions"),
        ("[true, 1]", [2], 422, "target[1] = 1 is not true or false"),
        ('[true, "x"]', [2], 422, 'target[1] = "x" is not true or false'),
        ("[[true, false]]", [2], 200, None),
    ],
    ids=["ragged", "65 deep", "a number", "a string", "nested"],
)
def test_bool_json_data_is_rectangular_and_boolean(
    client: TestClient, data: str, shape: list[int], status: int, detail: str | None
) -> None:
    """np.array raised on ragged lists, and on lists deeper than 64 (500)."""
    body = (
        '{"inputs":[{"name":"input","shape":[2],"datatype":"FP32","data":[0.5,-1]},'
        f'{{"name":"target","shape":{shape},"datatype":"BOOL","data":{data}}}]}}'
    )
    response = client.post("/v2/models/binary_cross_entropy_with_logits/infer", content=body)
    if detail is None:
        assert response.status_code == 200, response.text
    else:
        assert v2_error(response, status).startswith(detail)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("shape", [[], [2]])
def test_bf16_is_read_as_values_from_json_and_as_bits_from_binary_data(
    client: TestClient, binary: bool, shape: list[int]
) -> None:
    """A 0-d BF16 tensor became a numpy scalar (500), and JSON BF16 values were taken for
    bits: 0.5 became 0."""
    values = np.array([0.5, -1.5][: max(1, len(shape) * 2)], dtype=np.float32).reshape(shape)
    expected = torch.nn.functional.mse_loss(
        torch.from_numpy(values).double(), torch.full(shape, 0.25, dtype=torch.float64)
    )
    inputs = []
    data = b""
    for name, array in (("input", values), ("target", np.full(shape, 0.25, np.float32))):
        entry: dict[str, object] = {"name": name, "shape": shape, "datatype": "BF16"}
        if binary:
            bits = (array.view(np.uint32) >> 16).astype("<u2")
            entry["parameters"] = {"binary_data_size": bits.nbytes}
            data += bits.tobytes()
        else:
            entry["data"] = array.reshape(-1).tolist()
        inputs.append(entry)
    header = orjson.dumps({"inputs": inputs, "parameters": {"dtype": "float64"}})
    headers = {"Inference-Header-Content-Length": str(len(header))} if binary else {}
    response = client.post("/v2/models/mse_loss/infer", content=header + data, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [expected.item()]


def test_a_zero_padded_header_length_is_its_number(client: TestClient) -> None:
    """'0136' was taken for more digits than the body's length has: 'beyond the body's 136'."""
    headers = {"Inference-Header-Content-Length": "000" + str(len(JSON_REQUEST))}
    response = client.post(V2, content=JSON_REQUEST, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("name", "datatype", "data", "detail"),
    [
        ("target", "INT8", [200], "target[0] = 200 is beyond INT8's range [-128, 127]"),
        ("target", "UINT8", [-1], "target[0] = -1 is beyond UINT8's range [0, 255]"),
        ("input", "FP16", [1.0, 70000.0], "input[1] = 70000.0 is beyond FP16's range"),
        ("input", "BF16", [1.0, -3.4e38], "input[1] = -3.4e+38 is beyond BF16's range"),
    ],
)
def test_json_data_beyond_its_datatype_is_refused(
    client: TestClient, name: str, datatype: str, data: list[float], detail: str
) -> None:
    """JSON data was taken whatever its datatype: INT8 200 as class 200, FP16 70000 as 70000,
    where binary data of the same datatype cannot hold them."""
    inputs = {
        "input": {"name": "input", "shape": [2], "datatype": "FP32", "data": [0.5, 0.5]},
        "target": {"name": "target", "shape": [2], "datatype": "FP32", "data": [0.0, 1.0]},
    }
    inputs[name] = {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}
    path = (
        "/v2/models/cross_entropy/infer"
        if datatype.startswith(("INT", "UINT"))
        else ("/v2/models/mse_loss/infer")
    )
    if path.endswith("cross_entropy/infer"):
        inputs["input"] = {
            "name": "input",
            "shape": [1, 300],
            "datatype": "FP32",
            "data": [0.0] * 300,
        }
    body = orjson.dumps({"inputs": list(inputs.values()), "parameters": {"dtype": "float64"}})
    found = v2_error(client.post(path, content=body), 422)
    assert found == detail


@pytest.mark.parametrize("datatype", ["FP16", "BF16"])
def test_half_precision_json_and_binary_data_give_the_same_loss(
    client: TestClient, datatype: str
) -> None:
    """FP16 1.1 in JSON was kept as 1.1, and in binary data it is 1.0996: the two differed."""
    values = np.array([1.1, -2.3, 0.7])
    if datatype == "FP16":
        bits = values.astype("<f2")
    else:
        bits = (values.astype(np.float32).view(np.uint32) + 0x8000 >> 16).astype("<u2")
    header_binary = {"name": "input", "shape": [3], "datatype": datatype}
    target = {"name": "target", "shape": [3], "datatype": "FP64", "data": [0.0, 0.0, 0.0]}
    answers = []
    for binary in (False, True):
        entry = dict(header_binary)
        if binary:
            entry["parameters"] = {"binary_data_size": bits.nbytes}
        else:
            entry["data"] = values.tolist()
        header = orjson.dumps({"inputs": [entry, target], "parameters": {"dtype": "float64"}})
        content = header + (bits.tobytes() if binary else b"")
        headers = {"Inference-Header-Content-Length": str(len(header))} if binary else {}
        response = client.post("/v2/models/mse_loss/infer", content=content, headers=headers)
        assert response.status_code == 200, response.text
        answers.append(response.json()["outputs"][0]["data"])
    assert answers[0] == answers[1]


def test_a_binary_bool_byte_other_than_0_or_1_is_named_by_its_value(client: TestClient) -> None:
    """It was shown as True: 'target[0] = True is not a BOOL, 0 or 1'."""
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [2], "datatype": "FP32", "data": [0.5, -1.0]},
                {
                    "name": "target",
                    "shape": [2],
                    "datatype": "BOOL",
                    "parameters": {"binary_data_size": 2},
                },
            ]
        }
    )
    response = client.post(
        "/v2/models/binary_cross_entropy_with_logits/infer",
        content=header + b"\x01\x02",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert v2_error(response, 422) == "target[1] = 2 is not a BOOL, 0 or 1"


def test_a_body_without_a_content_type_is_told_so(client: TestClient) -> None:
    response = client.post("/v1/losses/mse_loss", content=b'{"input": [1], "target": [1]}')
    assert problem(response, 415)["detail"] == (
        "Content-Type must be application/json; the request has none"
    )
