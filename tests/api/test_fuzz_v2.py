"""Hypothesis over /v2 inference requests: the JSON header (names, shapes, datatypes, nesting,
parameters, requested outputs), the binary layout (sizes, offsets, truncation) and the
Inference-Header-Content-Length header. The pass rule: no answer is a 5xx but the documented
501 and 503 (tests.conftest.no_server_errors), and every refusal is the protocol's error.

In `make test` it runs derandomized (the same examples on every run); `make fuzz` runs it
randomly, with more examples. Every 5xx it finds becomes a test in
tests/api/test_regressions.py.
"""

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from service.kinds import MODELS
from service.protocol.tensors import DATATYPES
from service.spec import Spec
from tests.conftest import make_client

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "75")) * 4
MODEL_NAMES = sorted(MODELS)
TENSOR_NAMES = sorted({t.name for _, spec in MODELS.values() for t in spec.tensors})
PARAMETER_NAMES = sorted({name for _, spec in MODELS.values() for name in spec.scalars})
DIMENSIONS = st.one_of(
    st.integers(0, 4),
    st.sampled_from([-1, 2**31, 2**62, 2**63 - 1, 16_777_217]),
)
LEAVES = st.one_of(
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.none(),
)
JSON_DATA = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4), max_leaves=24)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["mean", "none", "sum", "float64", "cpu", "cuda", "self_confidence", ""]),
)


FLOATS = ["FP32", "FP64", "FP16", "BF16"]
INTEGERS = ["INT64", "INT32", "INT16", "INT8", "UINT8", "BOOL"]


@st.composite
def coherent(draw: st.DrawFn, spec: Spec, rows: int, classes: int) -> list[dict[str, Any]]:
    """The model's tensors and some of its tensor parameters, of its usual ranks, over one
    batch of `rows` and `classes`, with values of their kinds: what a client sends."""
    optional = [p.name for p in spec.tensor_params]
    params = draw(st.lists(st.sampled_from(optional), unique=True)) if optional else []
    found = []
    for name, kind in spec.element_kinds.items():
        if name not in {t.name for t in spec.tensors} and name not in params:
            continue
        ranks = next((t.dims for t in spec.tensors if t.name == name), 1)
        shape = [rows, classes, 2][:ranks] if name not in params else [classes]
        if kind == "float":
            datatype = draw(st.sampled_from(FLOATS))
            values = draw(st.lists(st.floats(-5, 5, width=16), min_size=1, max_size=1))
            array = np.full(shape, values[0]) + np.arange(int(np.prod(shape))).reshape(shape)
        else:
            datatype = draw(st.sampled_from(INTEGERS))
            array = np.arange(int(np.prod(shape))).reshape(shape) % max(classes, 1)
        found.append({"name": name, "datatype": datatype, "array": array})
    return found


def encoded(tensor: dict[str, Any], binary: bool) -> tuple[dict[str, Any], bytes]:
    """A tensor as a $request_input and its binary data (b"" for JSON data)."""
    array, datatype = tensor["array"], tensor["datatype"]
    entry: dict[str, Any] = {"name": tensor["name"], "shape": list(array.shape)}
    entry["datatype"] = datatype
    if datatype == "BF16":
        wire = (array.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
    else:
        wire = array.astype(DATATYPES.get(datatype, np.dtype("<f4")))
    if not binary:
        entry["data"] = wire.astype(bool).tolist() if datatype == "BOOL" else array.tolist()
        return entry, b""
    entry["parameters"] = {"binary_data_size": wire.nbytes}
    return entry, wire.tobytes()


@st.composite
def bent(draw: st.DrawFn, entry: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    """The input, perhaps bent: another name, datatype, shape, size, data or parameter."""
    entry = dict(entry)
    change = draw(st.integers(0, 12))
    if change == 0:
        entry["name"] = draw(st.sampled_from([*TENSOR_NAMES, "", "unknown"]))
    elif change == 1:
        entry["datatype"] = draw(st.sampled_from([*DATATYPES, "FP8", "BYTES", "fp32"]))
    elif change == 2:
        entry["shape"] = draw(st.lists(DIMENSIONS, max_size=4) | st.lists(st.just(1), max_size=70))
    elif change == 3 and "parameters" in entry:
        size = entry["parameters"]["binary_data_size"]
        entry["parameters"] = {"binary_data_size": draw(st.integers(-1, 2 * size + 8) | SCALARS)}
    elif change == 4:
        entry["parameters"] = {**entry.get("parameters", {}), draw(st.text(max_size=4)): 1}
    elif change == 5:
        entry.pop("parameters", None)
        entry["data"] = draw(JSON_DATA)
        data = b""
    elif change == 6 and data:
        data = draw(st.binary(min_size=len(data), max_size=len(data)))  # any bits: NaN, inf
    return entry, data


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """A model's path, a body, and its headers: a coherent request, then bent."""
    model = draw(st.sampled_from([*MODEL_NAMES, "unknown"]))
    spec = MODELS[model if model in MODELS else "cross_entropy"][1]
    rows, classes = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    binary = draw(st.booleans())
    drawn = [draw(bent(*encoded(tensor, binary))) for tensor in draw(coherent(spec, rows, classes))]
    drawn = draw(st.permutations(drawn)) if draw(st.integers(0, 5)) == 0 else drawn
    header: dict[str, Any] = {"inputs": [entry for entry, _ in drawn]}
    if draw(st.booleans()):
        header["parameters"] = draw(
            st.dictionaries(
                st.sampled_from([*spec.scalars, "binary_data_output", "unknown"]),
                SCALARS,
                max_size=3,
            )
        )
    if draw(st.integers(0, 3)) == 0:
        header["outputs"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from([*spec.outputs(), "x"])},
                    optional={
                        "parameters": st.dictionaries(
                            st.sampled_from(["binary_data", "classification"]), SCALARS
                        )
                    },
                ),
                max_size=3,
            )
        )
    if draw(st.integers(0, 9)) == 0:
        header["id"] = draw(st.text(max_size=5) | st.integers())
    text = json.dumps(header).encode()  # orjson refuses integers beyond 64 bits
    data = b"".join(data for _, data in drawn)
    if draw(st.integers(0, 5)) == 0:
        cut = draw(st.integers(0, len(data)))
        data = draw(st.sampled_from([data[:cut], data + b"\0" * 3]))
    headers: dict[str, str] = {}
    if data or draw(st.integers(0, 5)) == 0:
        length = str(len(text))
        if draw(st.integers(0, 5)) == 0:
            length = draw(
                st.integers(-1, len(text) + len(data) + 2).map(str)
                | st.sampled_from(["", " 1", "0x10", "1e3", "9" * 30])
            )
        headers["Inference-Header-Content-Length"] = length
    return f"/v2/models/{model}/infer", text + data, headers


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with make_client() as client:
        yield client


@given(requests())
@settings(max_examples=EXAMPLES)
def test_generated_inference_requests(
    client: TestClient, request: tuple[str, bytes, dict[str, str]]
) -> None:
    path, body, headers = request
    response = client.post(path, content=body, headers=headers)
    if response.status_code != 200:
        assert list(response.json()) == ["error"], response.text
