"""Requests and answers without I/O: the wire formats (/v2 binary, /v1 JSON), the split of a
call that exceeds the server's limits along the batch, and the join of the parts' results.

A call becomes a Plan: the HTTP requests to send (independent of each other) and how to turn
their answers into the call's result. The sync and async clients only send. A part the server
refuses for its estimated work (a 413 naming `work` and `max_work`) is cut again by their
ratio: each request carries how to cut it.
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
MARGIN = 512
"""Bytes kept free of a part's estimate: the header's numbers may print longer than thought."""
JSON_FLOAT = 26
"""What a float takes as JSON text at most (`-1.2345678901234567e-123, `): for the /v1 split."""
NUMPY = {
    "FP16": "<f2",
    "BF16": "<u2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "|u1",
    "BOOL": "|b1",
}
"""The Protocol's datatypes and their little-endian numpy dtypes (BF16: its bits)."""


@dataclass(frozen=True)
class Server:
    """What the client learns from /v1/info and /v2 once."""

    max_body_bytes: int
    max_elements: int
    max_concurrency: int
    binary: bool
    """Whether /v2 takes binary tensor data."""
    max_work: float | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cut: "Callable[[dict[str, Any]], list[Request]] | None" = None
    """The same part as smaller requests, given the problem of a refusal for its work."""


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
    classes: tuple[str, ...] | None = None
    """The class names the labels were given as (strings or categories), in index order."""


