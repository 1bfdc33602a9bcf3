"""A body read in one pass (read_whole) gives the request field-by-field decoding gives, or
leaves the body to it: never another request, never one that decoding refuses."""

import json
import os
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.requests import decode, decode_body, read_whole
from service.dataplane import Request
from service.errors import ServiceError
from service.kinds import KINDS
from service.tensors.fields import parse_fields
from service.tensors.json import Budget

SPECS = {name: spec for kind in KINDS for name, spec in kind.specs.items()}
NAMES = ["cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy", "softmax"]

NUMBERS = (
    st.integers(-3, 3)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64])
    | st.floats(-4, 4)
    | st.sampled_from([0.5, 2.0, -0.0, 1e-300, 3.4028235e38, 2.0**128 - 2.0**103, 1e39])
)
ODD_LEAVES = st.sampled_from([None, True, "1", "[", [], [1.5], {"a": 1}])
SCALARS = (
    st.sampled_from(["mean", "sum", "none", "float64", "float32", "cpu", "cuda", "[x]", "x" * 70])
    | st.booleans()
    | st.none()
    | NUMBERS
    | st.lists(st.integers(0, 2), max_size=3)
)


SOUND = {
    "reduction": ["mean", "sum", "none"],
    "dtype": ["float32", "float64"],
    "grad": [True, False],
    "device": [None, "cpu"],
    "label_smoothing": [0.0, 0.25],
    "ignore_index": [-100, 0, 1],
    "dim": [0, 1, -1],
}
"""Values each parameter takes, so that most generated requests are sound."""


