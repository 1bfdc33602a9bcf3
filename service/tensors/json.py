"""JSON tensors to numpy: rectangular, numeric, int vs float, within the size limits.

A tensor is a JSON number (0-d) or nested arrays of numbers, row-major and rectangular, at most
MAX_RANK deep, handed over as a raw span of the body (service.tensors.fields). The span is cut
into chunks of whole rows; simdjson parses one chunk at a time and its tape goes straight into
a numpy buffer (`as_buffer`), so memory stays near one copy of the numbers, not the several
of a parsed DOM. Each chunk's arrays above the innermost level are checked for type and length;
an array where a number should be (`[[1, [2]], [3, 4]]` flattens like `[[1, 2], [3, 4]]`) is
caught by counting the chunk's `[` against its checked arrays. Any failure re-reads the tensor
slowly, as Python lists, to name the first bad index and the rule.
"""

import re
import threading
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
import orjson
import simdjson

from service.errors import BadRequest, Invalid, PayloadTooLarge
from service.tensors.fields import Span, plain
from service.tensors.torch import beyond_float32
from service.types import MAX_RANK, ElementKind, Loc

CHUNK_BYTES = 1 << 20
Chunk = bytes | memoryview
"""Whole rows of a tensor as one JSON array: its span itself, or a copy with brackets added."""
Piece = bytes | memoryview
"""A part of a response body: written bytes, or a view of them."""

_FLOAT_MARKS = tuple(re.compile(re.escape(mark)) for mark in (b".", b"e", b"E"))
"""A fraction or an exponent: a literal is searched 12 times faster than a class ([.eE])."""
_OPENING = re.compile(rb"\s*((?:\[\s*)*)")


@dataclass(slots=True)
class Budget:
    """The elements of one request's tensors (of all a batch's items), against max_elements."""

    max_elements: int
    elements: int = 0

    def count(self, elements: int) -> None:
        self.elements += elements
        if self.elements > self.max_elements:
            raise PayloadTooLarge(
                f"the tensors hold more than max_elements ({self.max_elements}) elements"
            )


