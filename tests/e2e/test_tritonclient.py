"""End to end: tritonclient, sync and async, against `loss-service serve` on 127.0.0.1.

(Parity for every loss through tritonclient, binary and JSON, is in tests/losses.)
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from tritonclient.utils import InferenceServerException

from service import __version__


def address(server: str) -> str:
    return server.removeprefix("http://")


@contextmanager
def connected(server: str, **options: Any) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(address(server), **options)
    try:
        yield client
    finally:
        client.close()


def logits_and_targets(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rows)
    return rng.normal(size=(rows, classes)).astype(np.float32), rng.integers(0, classes, rows)


def ce_inputs(x: np.ndarray, target: np.ndarray, binary: bool = True) -> list[triton.InferInput]:
    inputs = [
        triton.InferInput("input", list(x.shape), "FP32"),
        triton.InferInput("target", list(target.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(x, binary_data=binary)
    inputs[1].set_data_from_numpy(target, binary_data=binary)
    return inputs


def torch_ce(x: np.ndarray, target: np.ndarray, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    tensor = torch.from_numpy(x).requires_grad_()
    loss = F.cross_entropy(tensor, torch.from_numpy(target), **kwargs)  # type: ignore[arg-type]
    loss.sum().backward()
    assert tensor.grad is not None
    return loss.detach().numpy(), tensor.grad.numpy()


def test_server_and_model_metadata(server: str) -> None:
    with connected(server) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("cross_entropy") and client.is_model_ready("softmax", "1")
        assert client.get_server_metadata() == {
            "name": "loss-service",
            "version": __version__,
            "extensions": ["binary_tensor_data"],
        }
        metadata = client.get_model_metadata("nll_loss", "1")
        assert [i["name"] for i in metadata["inputs"]] == ["input", "target", "weight"]
        with pytest.raises(InferenceServerException) as raised:
            client.get_model_metadata("hinge")
        assert raised.value.status() == "404"
        assert raised.value.message().startswith("unknown model 'hinge'; known: cross_entropy,")


@pytest.mark.parametrize(("rows", "binary"), [(4096, True), (1024, False)], ids=["binary", "json"])
def test_a_large_cross_entropy_with_gradient(server: str, rows: int, binary: bool) -> None:
    """4096 x 1000 float32 logits are a 16 MB binary body, and 78 MB as JSON text: beyond the
    body limit, so JSON goes at 1024 x 1000."""
    x, target = logits_and_targets(rows, 1000)
    with connected(server, network_timeout=300) as client:
        result = client.infer(
            "cross_entropy",
            ce_inputs(x, target, binary),
            outputs=[
                triton.InferRequestedOutput(o, binary_data=binary) for o in ("loss", "grad_input")
            ],
            parameters={"grad": True, "reduction": "none", "label_smoothing": 0.1},
        )
        loss, grad = torch_ce(x, target, reduction="none", label_smoothing=0.1)
        np.testing.assert_allclose(result.as_numpy("loss"), loss, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(result.as_numpy("grad_input"), grad, rtol=2e-5, atol=1e-7)


def test_without_outputs_every_output_is_binary(server: str) -> None:
    x, target = logits_and_targets(8, 5)
    with connected(server) as client:
        result = client.infer("cross_entropy", ce_inputs(x, target), parameters={"grad": True})
        response = result.get_response()
        assert [o["name"] for o in response["outputs"]] == ["loss", "grad_input"]
        assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
        loss, grad = torch_ce(x, target)
        assert result.as_numpy("loss") == loss
        np.testing.assert_array_equal(result.as_numpy("grad_input"), grad)


def test_a_bad_input_is_the_protocol_error_with_the_v1_words(server: str) -> None:
    x, _ = logits_and_targets(4, 3)
    with connected(server) as client:
        with pytest.raises(InferenceServerException) as raised:
            client.infer("cross_entropy", ce_inputs(x, np.array([0, 1, 7, 2])))
        assert raised.value.status() == "422"
        assert raised.value.message() == (
            "target[2] = 7 is not a class index in [0, 3) and is not ignore_index (-100)"
        )


def test_a_malformed_binary_body_is_a_400_not_a_500(server: str) -> None:
    header = b'{"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32",'
    header += b' "parameters": {"binary_data_size": 16}}]}'
    response = httpx2.post(
        f"{server}/v2/models/sigmoid/infer",
        content=header + b"\x00" * 10,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "the body holds 10 bytes of binary data after its JSON header, but the"
        " inputs' binary_data_size add up to 16"
    }


def test_the_async_client(server: str) -> None:
    x, target = logits_and_targets(64, 10)

    async def scenario() -> list[triton.InferResult]:
        client = triton_aio.InferenceServerClient(address(server))
        try:
            assert await client.is_server_ready()
            calls = [
                client.infer(
                    "cross_entropy", ce_inputs(x, target, binary), parameters={"grad": True}
                )
                for binary in (True, False)
            ]
            return list(await asyncio.gather(*calls))
        finally:
            await client.close()

    loss, grad = torch_ce(x, target)
    for result in asyncio.run(scenario()):
        np.testing.assert_allclose(result.as_numpy("loss"), loss, rtol=1e-6)
        np.testing.assert_allclose(result.as_numpy("grad_input"), grad, rtol=1e-5, atol=1e-8)


def test_a_key_through_headers_and_gzip_request_bodies() -> None:
    from tests.e2e.conftest import serving

    x, target = logits_and_targets(16, 5)
    loss, _ = torch_ce(x, target)
    with serving(api_keys="k1") as url, connected(url) as client:
        assert client.is_server_live()  # health needs no key
        with pytest.raises(InferenceServerException) as raised:
            client.infer("cross_entropy", ce_inputs(x, target))
        assert raised.value.status() == "401"
        assert raised.value.message() == "an API key is required: send Authorization: Bearer KEY"
        for compression in (None, "gzip", "deflate"):
            result = client.infer(
                "cross_entropy",
                ce_inputs(x, target),
                headers={"Authorization": "Bearer k1"},
                request_compression_algorithm=compression,
            )
            np.testing.assert_allclose(result.as_numpy("loss"), loss, rtol=1e-6)


def test_an_activation_and_label_quality_through_tritonclient(server: str) -> None:
    from cleanlab.rank import get_label_quality_scores

    x, target = logits_and_targets(32, 6)
    softmax = triton.InferInput("input", list(x.shape), "FP32")
    softmax.set_data_from_numpy(x)
    with connected(server) as client:
        probabilities = client.infer("softmax", [softmax], parameters={"dim": 1}).as_numpy("output")
        scores = client.infer(
            "label_quality",
            ce_inputs(x, target),
            parameters={"dtype": "float64", "scores": "self_confidence,normalized_margin"},
        )
    np.testing.assert_allclose(probabilities, torch.softmax(torch.from_numpy(x), 1), rtol=1e-6)
    reference = torch.softmax(torch.from_numpy(x.astype(np.float64)), 1).numpy()
    for method in ("self_confidence", "normalized_margin"):
        expected = get_label_quality_scores(target, reference, method=method)
        np.testing.assert_allclose(scores.as_numpy(method), expected, atol=1e-6)
    np.testing.assert_array_equal(scores.as_numpy("predicted"), x.argmax(1))
