"""Requests and answers without I/O: the wire formats (/v2 binary, /v1 JSON), the split of a
call that exceeds the server's limits along the batch, and the join of the parts' results.

A call becomes a Plan: the HTTP requests to send (independent of each other) and how to turn
their answers into the call's result. The sync and async clients only send.
"""

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from loss_service_client._errors import LossServiceError

T = TypeVar("T")
HEADER = "Inference-Header-Content-Length"
OVERHEAD = 4096
"""Bytes a request's JSON header (or field names) may take beyond its tensors' data."""
JSON_BYTES_PER_NUMBER = 26
"""What a float takes as JSON text at most (`-1.2345678901234567e-123, `): for the /v1 split."""
DATATYPES = {"float32": "FP32", "float64": "FP64"}
NUMPY = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "BOOL": "|b1"}


@dataclass(frozen=True)
class Server:
    """What the client learns from /v1/info and /v2 once."""

    max_body_bytes: int
    max_elements: int
    max_concurrency: int
    binary: bool
    """Whether /v2 takes binary tensor data."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    content: bytes


@dataclass(frozen=True)
class Plan(Generic[T]):
    """Requests to send (at most `concurrency` at a time), and the result of their answers."""

    requests: list[Request]
    finish: Callable[[list[Answer]], T]
    concurrency: int = 1


@dataclass(frozen=True)
class LossResult:
    """A loss, and the gradients asked for, as numpy arrays."""

    loss: np.ndarray
    """0-d for "mean", "sum" and "batchmean"; the batch's shape for "none"."""
    grad: dict[str, np.ndarray]
    """Per prediction tensor (grad=True), of its shape."""
    reduction: str
    dtype: str
    device: str
    divisor: float | None = None
    """For "mean" and "batchmean": what the sum was divided by, over the whole call."""
    warnings: list[str] = field(default_factory=list)


