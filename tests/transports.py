"""One loss computation through each way in: /v1 JSON, and /v2 through tritonclient with
binary or JSON tensors. Each answers with the fields a /v1 body has, read off its own wire."""

import asyncio
from typing import Any, Protocol

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_grpc_aio
import tritonclient.http as triton
from fastapi.testclient import TestClient

from service.losses import REGISTRY

DTYPES = {"FP32": "float32", "FP64": "float64"}


class Transport(Protocol):
    def compute(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        params: dict[str, Any],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """The loss `name` of the tensors: {"loss", "shape", "dtype", "device"[, "grad"]
        [, "reduction"][, "warnings"]}, numbers as numpy arrays or nested lists."""
        ...


class V1:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def compute(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        params: dict[str, Any],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        body = {k: v.tolist() for k, v in tensors.items()} | params | options
        response = self.client.post(f"/v1/losses/{name}", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def inputs(tensors: dict[str, np.ndarray], dtype: str, binary: bool) -> list[triton.InferInput]:
    """Float tensors in the computation's dtype, integers as INT64."""
    found = []
    for name, value in tensors.items():
        array = typed(np.asarray(value), dtype)
        datatype = "INT64" if array.dtype == np.int64 else dtype.replace("float", "FP")
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        found.append(tensor)
    return found


def outputs_of(name: str, options: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The tensors whose gradients a request asks for, and the outputs it wants."""
    grads = [t.name for t in REGISTRY[name].tensors if t.grad] if options["grad"] else []
    return grads, ["loss", *(f"grad_{g}" for g in grads)]


def as_v1(result: Any, grads: list[str], response: dict[str, Any]) -> dict[str, Any]:
    """An inference result, and its response as JSON with plain parameters, as the fields of a
    /v1 body."""
    (loss,) = [o for o in response["outputs"] if o["name"] == "loss"]
    body: dict[str, Any] = {
        "loss": result.as_numpy("loss"),
        "shape": [int(d) for d in loss.get("shape", [])],
        "dtype": DTYPES[loss["datatype"]],
        "device": response["parameters"]["device"],
    }
    if grads:
        body["grad"] = {name: result.as_numpy(f"grad_{name}") for name in grads}
    if "divisor" in response["parameters"]:
        body["divisor"] = response["parameters"]["divisor"]
    if "warnings" in response["parameters"]:
        body["warnings"] = response["parameters"]["warnings"]
    return body


class Triton:
    def __init__(self, url: str, binary: bool) -> None:
        self.client = triton.InferenceServerClient(url.removeprefix("http://"))
        self.binary = binary

    def compute(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        params: dict[str, Any],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        grads, wanted = outputs_of(name, options)
        result = self.client.infer(
            name,
            inputs(tensors, options["dtype"], self.binary),
            outputs=[triton.InferRequestedOutput(o, binary_data=self.binary) for o in wanted],
            parameters=params | options,
        )
        return as_v1(result, grads, result.get_response())


class TritonGrpc:
    """/v2 over gRPC through tritonclient.grpc, sync or aio: raw tensors in and out."""

    def __init__(self, address: str, aio: bool = False) -> None:
        self.address, self.aio = address, aio

    def compute(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        params: dict[str, Any],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        grads, wanted = outputs_of(name, options)
        given = []
        for tensor_name, value in tensors.items():
            array = typed(np.asarray(value), options["dtype"])
            found = triton_grpc.InferInput(tensor_name, list(array.shape), DATATYPE[array.dtype])
            found.set_data_from_numpy(array)
            given.append(found)
        outputs = [triton_grpc.InferRequestedOutput(o) for o in wanted]
        if self.aio:

            async def infer() -> Any:
                async with triton_grpc_aio.InferenceServerClient(self.address) as client:
                    return await client.infer(
                        name, given, outputs=outputs, parameters=params | options
                    )

            result = asyncio.run(infer())
        else:
            with triton_grpc.InferenceServerClient(self.address) as client:
                result = client.infer(name, given, outputs=outputs, parameters=params | options)
        response = result.get_response(as_json=True)
        parameters = response["parameters"]  # each {"string_param": ...}: the value alone
        response["parameters"] = {k: next(iter(v.values())) for k, v in parameters.items()}
        return as_v1(result, grads, response)


DATATYPE = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64", np.dtype(np.int64): "INT64"}


def typed(value: np.ndarray, dtype: str) -> np.ndarray:
    """Floats in the computation's dtype, integers as int64."""
    return value.astype(dtype) if value.dtype.kind == "f" else value.astype(np.int64)