@st.composite
def tensors(draw: st.DrawFn) -> Any:
    """Nested lists of numbers, sometimes ragged, sometimes with an odd leaf somewhere."""
    if draw(st.integers(0, 2)):  # mostly sound
        shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
        values = draw(st.lists(NUMBERS, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return np.array(values, dtype=object).reshape(shape).tolist()
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    values = draw(st.lists(NUMBERS, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    array: Any = np.array(values, dtype=object).reshape(shape).tolist() if shape else values[:1]
    if not shape:
        return values[0] if values else 0
    if draw(st.booleans()) and np.prod(shape):  # one leaf replaced: odd, or a number
        flat = draw(st.integers(0, int(np.prod(shape)) - 1))
        place = array
        index = np.unravel_index(flat, shape)
        for i in index[:-1]:
            place = place[i]
        place[index[-1]] = draw(ODD_LEAVES | NUMBERS)
    if draw(st.booleans()) and len(shape) > 1 and shape[0] > 1:  # a row cut short
        array[-1] = array[-1][:-1]
    return array


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(NAMES))
    spec = SPECS[name]
    content: dict[str, Any] = {}
    for field in spec.fields:
        if draw(st.integers(0, 3)) == 0:
            continue
        if field in spec.element_kinds:
            content[field] = draw(tensors())
        elif field in SOUND and draw(st.integers(0, 3)):
            content[field] = draw(st.sampled_from(SOUND[field]))
        else:
            content[field] = draw(SCALARS)
    if draw(st.integers(0, 9)) == 0:
        content["unknown"] = 1
    body = json.dumps(content, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    if content and draw(st.integers(0, 9)) == 0:  # a field written twice
        first = next(iter(content))
        body = body[:-1] + f', "{first}": 1' + "}"
    return name, body.encode()


BYTES = st.sampled_from(
    [b"", *(bytes([c]) for c in b' ,[]{}"\\0.e-\x00\x01\t'), b"\xef\xbb\xbf", b"\xff", b"nul"]
)


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[str, bytes]:
    """A generated body with a few bytes replaced, inserted or put in front: JSON that the
    two parsers might not agree is JSON."""
    name, body = draw(bodies())
    content = bytearray(body)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.just(0) | st.integers(0, len(content)))  # in front, often
        cut = draw(st.integers(0, 1))
        content[at : at + cut] = draw(BYTES)
    return name, bytes(content)


def decoded(name: str, body: bytes, max_elements: int) -> Request | ServiceError:
    try:
        return decode(SPECS[name], parse_fields(body), Budget(max_elements))
    except ServiceError as error:
        return error


def assert_same(found: Request, expected: Request) -> None:
    assert list(found.arrays) == list(expected.arrays)
    for field, array in expected.arrays.items():
        assert found.arrays[field].dtype == array.dtype
        np.testing.assert_array_equal(found.arrays[field], array)
    for model, other in ((found.params, expected.params), (found.options, expected.options)):
        assert model == other
        assert model.model_fields_set == other.model_fields_set


EXAMPLES = 20 * int(os.environ.get("FUZZ_EXAMPLES", "50"))
"""Most bodies are left to decode (any fault is); 1000 examples hold about 60 read in one pass."""


@settings(max_examples=EXAMPLES, deadline=None)
@given(bodies() | corrupted(), st.sampled_from([10**6, 4]))
def test_one_pass_gives_decoding_s_request_or_leaves_the_body(
    drawn: tuple[str, bytes], max_elements: int
) -> None:
    name, body = drawn
    found = read_whole(SPECS[name], body, max_elements)
    if found is None:
        return
    expected = decoded(name, body, max_elements)
    assert isinstance(expected, Request), expected
    assert_same(found, expected)


def logits_body(form: str, **extra: Any) -> bytes:
    rng = np.random.default_rng(0)
    content = {
        "input": rng.normal(size=(32, 10)).astype(np.float32),
        "target": rng.integers(0, 10, 32),
    }
    if form == "17 digits":
        plain = {k: v.tolist() for k, v in content.items()}
        return json.dumps(plain | extra).encode()
    return orjson.dumps(content | extra, option=orjson.OPT_SERIALIZE_NUMPY)


@pytest.mark.parametrize("form", ["17 digits", "float32"])
@pytest.mark.parametrize(
    "extra",
    [{}, {"grad": True, "reduction": "none"}, {"label_smoothing": 0.1, "ignore_index": -1}],
)
def test_a_plain_request_is_read_in_one_pass(form: str, extra: dict[str, Any]) -> None:
    body = logits_body(form, **extra)
    found = read_whole(SPECS["cross_entropy"], body, 10**6)
    assert found is not None
    expected = decoded("cross_entropy", body, 10**6)
    assert isinstance(expected, Request)
    assert_same(found, expected)


@pytest.mark.parametrize(
    "change",
    [
        b'"weight": [1, [2], 3], ',  # an array where a number should be
        b'"device": "[", ',  # a `[` in a string: counted, so the body goes to decode
        b'"label_smoothing": 0.1, "label_smoothing": 0.2, ',
        b'"unknown": 1, ',
        b"",  # with a byte-order mark in front, which simdjson skips and msgspec refuses
    ],
)
def test_what_one_pass_leaves_is_decoded_as_before(change: bytes) -> None:
    body = (
        b"{" + change + logits_body("float32")[1:]
        if change
        else b"\xef\xbb\xbf" + logits_body("float32")
    )
    assert read_whole(SPECS["cross_entropy"], body, 10**6) is None
    expected = decoded("cross_entropy", body, 10**6)
    try:
        found: Request | ServiceError = decode_body(SPECS["cross_entropy"], body, 10**6)
    except ServiceError as error:
        found = error
    if isinstance(expected, Request):
        assert isinstance(found, Request)
        assert_same(found, expected)
    else:
        assert isinstance(found, ServiceError)
        assert (found.status, found.detail) == (expected.status, expected.detail)


def test_a_long_number_is_a_number_in_either_reading() -> None:
    """A parameter's bytes are limited where they could cost memory: a string, a list, an
    object. A number written with 5000 digits is still one number, read or decoded."""
    long = b"0." + b"1" * 5000
    body = b'{"label_smoothing": ' + long + b", " + logits_body("float32")[1:]
    found = read_whole(SPECS["cross_entropy"], body, 10**6)
    expected = decoded("cross_entropy", body, 10**6)
    assert found is not None and isinstance(expected, Request)
    assert_same(found, expected)
    assert expected.params.label_smoothing == pytest.approx(1 / 9)


def test_a_list_parameter_is_decoded_field_by_field() -> None:
    """One pass cannot count a list's bytes, so a body that names label_quality's `scores`
    goes field by field (without a pass first); one that leaves it out takes the pass."""
    spec = SPECS["label_quality"]
    assert spec.lists == ("scores",)
    plain = logits_body("float32")
    listed = b'{"scores": ["self_confidence"], ' + plain[1:]
    assert read_whole(spec, listed, 10**6) is None
    found, expected = decode_body(spec, listed, 10**6), decoded("label_quality", listed, 10**6)
    assert isinstance(expected, Request)
    assert_same(found, expected)
    assert expected.params.scores == ["self_confidence"]
    assert read_whole(spec, plain, 10**6) is not None