def problem_of(answer: Answer) -> dict[str, Any]:
    """The answer's problem document; /v2's {"error": message} becomes {"status", "detail"}."""
    try:
        body = json.loads(answer.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        return body
    if isinstance(body, dict) and "error" in body:
        return {"type": "about:blank", "status": answer.status, "detail": body["error"]}
    text = answer.content.decode(errors="replace")[:500]
    return {"type": "about:blank", "status": answer.status, "detail": text or "no detail"}


def check(answer: Answer) -> Answer:
    if answer.status != 200:
        raise LossServiceError(answer.status, problem_of(answer))
    return answer


def as_array(value: Any) -> np.ndarray:
    """numpy arrays as they are; torch tensors (never imported here) through .numpy(); nested
    lists and numbers through numpy."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


@dataclass(frozen=True)
class Call:
    """One computation: the function's route, tensors and scalar parameters."""

    kind: str
    """"loss", "activation" or "score"."""
    name: str
    tensors: dict[str, np.ndarray]
    parameters: dict[str, Any]
    batch: dict[str, int | None]
    """Each tensor's batch axis, from the catalogue; None where it has none."""
    split: bool = True
    """False where the function mixes samples (softmax over dim 0)."""

    @property
    def v1_path(self) -> str:
        prefix = {"loss": "/v1/losses/", "activation": "/v1/activations/", "score": "/v1/"}
        return prefix[self.kind] + self.name


def plan(call: Call, server: Server, dtype: str) -> tuple[list[Call], int]:
    """The call as parts that fit the server's limits, cut along the batch, and the batch's
    size (0 where it is not split)."""
    rows = _rows(call)
    wire = 4 if dtype == "float32" else 8
    per_element = wire if server.binary else JSON_BYTES_PER_NUMBER
    elements = sum(a.size for a in call.tensors.values())
    size = elements * per_element + OVERHEAD
    if (elements <= server.max_elements and size <= server.max_body_bytes) or rows <= 1:
        return [call], 0
    cut = {n for n, a in call.tensors.items() if _cut(a, call.batch.get(n), rows)}
    fixed = sum(a.size for n, a in call.tensors.items() if n not in cut)
    per_row = sum(call.tensors[n].size for n in cut) / rows
    by_elements = (server.max_elements - fixed) / per_row
    by_bytes = (server.max_body_bytes - OVERHEAD - fixed * per_element) / (per_row * per_element)
    step = max(1, math.floor(min(by_elements, by_bytes)))
    parts = []
    for start in range(0, rows, step):
        tensors = {
            n: _take(a, call.batch[n], start, start + step) if n in cut else a
            for n, a in call.tensors.items()
        }
        parts.append(Call(call.kind, call.name, tensors, call.parameters, call.batch, call.split))
    return parts, rows


def _rows(call: Call) -> int:
    """The batch's size: along the first tensor's batch axis (0: none, or not to split)."""
    name = next(iter(call.batch))
    axis, first = call.batch[name], call.tensors[name]
    if not call.split or axis is None or first.ndim <= axis:
        return 0
    return int(first.shape[axis])


def _cut(array: np.ndarray, axis: int | None, rows: int) -> bool:
    """Whether the tensor is cut with the batch, or sent whole with each part (it broadcasts:
    a weight per class, a 0-d variance, a size-1 batch)."""
    if axis is None or array.ndim <= axis or array.shape[axis] == 1:
        return False
    if array.shape[axis] != rows:
        raise ValueError(
            f"cannot split the call along its batch of {rows}: a tensor has shape {array.shape}"
        )
    return True


def _take(array: np.ndarray, axis: int | None, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * array.ndim
    index[axis or 0] = slice(start, stop)
    return array[tuple(index)]


def encode(call: Call, binary: bool, dtype: str) -> Request:
    """A part as a /v2 binary inference request, or as /v1 JSON."""
    if not binary:
        body = {n: a.tolist() for n, a in call.tensors.items()} | call.parameters
        content = json.dumps(body).encode()
        return Request("POST", call.v1_path, content, {"content-type": "application/json"})
    inputs, data = [], []
    for name, array in call.tensors.items():
        wire, datatype = _wire(array, dtype)
        inputs.append(
            {
                "name": name,
                "shape": list(wire.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": wire.nbytes},
            }
        )
        data.append(wire.tobytes())
    parameters = {k: ",".join(v) if isinstance(v, list) else v for k, v in call.parameters.items()}
    header = json.dumps(
        {"inputs": inputs, "parameters": parameters | {"binary_data_output": True}}
    ).encode()
    headers = {HEADER: str(len(header)), "content-type": "application/octet-stream"}
    return Request("POST", f"/v2/models/{call.name}/infer", b"".join([header, *data]), headers)


def _wire(array: np.ndarray, dtype: str) -> tuple[np.ndarray, str]:
    """Floats in the computation's dtype, integers as INT64, booleans as BOOL; little-endian."""
    if array.dtype.kind == "b":
        return np.ascontiguousarray(array), "BOOL"
    if array.dtype.kind in "iu":
        return np.ascontiguousarray(array, dtype="<i8"), "INT64"
    datatype = DATATYPES[dtype]
    return np.ascontiguousarray(array, dtype=NUMPY[datatype]), datatype


@dataclass(frozen=True)
class Part:
    """One answer's results by output name (/v2's names: loss, grad_input, output, scores)."""

    outputs: dict[str, np.ndarray]
    parameters: dict[str, Any]


def decode(answer: Answer, binary: bool, kind: str) -> Part:
    """A part's answer, from /v2 outputs or from a /v1 body."""
    check(answer)
    if binary:
        return _decode_v2(answer)
    body = json.loads(answer.content)
    if kind == "loss":
        outputs = {"loss": np.asarray(body["loss"], dtype=float)}
        outputs |= {
            f"grad_{n}": np.asarray(g, dtype=float) for n, g in body.get("grad", {}).items()
        }
    elif kind == "activation":
        outputs = {"output": np.asarray(body["output"], dtype=float)}
    else:
        outputs = {n: np.asarray(s, dtype=float) for n, s in body["scores"].items()}
        outputs["predicted"] = np.asarray(body["predicted"], dtype=np.int64)
    dtype = np.dtype(body["dtype"])
    outputs = {n: a if n == "predicted" else a.astype(dtype) for n, a in outputs.items()}
    parameters = {k: body[k] for k in ("device", "divisor", "warnings", "dtype") if k in body}
    return Part(outputs, parameters)


def _decode_v2(answer: Answer) -> Part:
    length = int(answer.headers.get(HEADER.lower(), len(answer.content)))
    header = json.loads(answer.content[:length])
    data = bytearray(answer.content[length:])  # writable arrays, one copy
    outputs, offset = {}, 0
    for output in header["outputs"]:
        dtype = np.dtype(NUMPY[output["datatype"]])
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            array = np.asarray(output["data"], dtype=dtype)
        else:
            array = np.frombuffer(data, dtype, size // dtype.itemsize, offset)
            offset += size
        outputs[output["name"]] = array.reshape(output["shape"])
    parameters = dict(header.get("parameters", {}))
    if "warnings" in parameters:
        parameters["warnings"] = parameters["warnings"].split("; ")
    return Part(outputs, parameters)


def join_loss(parts: Sequence[Part], call: Call, reduction: str, dtype: str) -> LossResult:
    """The parts' losses as one call's: concatenated ("none"), added ("sum"), or weighted by
    their divisors ("mean", "batchmean"); gradients concatenated along each batch axis, those
    of a mean scaled by divisor_i / sum(divisors)."""
    first = parts[0]
    device = str(first.parameters.get("device", "cpu"))
    warnings = [w for p in parts for w in p.parameters.get("warnings", [])]
    names = [n for n in first.outputs if n.startswith("grad_")]
    if len(parts) == 1:
        grad = {n.removeprefix("grad_"): first.outputs[n] for n in names}
        divisor = first.parameters.get("divisor")
        return LossResult(first.outputs["loss"], grad, reduction, dtype, device, divisor, warnings)
    losses = [p.outputs["loss"] for p in parts]
    scale = [1.0] * len(parts)
    divisor = None
    if reduction == "none":
        loss = np.concatenate(losses)
    elif reduction == "sum":
        loss = np.asarray(np.sum([x.astype(np.float64) for x in losses]), dtype=dtype)
    else:
        divisors = [float(p.parameters["divisor"]) for p in parts]
        divisor = sum(divisors)
        scale = [d / divisor for d in divisors]
        total = sum(x.astype(np.float64) * d for x, d in zip(losses, divisors, strict=True))
        loss = np.asarray(total / divisor, dtype=dtype)
    grad = {}
    for name in names:
        tensor = name.removeprefix("grad_")
        pieces = [p.outputs[name] * s for p, s in zip(parts, scale, strict=True)]
        grad[tensor] = np.concatenate(pieces, axis=call.batch[tensor] or 0).astype(dtype)
    return LossResult(loss, grad, reduction, dtype, device, divisor, warnings)


def join_outputs(parts: Sequence[Part]) -> dict[str, np.ndarray]:
    """Per-sample results (activations, scores), concatenated along the batch."""
    names = list(parts[0].outputs)
    return {n: np.concatenate([p.outputs[n] for p in parts]) for n in names}
