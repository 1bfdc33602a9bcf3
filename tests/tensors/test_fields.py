"""A body's fields found without parsing its tensors: the same spans msgspec finds, or a refusal.

The scanner cuts arrays of numbers out of the body by looking for `"` and `,`; strings and
nested objects that look like such arrays are what could fool it, so the generated bodies are
full of them.
"""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import BadRequest, Invalid
from service.tensors.fields import SMALL_BODY, Span, parse_fields

TRICKY = st.sampled_from(['", "a": [1], "', ": [", "],", "]}", "\\", '\\"', "{", " ", "\n", "x"])
KEYS = st.text(alphabet=st.sampled_from('ab:[],"\\ {}'), max_size=6)
NUMBERS = st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)
LEAVES = NUMBERS | st.booleans() | st.none() | st.lists(TRICKY, max_size=3).map("".join)
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3)
)
SEPARATORS = st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " :\t ")])


PAD = b" " * SMALL_BODY
"""Leading whitespace that takes a body past SMALL_BODY, which msgspec reads whole."""


def spans(fields: dict[str, Span]) -> dict[str, bytes]:
    return {name: bytes(raw) for name, raw in fields.items()}


def msgspec_fields(body: bytes) -> dict[str, bytes]:
    return spans(msgspec.json.decode(body, type=dict[str, msgspec.Raw]))


@given(st.dictionaries(KEYS, VALUES, max_size=5), SEPARATORS)
def test_finds_the_spans_msgspec_finds(content: dict[str, Any], separators: Any) -> None:
    body = PAD + json.dumps(content, separators=separators).encode()
    assert spans(parse_fields(body)) == msgspec_fields(body)


@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=4), SEPARATORS, st.data())
def test_a_body_that_is_not_json_is_refused_or_leaves_a_span_that_is_not(
    content: dict[str, Any], separators: Any, data: st.DataObject
) -> None:
    """What the scanner hands over as a tensor is parsed later; if the body is broken there,
    reading that span refuses it. Whatever else is broken, the scanner refuses itself."""
    body = bytearray(PAD + json.dumps(content, separators=separators).encode())
    at = data.draw(st.integers(len(PAD), len(body) - 1))
    body[at : at + 1] = data.draw(st.sampled_from([b"", b",", b"]", b"[", b'"', b"}", b"x"]))
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        pass
    else:
        return  # the change left it JSON
    try:
        fields = parse_fields(body)
    except (BadRequest, Invalid):
        return
    broken = []
    for raw in fields.values():
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError:
            broken.append(raw)
    assert broken


@pytest.mark.parametrize(
    "body",
    [
        b'{"input": [[1, 2]], "target": [1]}',
        b'{"input":[[1,2]],"target":[1]}',
        b'{ "input" : [ [1, 2] ] ,\n "target" : [1] }',
        b'{"note": "a: [1], ", "input": [[1, 2]]}',
        b'{"note": "\\": [1], \\"", "input": [[1, 2]]}',
        b'{"input": [[1, 2]], "input": [[3, 4]]}',
        b'{"o": {"x": [1], "y": 2}, "input": [[1, 2]]}',
        b'{"l": [{"x": [1]}], "input": [1]}',
        b'{"input": [[1, 2]]' + b" " * 100 + b', "target": [1]}',
        b'{"input": []}',
    ],
)
def test_agrees_with_msgspec_on_bodies_that_look_like_tensors(body: bytes) -> None:
    assert spans(parse_fields(PAD + body)) == msgspec_fields(PAD + body)


def test_hands_over_a_tensor_as_a_view_of_the_body() -> None:
    body = bytearray(PAD + b'{"input": [[1, 2]], "reduction": "sum"}')
    fields = parse_fields(body)
    assert isinstance(fields["input"], memoryview)
    assert fields["input"].obj is body


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"input": [[1, 2]], "target": [1]', BadRequest),
        (b'{"input": [[1, 2]] x, "target": [1]}', BadRequest),
        (b"[1, 2]", Invalid),
        (b"", BadRequest),
    ],
)
def test_refuses_what_is_not_a_json_object(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_fields(body)
    with pytest.raises(error):
        parse_fields(PAD + body)