def problem_of(answer: Answer) -> dict[str, Any]:
    """The answer's problem document; /v2's {"error": message} becomes {"status", "detail"}
    (with the error's other members, such as a work refusal's `work` and `max_work`)."""
    try:
        body = json.loads(answer.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        return body
    if isinstance(body, dict) and "error" in body:  # /v2: its other members as they are
        members = {k: v for k, v in body.items() if k != "error"}
        return {"type": "about:blank", "status": answer.status, "detail": body["error"]} | members
    text = answer.content.decode(errors="replace")[:500]
    return {"type": "about:blank", "status": answer.status, "detail": text or "no detail"}


def check(answer: Answer) -> Answer:
    if answer.status != 200:
        raise LossServiceError(answer.status, problem_of(answer))
    return answer


@dataclass(frozen=True)
class Call:
    """One computation: the function's route, tensors and scalar parameters."""

    kind: str
    """"loss", "activation", "score" or "grade"."""
    name: str
    tensors: dict[str, np.ndarray]
    parameters: dict[str, Any]
    batch: dict[str, int | None]
    """Each tensor's batch axis, from the catalogue; None where it has none."""
    split: bool = True
    """False where the function mixes samples (softmax over dim 0)."""
    datatypes: dict[str, str] = field(default_factory=dict)
    """Tensors whose array is not what numpy says: BF16 bits."""

    def cut(self, tensors: dict[str, np.ndarray]) -> "Call":
        return Call(
            self.kind, self.name, tensors, self.parameters, self.batch, self.split, self.datatypes
        )

    @property
    def v1_path(self) -> str:
        prefix = {
            "loss": "/v1/losses/",
            "activation": "/v1/activations/",
            "score": "/v1/",
            "grade": "/v1/",
        }
        return prefix[self.kind] + self.name


def plan(call: Call, server: Server, dtype: str) -> tuple[list[Call], int]:
    """The call as parts that fit the server's limits, cut along the batch, and the batch's
    size (0 where it is not split). Each tensor counts at the bytes it is sent as (binary
    data, or JSON text), with the request's header."""
    rows = _rows(call)
    elements = sum(a.size for a in call.tensors.values())
    sizes = {n: _bytes_per_element(call, n, server.binary, dtype) for n in call.tensors}
    size = _head(call, server.binary, dtype) + sum(
        a.size * sizes[n] for n, a in call.tensors.items()
    )
    if (elements <= server.max_elements and size <= server.max_body_bytes) or rows <= 1:
        return [call], 0
    cut = {n for n, a in call.tensors.items() if _cut(a, call.batch.get(n), rows)}
    fixed_elements = sum(a.size for n, a in call.tensors.items() if n not in cut)
    fixed_bytes = _head(call, server.binary, dtype) + sum(
        a.size * sizes[n] for n, a in call.tensors.items() if n not in cut
    )
    row_elements = sum(call.tensors[n].size for n in cut) / rows
    row_bytes = sum(call.tensors[n].size * sizes[n] for n in cut) / rows
    by_elements = (server.max_elements - fixed_elements) / row_elements
    by_bytes = (server.max_body_bytes - fixed_bytes - MARGIN) / row_bytes
    return _parts(call, cut, rows, max(1, math.floor(min(by_elements, by_bytes)))), rows


def cut_again(call: Call, problem: dict[str, Any]) -> list[Call]:
    """A part the server refused for its work, in ceil(work / max_work) smaller ones (and a
    tenth more, as the estimate is not quite linear in the batch; the refusal's `fixed_work`,
    what does not shrink with the batch, left out of both); [] where it cannot be cut (a batch
    of one, a function that mixes its samples, or fixed work past the limit alone)."""
    rows = _rows(call)
    work, limit = problem.get("work"), problem.get("max_work")
    fixed = problem.get("fixed_work", 0.0)
    if rows <= 1 or not isinstance(work, int | float) or not isinstance(limit, int | float):
        return []
    if not isinstance(fixed, int | float) or fixed >= limit:
        return []  # what does not shrink with the batch is past the limit alone
    cut = {n for n, a in call.tensors.items() if _cut(a, call.batch.get(n), rows)}
    pieces = min(rows, math.ceil((work - fixed) / (limit - fixed) * 1.1))
    return _parts(call, cut, rows, max(1, math.ceil(rows / max(pieces, 2))))


def _parts(call: Call, cut: set[str], rows: int, step: int) -> list[Call]:
    return [
        call.cut(
            {
                n: _take(a, call.batch[n], start, start + step) if n in cut else a
                for n, a in call.tensors.items()
            }
        )
        for start in range(0, rows, step)
    ]


def _bytes_per_element(call: Call, name: str, binary: bool, dtype: str) -> float:
    """What one element of the tensor takes in the body: its datatype's size as binary data,
    or its text and comma as JSON (a float at most 26 bytes, an integer its widest)."""
    array = call.tensors[name]
    datatype = wire_datatype(array, dtype, call.datatypes.get(name))
    if binary:
        return float(np.dtype(NUMPY[datatype]).itemsize)
    if datatype.startswith(("FP", "BF")):
        return float(JSON_FLOAT)
    if datatype == "BOOL":
        return 7.0  # "false, "
    widest = max(abs(int(array.min())), int(array.max())) if array.size else 0
    return len(str(widest)) + 3.0  # a sign, ", "


def _head(call: Call, binary: bool, dtype: str) -> int:
    """The request's JSON header (or JSON's nesting and names), for the whole call: no part's
    is longer."""
    if binary:
        header, _ = _header(call, dtype)
        return len(header) + MARGIN
    brackets = sum(2 * a.size / max(a.shape[-1], 1) if a.ndim else 0 for a in call.tensors.values())
    names = sum(len(n) + 6 for n in call.tensors)
    return int(brackets) + names + len(json.dumps(call.parameters)) + MARGIN


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


def encode(call: Call, binary: bool, dtype: str, cut: bool = True) -> Request:
    """A part as a /v2 binary inference request, or as /v1 JSON; cut again (once) if refused
    for its work. A piece of a cut is not cut again: where the server's ratio did not make it
    fit, its cost does not shrink with the batch (a grade's (C, C) matrix), and the refusal is
    the answer."""

    def smaller(problem: dict[str, Any]) -> list[Request]:
        return [encode(part, binary, dtype, cut=False) for part in cut_again(call, problem)]

    if not binary:
        tensors = {n: _values(a, call.datatypes.get(n)).tolist() for n, a in call.tensors.items()}
        content = json.dumps(tensors | call.parameters).encode()
        headers = {"content-type": "application/json"}
        return Request("POST", call.v1_path, content, headers, smaller if cut else None)
    header, data = _header(call, dtype)
    headers = {HEADER: str(len(header)), "content-type": "application/octet-stream"}
    path = f"/v2/models/{call.name}/infer"
    return Request("POST", path, b"".join([header, *data]), headers, smaller if cut else None)


def _header(call: Call, dtype: str) -> tuple[bytes, list[memoryview]]:
    """The /v2 request's JSON header, and its tensors' binary data in order."""
    inputs, data = [], []
    for name, array in call.tensors.items():
        datatype = wire_datatype(array, dtype, call.datatypes.get(name))
        wire = np.ascontiguousarray(array, dtype=NUMPY[datatype])
        inputs.append(
            {
                "name": name,
                "shape": list(wire.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": wire.nbytes},
            }
        )
        data.append(wire.reshape(-1).data.cast("B"))
    parameters = {k: _parameter(v) for k, v in call.parameters.items()}
    content = {"inputs": inputs, "parameters": parameters | {"binary_data_output": True}}
    return json.dumps(content).encode(), data


def _parameter(value: Any) -> Any:
    """/v2 parameters are scalars: a list as its items with commas, an object as JSON text."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else value


def wire_datatype(array: np.ndarray, dtype: str, given: str | None = None) -> str:
    """The datatype a tensor goes out as: never wider than it is or than the computation.
    Floats at their own precision up to the computation's (FP16, BF16 and FP32 as they are,
    FP64 as FP32 for a float32 computation); integers at their own width where the Protocol
    has it (else INT32 or INT64); booleans as BOOL."""
    if given is not None:
        return given
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f":
        if size == 8 and (dtype == "float64" or not _fits_float32(array)):
            return "FP64"  # where float32 cannot hold it, the server says so
        return {2: "FP16"}.get(size, "FP32")
    if kind == "b":
        return "BOOL"
    if kind == "u":
        return {1: "UINT8", 2: "INT32"}.get(size, "INT64")
    if kind == "i":
        return {1: "INT8", 2: "INT16", 4: "INT32"}.get(size, "INT64")
    raise ValueError(f"a {array.dtype} tensor has no datatype")


def _fits_float32(array: np.ndarray) -> bool:
    with np.errstate(invalid="ignore"):
        return not array.size or bool(np.nanmax(np.abs(array), initial=0.0) <= FLOAT32_MAX)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _values(array: np.ndarray, datatype: str | None) -> np.ndarray:
    """What JSON writes: bfloat16's bits as the float32 values they are."""
    if datatype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


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