@dataclass(slots=True)
class TensorReader:
    """Reads the tensors of one request, counting their elements against its budget."""

    budget: Budget
    float_dtype: np.dtype[Any]
    """What float tensors become: the computation's dtype, so no float64 copy is kept."""

    def read(self, raw: Span, name: str, kind: ElementKind) -> np.ndarray:
        """A tensor as int64 (JSON integers, where `kind` allows them) or float_dtype."""
        span = memoryview(raw)
        rank = _leading_brackets(span)
        if rank > MAX_RANK:
            raise Invalid.at((name,), f"{name} has more than {MAX_RANK} dimensions", "too_deep")
        integer = kind != "float" and not any(mark.search(span) for mark in _FLOAT_MARKS)
        dtype = np.dtype(np.int64) if integer else self.float_dtype
        if rank == 0 or (kind == "int" and not integer):
            # a number, or the first non-integer named
            return _cast(self._slowly(span, name, kind, integer), dtype, name, 0)
        counted = self.budget.elements
        try:
            return self._quickly(span, rank, name, kind, dtype)
        except _Recut:  # a malformed tensor cut where no row ends: read it whole, slowly
            self.budget.elements = counted
            return _cast(self._slowly(span, name, kind, integer), dtype, name, 0)

    def read_bools(self, raw: Span, name: str) -> np.ndarray:
        """A tensor of JSON booleans (the Protocol's BOOL), flat: rectangular, at most
        MAX_RANK deep, every element true or false."""
        value = plain(raw)
        shape = _shape(value)
        if len(shape) > MAX_RANK:
            raise Invalid.at((name,), f"{name} has more than {MAX_RANK} dimensions", "too_deep")
        self.budget.count(prod(shape))
        for index, element in _walk(value, shape, (name,)):
            if not isinstance(element, bool):
                raise Invalid.at(
                    index, f"{_where(index)} = {_show(element)} is not true or false", "not_a_bool"
                )
        return np.array(value, dtype=np.bool_).reshape(-1)

    def _quickly(
        self, span: memoryview, rank: int, name: str, kind: ElementKind, dtype: np.dtype[Any]
    ) -> np.ndarray:
        """Chunk by chunk through simdjson, which raises when anything is off; a chunk it
        refuses is read slowly, alone, so that finding a bad index costs one chunk."""
        parser = _parser()
        if len(span) <= CHUNK_BYTES:
            return self._rows(parser, span, span, rank, name, kind, dtype, 0, None)
        parts, rows, inner = [], 0, None
        with closing(_row_chunks(span, rank)) as chunks:  # the body restored, come what may
            for chunk in chunks:
                values = self._rows(parser, chunk, span, rank, name, kind, dtype, rows, inner)
                inner = values.shape[1:]
                parts.append(values)
                rows += values.shape[0]
        return np.concatenate(parts)

    def _rows(
        self,
        parser: simdjson.Parser,
        chunk: Chunk,
        span: memoryview,
        rank: int,
        name: str,
        kind: ElementKind,
        dtype: np.dtype[Any],
        rows: int,
        inner: tuple[int, ...] | None,
    ) -> np.ndarray:
        """One chunk's rows (the first `rows` read already) in dtype.

        A chunk simdjson refuses is read slowly, its indices offset by the rows before it,
        once its error is gone: an error raised while it is handled would keep it as context,
        and through its traceback the document, which holds this thread's parser for as long
        as anyone keeps the error.
        """
        try:
            values: np.ndarray | None = self._chunk(parser, chunk, rank, inner, dtype)
        except (TypeError, ValueError, RuntimeError):  # simdjson's: type, range, syntax
            values = None
        if values is None:
            try:
                values = self._slowly(memoryview(chunk), name, kind, dtype.kind == "i", rows, inner)
            except BadRequest:
                if len(chunk) < len(span):  # cut where no row ends: it is not JSON by itself
                    raise _Recut from None
                raise
        return _cast(values, dtype, name, rows)

    def _chunk(
        self,
        parser: simdjson.Parser,
        chunk: Chunk,
        rank: int,
        inner: tuple[int, ...] | None,
        dtype: np.dtype[Any],
    ) -> np.ndarray:
        document = parser.parse(chunk)
        if not isinstance(document, simdjson.Array):
            raise ValueError("not an array")
        shape = _shape(document)
        if len(shape) != rank or (inner is not None and shape[1:] != inner):
            raise ValueError("ragged")
        if _check_rows(document, shape) != brackets(chunk):
            raise ValueError("an array where a number should be")
        values = _numbers(document, dtype.kind == "i")
        del document  # the parser takes no new chunk while a document refers to it
        self.budget.count(prod(shape))
        return values.reshape(shape)

    def _slowly(
        self,
        span: memoryview,
        name: str,
        kind: ElementKind,
        integer: bool,
        offset: int = 0,
        inner: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """As Python lists: raises on the first bad index (counted from `offset` rows, each
        row of shape `inner` where the rows before had it), or reads what the fast path could
        not (an integer beyond 64 bits in a float tensor, say): int64 or float64."""
        value = plain(span)
        shape = _shape(value)
        if len(shape) > MAX_RANK:
            raise Invalid.at((name,), f"{name} has more than {MAX_RANK} dimensions", "too_deep")
        if inner is not None and shape:
            shape = (shape[0], *inner)
        self.budget.count(prod(shape))
        for index, element in _walk(value, shape, (name,), offset):
            _check_number(element, index, kind)
        return np.array(value, dtype=np.int64 if integer else np.float64)


class _Recut(Exception):
    """A chunk that is not JSON by itself: the tensor is read whole instead."""


_local = threading.local()


def _parser() -> simdjson.Parser:
    """This thread's parser: one keeps its buffers from chunk to chunk and request to request."""
    if not hasattr(_local, "parser"):
        _local.parser = simdjson.Parser()
    parser: simdjson.Parser = _local.parser
    return parser


def _leading_brackets(span: memoryview) -> int:
    """The rank the first elements suggest: how many `[` open the value."""
    match = _OPENING.match(span)
    return match.group(1).count(b"[") if match else 0


def brackets(chunk: bytes | bytearray | memoryview) -> int:
    """How many `[` the chunk holds: numpy compares 32 bytes at a time, bytes.count one, but
    numpy's call costs what bytes.count takes for 8 KiB."""
    if len(chunk) <= 1 << 13:
        return bytes(chunk).count(b"[")
    return int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == ord("[")))


def _row_chunks(span: memoryview, rank: int) -> Generator[Chunk]:
    """The tensor as JSON arrays of whole rows (first-dimension slices), CHUNK_BYTES or so.

    A row ends where rank - 1 arrays close and a comma follows: `],` in a matrix, `]],` at
    rank 3, a bare `,` in a vector. A malformed tensor may be cut elsewhere; its chunks then
    fail to parse or to agree in shape, and the slow path takes over.

    simdjson copies what it parses into a padded buffer of its own, so a chunk need not be
    a copy: in a writable body the commas around it become its brackets while it is read.
    """
    if len(span) <= CHUNK_BYTES:
        yield span
        return
    row_end = re.compile(rb"\]\s*" * (rank - 1) + rb",")
    position, close = 1, len(span) - 1  # inside the outer brackets: the span is trimmed
    while True:
        found = row_end.search(span, position + CHUNK_BYTES, close)
        end = found.end() - 1 if found else close
        if span.readonly:
            yield b"".join((b"[", span[position:end], b"]"))
        else:
            before, after = span[position - 1], span[end]
            span[position - 1], span[end] = ord("["), ord("]")
            try:
                yield span[position - 1 : end + 1]
            finally:
                span[position - 1], span[end] = before, after
        if not found:
            return
        position = end + 1


