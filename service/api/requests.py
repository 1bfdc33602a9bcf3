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
from service.tensors.json import Budget, Piece, TensorReader, encode


def decode_body(spec: Spec, body: bytes | bytearray, max_elements: int) -> Request:
    """The body's fields as a Request (400 if it is not JSON, 422 if it is not a request)."""
    fields = parse_fields(body)
    try:
        return decode(spec, fields, Budget(max_elements))
    except ServiceError:  # perhaps before an array's syntax was checked: the body's 400 first
        check_syntax(body)
        raise


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


def encode_result(
    kind: Kind, spec: Spec, request: Request, result: Result
) -> bytes | Iterator[Piece]:
    """The body of a 200: the kind's response model."""
    return encode(view(kind).body(spec, result, request.options))
