"""A v1 request from its JSON fields (scalars through pydantic, tensors straight to numpy), and
a result back to its JSON body. Shared by every JSON endpoint, so that each validates alike."""

from collections.abc import Iterator
from typing import Any

import numpy as np

from service.api.views import view
from service.dataplane import Request
from service.engine import Result
from service.errors import Invalid, ServiceError
from service.kinds import Kind
from service.spec import Spec
from service.tensors.fields import Fields, Span, check_syntax, parse_fields, plain
from service.tensors.json import (
    CHUNK_BYTES,
    Budget,
    Piece,
    TensorReader,
    brackets,
    encode,
    parsed_whole,
)


def decode_body(spec: Spec, body: bytes | bytearray, max_elements: int) -> Request:
    """The body's fields as a Request (400 if it is not JSON, 422 if it is not a request).

    A body of one chunk or less is first read in one pass (read_whole); what that pass leaves
    is read field by field, which names every fault as it does for any body. A body that
    names a list parameter goes field by field at once: the pass would leave it anyway, and
    its parse would be done twice.
    """
    lists = (b'"%s"' % name.encode() for name in spec.lists)
    whole = len(body) <= CHUNK_BYTES and not any(name in body for name in lists)
    if whole and (request := read_whole(spec, body, max_elements)):
        return request
    fields = parse_fields(body)
    try:
        return decode(spec, fields, Budget(max_elements))
    except ServiceError:  # perhaps before an array's syntax was checked: the body's 400 first
        check_syntax(body)
        raise


def read_whole(spec: Spec, body: bytes | bytearray, max_elements: int) -> Request | None:
    """The request from one simdjson pass over the whole body, where it is plainly sound;
    None for anything else, which decode then reads and names.

    The tensors come straight from the document, not parsed again after their ends were
    searched for, and the parameters as simdjson gives them (a 32x10 body: 75 -> 63 us, a
    256x100 one: 1013 -> 971 us). Left to decode: a fault of any kind, an unknown or
    repeated field, a list, an object or a long string among the parameters (decode counts
    their bytes), and what TensorReader.parsed leaves. The `[` of the whole body must be
    those of the tensors' rows: more means an array where a number should be, or a `[` in a
    string.
    """
    with parsed_whole(body) as document:
        if document is None:
            return None
        names = list(document.keys())
        if len(set(names)) < len(names) or not spec.field_set.issuperset(names):
            return None
        kinds = spec.element_kinds
        scalars = {name: document[name] for name in names if name not in kinds}
        if not all(map(_plain, scalars.values())):
            return None
        try:
            params, options = spec.parse_options(scalars)
        except ServiceError:
            return None
        reader = TensorReader(Budget(max_elements), np.dtype(options.dtype))
        arrays, counted = {}, 0
        for name in (name for name in names if name in kinds):
            value = document[name]
            if value is None and name not in spec.required:
                continue
            if (read := reader.parsed(value, name, kinds[name])) is None:
                return None
            arrays[name], rows = read
            counted += rows
    return Request(arrays, params, options) if brackets(body) == counted else None


SHORT_STRING = 64
"""A string of up to this many characters is within MAX_SCALAR_BYTES however it is escaped."""


def _plain(value: Any) -> bool:
    """A parameter read_whole takes as simdjson gives it: a number, a boolean, null, a short
    string."""
    return (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= SHORT_STRING)
    )


def decode(spec: Spec, fields: Fields, budget: Budget) -> Request:
    """Checks the field names, then the scalars (cheap), then reads the tensors."""
    for name in fields:
        if name not in spec.fields:
            raise Invalid.at(
                (name,),
                f"unknown field '{name}'; {spec.name} takes: {', '.join(spec.fields)}",
                "extra_forbidden",
            )
    kinds = spec.element_kinds
    scalars = {name: _scalar(name, raw) for name, raw in fields.items() if name not in kinds}
    params, options = spec.parse_options(scalars)
    reader = TensorReader(budget, np.dtype(options.dtype))
    arrays = {
        name: reader.read(raw, name, kinds[name])
        for name, raw in fields.items()
        if name in spec.required or (name in kinds and not _is_null(raw))
    }
    return Request(arrays, params, options)


MAX_SCALAR_BYTES = 4096
"""A parameter is a number, a string, a boolean or a short list (label_quality's scores)."""
_NUMBER_STARTS = b"-0123456789"


def _scalar(name: str, raw: Span) -> Any:
    """The field's value, after checking that it is small: a parameter never costs memory. A
    number is one number however long it is written (msgspec reads it in linear time)."""
    if len(raw) > MAX_SCALAR_BYTES and memoryview(raw)[0] not in _NUMBER_STARTS:
        raise Invalid.at(
            (name,),
            f"{name} is {len(raw)} bytes of JSON; a parameter takes at most {MAX_SCALAR_BYTES}",
            "too_large",
        )
    return plain(raw)


def _is_null(raw: Span) -> bool:
    """A tensor parameter given as null, meaning its default (none)."""
    return len(raw) == 4 and bytes(raw) == b"null"


def encode_result(kind: Kind, request: Request, result: Result) -> bytes | Iterator[Piece]:
    """The body of a 200: the kind's response model."""
    return encode(view(kind).body(result, request.options))