def _cast(values: np.ndarray, dtype: np.dtype[Any], name: str, row: int) -> np.ndarray:
    """values in dtype; a number that would become infinite in float32 is named instead.

    JSON numbers are finite, so the cast's overflow flag tells it, for free: scanning the
    values first took longer than the cast (11 us at 256x100, 0.33 ms at 1024x1000).
    """
    if values.dtype == dtype:
        return values
    try:
        with np.errstate(over="raise"):
            return values.astype(dtype)
    except FloatingPointError:
        local = np.unravel_index(int(np.argmax(beyond_float32(values))), values.shape)
    loc: Loc = (name, *(int(i) + row * (not axis) for axis, i in enumerate(local)))
    raise Invalid.at(
        loc,
        f"{_where(loc)} = {values[local].item()!r} is beyond float32's range; send dtype float64",
        "float32_overflow",
    )


def _numbers(array: simdjson.Array, integer: bool) -> np.ndarray:
    """The array's numbers, flattened, as int64 or float64: simdjson's tape straight into a
    numpy buffer."""
    buffer = array.as_buffer(of_type="i" if integer else "d")
    return np.frombuffer(buffer, dtype="<i8" if integer else "<f8")


def _shape(value: Any) -> tuple[int, ...]:
    """Shape read down the first elements (simdjson arrays or lists); checked afterwards."""
    shape = []
    while isinstance(value, simdjson.Array | list):
        shape.append(len(value))
        if not shape[-1] or len(shape) > MAX_RANK:
            break
        value = value[0]
    return tuple(shape)


def _check_rows(value: simdjson.Array, shape: tuple[int, ...]) -> int:
    """Checks the length of every array above the innermost level; returns how many arrays
    there are. A number where an array should be has no length (TypeError); a string or an
    object that has the length is not counted as an array, and not a number for as_buffer."""
    level: Any = value  # the arrays of one level, in order: first the tensor's rows
    count = 1
    for depth, length in enumerate(shape[1:], 2):
        lengths = list(map(len, level))
        if lengths.count(length) != len(lengths):
            raise ValueError("ragged")
        count += len(lengths)
        if depth < len(shape):
            level = [child for array in level for child in array]
    return count


def _check_number(value: Any, loc: Loc, kind: ElementKind) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid.at(loc, f"{_where(loc)} = {_show(value)} is not a number", "not_a_number")
    if kind == "int" and not isinstance(value, int):
        raise Invalid.at(
            loc,
            f"{_where(loc)} = {value!r} is not an integer; send integers (2, not 2.0)",
            "not_an_integer",
        )
    if kind != "float" and isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise Invalid.at(
            loc,
            f"{_where(loc)} = {value} does not fit in a signed 64-bit integer",
            "out_of_range",
        )


def _walk(
    value: Any, shape: tuple[int, ...], loc: Loc, offset: int = 0
) -> Iterator[tuple[Loc, Any]]:
    """Yields (loc, leaf) in row-major order, raising on the first array of the wrong length;
    the first dimension's indices start at `offset` (a chunk's first row)."""
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
        yield from _walk(element, shape[1:], (*loc, i + offset))


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


BLOCK_ELEMENTS = 1 << 16
"""Results with more elements than this are written in blocks of rows, never whole."""


def encode(content: dict[str, Any]) -> bytes | Iterator[Piece]:
    """content as JSON: bytes, or for a large result an iterator of pieces.

    A float32 gradient's text is about three times its array; written in blocks of rows as
    the client reads them, it never exists whole. A block goes out as a view of orjson's
    output, its brackets left out, not copied again.
    """
    if all(_small(value) for value in content.values()):
        return dumps(content)
    return _coalesced(_pieces(content))


def _small(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_small(v) for v in value.values())
    return not isinstance(value, np.ndarray) or value.size <= BLOCK_ELEMENTS


def _pieces(value: Any) -> Iterator[Piece]:
    if isinstance(value, dict):
        yield b"{"
        for i, (key, item) in enumerate(value.items()):
            yield b"," * bool(i) + orjson.dumps(key) + b":"
            yield from _pieces(item)
        yield b"}"
    elif _small(value) or value.ndim == 0:
        yield dumps(value)
    else:
        rows = max(1, BLOCK_ELEMENTS * value.shape[0] // value.size)
        yield b"["
        for start in range(0, value.shape[0], rows):
            if start:
                yield b","
            yield memoryview(dumps(value[start : start + rows]))[1:-1]
        yield b"]"


def _coalesced(pieces: Iterator[Piece], size: int = 1 << 18) -> Iterator[Piece]:
    """Joins small pieces, so that the response goes out in a few large writes; a piece of
    `size` or more goes out as it is."""
    buffer = bytearray()
    for piece in pieces:
        if len(piece) >= size:
            if buffer:
                yield bytes(buffer)
                buffer.clear()
            yield piece
            continue
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def dumps(content: Any) -> bytes:
    """JSON straight from numpy (no per-element Python objects); NaN and ±Inf become null.

    orjson writes numpy arrays natively but not 0-d ones, which become numpy scalars here.
    """
    return orjson.dumps(content, default=_scalar_of, option=orjson.OPT_SERIALIZE_NUMPY)


def _scalar_of(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
