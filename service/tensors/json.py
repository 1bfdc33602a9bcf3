"""JSON tensors to numpy: rectangular, numeric, int vs float, within the size limits.

A tensor is a JSON number (0-d) or nested arrays of numbers, row-major and rectangular, at most
MAX_RANK deep. The fast path never makes a Python object per element: simdjson's tape is read
into a numpy buffer (`as_buffer`), after the arrays above the innermost level are checked for
type and length. One hole remains, an array where a number should be (`[[1, [2]], [3, 4]]`
flattens like `[[1, 2], [3, 4]]`), and it is closed by counting: the body holds exactly as many
`[` as its tensors' checked arrays unless something else is an array. Any failure re-reads the
tensor slowly to name the first bad index and the rule.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from math import prod
from typing import Any, Literal

import numpy as np
import orjson
import simdjson

from service.errors import BadRequest, Invalid, PayloadTooLarge
from service.types import Loc

MAX_RANK = 8
ElementKind = Literal["float", "int", "int or float"]


def parse_object(body: bytes) -> simdjson.Object:
    """The body as a simdjson object; 400 if it is not JSON, 422 if not an object."""
    try:
        document = simdjson.Parser().parse(body)
    except (ValueError, RuntimeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    if not isinstance(document, simdjson.Object):
        raise Invalid.at((), "the body must be a JSON object", "object_type")
    return document


def plain(value: Any) -> Any:
    """A simdjson value as plain Python (lists, dicts, numbers, strings, bools, None)."""
    if isinstance(value, simdjson.Array):
        return value.as_list()
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    return value


@dataclass(slots=True)
class TensorReader:
    """Reads the tensors of one request, counting elements and arrays against the body."""

    max_elements: int
    elements: int = 0
    arrays: int = 0

    def read(self, value: Any, name: str, kind: ElementKind) -> np.ndarray:
        """`value` as a numpy array: int64 for JSON integers (if `kind` allows), else float64."""
        shape = _shape(value)
        if len(shape) > MAX_RANK:
            raise Invalid.at((name,), f"{name} has more than {MAX_RANK} dimensions", "too_deep")
        self.elements += prod(shape)
        if self.elements > self.max_elements:
            raise PayloadTooLarge(
                f"the tensors hold more than max_elements ({self.max_elements}) elements"
            )
        if not shape:
            _check_number(plain(value), (name,), kind)
            integer = isinstance(value, int) and kind != "float"
            return np.array(value, dtype=np.int64 if integer else np.float64)
        try:
            self.arrays += _check_rows(value, shape)
            return _buffer(value, shape, kind)
        except (TypeError, ValueError):
            _raise_first_error(value.as_list(), shape, (name,), kind)
            raise Invalid.at(
                (name,), f"{name} is not a tensor of numbers", "not_a_tensor"
            ) from None

    def confirm(self, body: bytes, tensors: dict[str, Any], kinds: dict[str, ElementKind]) -> None:
        """Closes the fast path's one hole: an array in place of a number somewhere."""
        if body.count(b"[") == self.arrays:
            return
        for name, value in tensors.items():
            if isinstance(value, simdjson.Array):
                _raise_first_error(value.as_list(), _shape(value), (name,), kinds[name])
        # Every tensor checked out in full, so the extra brackets stand in strings elsewhere.


def _shape(value: Any) -> tuple[int, ...]:
    """Shape read down the first elements; _check_rows confirms it."""
    shape = []
    while isinstance(value, simdjson.Array):
        shape.append(len(value))
        if not shape[-1] or len(shape) > MAX_RANK:
            break
        value = value[0]
    return tuple(shape)


def _check_rows(value: simdjson.Array, shape: tuple[int, ...]) -> int:
    """Checks every array above the innermost level; returns how many arrays there are."""
    level = [value]
    count = 1
    for length in shape[1:]:
        children = [child for array in level for child in array]
        if not all(isinstance(c, simdjson.Array) and len(c) == length for c in children):
            raise ValueError("ragged")
        count += len(children)
        level = children
    return count


def _buffer(value: simdjson.Array, shape: tuple[int, ...], kind: ElementKind) -> np.ndarray:
    if kind != "float":
        try:
            return np.frombuffer(value.as_buffer(of_type="i"), dtype="<i8").reshape(shape)
        except TypeError:  # a float among the numbers; a ValueError (beyond int64) stays one
            if kind == "int":
                raise
    return np.frombuffer(value.as_buffer(of_type="d"), dtype="<f8").reshape(shape)


def _check_number(value: Any, loc: Loc, kind: ElementKind) -> None:
    where = _where(loc)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid.at(loc, f"{where} = {_show(value)} is not a number", "not_a_number")
    if kind == "int" and not isinstance(value, int):
        raise Invalid.at(loc, f"{where} = {value!r} is not an integer", "not_an_integer")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise Invalid.at(
            loc, f"{where} = {value} does not fit in a signed 64-bit integer", "out_of_range"
        )


def _raise_first_error(value: Any, shape: tuple[int, ...], loc: Loc, kind: ElementKind) -> None:
    """Raises on the first index (row-major) where `value` breaks a rule, if there is one."""
    for index, element in _walk(value, shape, loc):
        _check_number(element, index, kind)


def _walk(value: Any, shape: tuple[int, ...], loc: Loc) -> Iterator[tuple[Loc, Any]]:
    """Yields (loc, leaf) in row-major order, raising on the first array of the wrong length."""
    if not shape:
        yield loc, value
        return
    if not isinstance(value, list):
        raise Invalid.at(
            loc, f"{_where(loc)} is a number where an array of {shape[0]} is expected", "ragged"
        )
    if len(value) != shape[0]:
        raise Invalid.at(
            loc,
            f"{_where(loc)} has {len(value)} elements where {shape[0]} are expected"
            " (arrays must be rectangular)",
            "ragged",
        )
    for i, element in enumerate(value):
        yield from _walk(element, shape[1:], (*loc, i))


def _where(loc: Loc) -> str:
    """("target", 3, 1) -> "target[3, 1]"."""
    name, *index = loc
    return f"{name}[{', '.join(map(str, index))}]" if index else str(name)


def _show(value: Any) -> str:
    """A non-number as the client wrote it: true, null, "abc", an array, an object."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, list | dict):
        return "an array" if isinstance(value, list) else "an object"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def dumps(content: dict[str, Any]) -> bytes:
    """JSON bytes straight from numpy (no per-element Python objects); NaN and ±Inf become null.

    orjson writes numpy arrays natively but not 0-d ones, which become numpy scalars here.
    """
    return orjson.dumps(content, default=_scalar_of, option=orjson.OPT_SERIALIZE_NUMPY)


def _scalar_of(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
