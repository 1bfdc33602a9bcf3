"""Open Inference Protocol tensors <-> numpy: the datatype table, and inputs as any transport
hands them over: JSON data (a raw span, flat or nested), bytes (REST's binary tensor data,
gRPC's raw contents) or Values (gRPC's typed contents).

Bytes are little-endian, row-major, without padding; an input read from them stays a numpy
view of the message (`np.frombuffer` with an explicit little-endian dtype) where its datatype
is what the computation takes. JSON data goes through the v1 reader (service.tensors.json),
then takes the declared shape. Every size is checked against the declared shape and datatype
before anything is read, and every input is held to its datatype alike: integers within its
range, floats rounded to it, so that each way of sending a tensor gives the same tensor.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, Final

import msgspec
import numpy as np

from service import checks
from service.errors import BadRequest, Invalid, PayloadTooLarge
from service.spec import Arrays, Spec
from service.tensors.json import Budget, TensorReader
from service.types import MAX_RANK, ElementKind

DATATYPES: Final[dict[str, np.dtype[Any]]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # the upper half of a float32's bits; numpy has no bfloat16
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""The datatypes an input may have, with their wire dtypes."""
DATATYPE_OF: Final = {dtype: name for name, dtype in DATATYPES.items() if name != "BF16"}
"""numpy dtype -> datatype, for outputs (FP32 and FP64: the computation's dtypes)."""
OUTPUT_DATATYPE: Final = {"predicted": "INT64"}
"""Outputs that are not of the computation's dtype (FP32 by default), for model metadata."""
INTEGERS: Final = ("INT64", "INT32", "INT16", "INT8", "UINT8", "BOOL")
METADATA_DATATYPE: Final[dict[ElementKind, str]] = {
    "float": "FP32",
    "int": "INT64",
    "int or float": "INT64",
}
"""The datatype model metadata shows for each element kind; FP64, FP16 and BF16 are taken for
floats, the other INTEGERS for integers, and FP types for probability targets."""


@dataclass(frozen=True, slots=True)
class Values:
    """Typed values not yet read (gRPC's contents, flat). Each becomes a Python object as it is
    read, so they are read only once their count has been held to the input's shape, and so
    to max_elements."""

    items: Sequence[Any]
    dtype: np.dtype[Any]
    """What the values are: the contents field's type."""


Data = msgspec.Raw | memoryview | Values
"""An input's data: JSON (a raw span), bytes, or typed values."""


@dataclass(frozen=True, slots=True)
class Input:
    """One input as its transport hands it over."""

    name: str
    datatype: str
    shape: list[int]
    data: Data


def read_inputs(
    inputs: Sequence[Input], spec: Spec, max_elements: int, float_dtype: np.dtype[Any]
) -> Arrays:
    """The inputs as numpy arrays of their declared shapes, ready for spec.validate.
    Integers become int64 (float_dtype where the tensor holds floats); floats stay as sent
    (BF16 widened to float32) and must be finite."""
    kinds = spec.element_kinds
    names = [i.name for i in inputs]
    for name in names:
        if name not in kinds:
            raise Invalid.at(
                (name,),
                f"unknown input '{name}'; {spec.name} takes: {', '.join(kinds)}",
                "extra_forbidden",
            )
        if names.count(name) > 1:
            raise BadRequest(f"input '{name}' is given {names.count(name)} times")
    for found in inputs:
        check_header(found.name, found.datatype, found.shape, max_elements)
    if sum(prod(i.shape) for i in inputs) > max_elements:
        raise PayloadTooLarge(f"the tensors hold more than max_elements ({max_elements}) elements")
    reader = TensorReader(Budget(max_elements), float_dtype)
    exact = TensorReader(reader.budget, np.dtype(np.float64))  # rounded once, to FP16 or BF16
    arrays = {}
    for found in inputs:
        if isinstance(found.data, memoryview):
            wire = _from_bytes(found, found.data)
        elif isinstance(found.data, Values):
            wire = _held_to_datatype(_from_values(found, found.data), found)
        else:
            half = found.datatype in ("FP16", "BF16")
            json = _from_json(found, found.data, exact if half else reader)
            wire = _held_to_datatype(json, found)
        array = wire.reshape(found.shape)
        arrays[found.name] = _conform(array, found, spec, kinds[found.name], float_dtype)
    return arrays


def check_header(name: str, datatype: str, shape: Sequence[int], max_elements: int) -> None:
    """A known datatype, at most MAX_RANK dimensions, none negative or past max_elements."""
    if datatype not in DATATYPES:
        raise BadRequest(
            f"input '{name}' has datatype '{datatype}'; this server takes: {', '.join(DATATYPES)}"
        )
    if len(shape) > MAX_RANK:
        raise Invalid.at((name,), f"{name} has more than {MAX_RANK} dimensions", "too_deep")
    if any(d < 0 for d in shape):
        raise BadRequest(f"input '{name}' has shape {list(shape)}; dimensions must be >= 0")
    if any(d > max_elements for d in shape):  # even where another is 0: numpy takes no such shape
        raise PayloadTooLarge(
            f"input '{name}' has shape {list(shape)}; a dimension may be at most max_elements"
            f" ({max_elements})"
        )


def byte_size(found: Input) -> int:
    """The bytes its shape and datatype take."""
    return prod(found.shape) * DATATYPES[found.datatype].itemsize


def _from_bytes(found: Input, data: memoryview) -> np.ndarray:
    needed = byte_size(found)
    if len(data) != needed:
        raise BadRequest(
            f"input '{found.name}' holds {len(data)} bytes, but shape {found.shape} of"
            f" {found.datatype} takes {needed}"
        )
    wire = np.frombuffer(data, DATATYPES[found.datatype], prod(found.shape))
    return _widen(wire) if found.datatype == "BF16" else wire


def _counted(found: Input, values: np.ndarray) -> np.ndarray:
    _count(found, values.size)
    return values


def _count(found: Input, size: int) -> None:
    expected = prod(found.shape)
    if size != expected:
        raise BadRequest(
            f"input '{found.name}' holds {size} values, but its shape {found.shape}"
            f" takes {expected}"
        )


def _from_values(found: Input, values: Values) -> np.ndarray:
    """Typed values, counted before they are read."""
    _count(found, len(values.items))
    return np.fromiter(values.items, values.dtype, len(values.items))


def _held_to_datatype(values: np.ndarray, found: Input) -> np.ndarray:
    """Numbers (JSON's, or typed values) as the input's datatype holds them: integers within
    its range; floats rounded to it (to nearest, ties to even), none beyond its largest finite
    value."""
    name, datatype = found.name, found.datatype
    if datatype in ("INT32", "INT16", "INT8", "UINT8"):
        low, high = np.iinfo(DATATYPES[datatype]).min, np.iinfo(DATATYPES[datatype]).max
        rule = f"is beyond {datatype}'s range [{low}, {high}]"
        checks.reject_first(name, values, (values < low) | (values > high), rule, "out_of_range")
        return values
    if datatype not in ("FP16", "BF16", "FP32") or values.dtype == DATATYPES[datatype]:
        return values
    with np.errstate(over="ignore"):
        held = _to_bfloat16(values) if datatype == "BF16" else values.astype(DATATYPES[datatype])
    rule = f"is beyond {datatype}'s range"
    checks.reject_first(name, values, np.isinf(held), rule, "out_of_range")
    return held


def _to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float64 values rounded once to bfloat16 (to nearest, ties to even), as float32.

    Rounding to float32 first and then to bfloat16 would round twice, and a value just past
    a bfloat16 midpoint could land on it and round the wrong way; rounding to float32 toward
    odd (truncate, then set the last bit if anything was cut) keeps the information the
    second rounding needs."""
    single = values.astype(np.float32)
    over = np.abs(single.astype(np.float64)) > np.abs(values)  # rounded away from zero
    single[over] = np.nextafter(single[over], np.float32(0))
    bits = single.view(np.uint32) | (single.astype(np.float64) != values)  # round to odd
    rounded = bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))
    held: np.ndarray = (rounded & np.uint32(0xFFFF0000)).view(np.float32)
    return held


def _widen(bits: np.ndarray) -> np.ndarray:
    """bfloat16's bits as float32: they are its upper half."""
    wide = bits.astype(np.uint32)
    wide <<= 16  # in place: on a 0-d array, `<<` would give a scalar
    return wide.view(np.float32)


def _from_json(found: Input, raw: msgspec.Raw, reader: TensorReader) -> np.ndarray:
    """JSON data, flat or nested, as a flat array of the declared number of elements."""
    if found.datatype == "BOOL":
        array = reader.read_bools(raw, found.name)
    else:
        kind: ElementKind = "int" if found.datatype in INTEGERS else "float"
        array = reader.read(raw, found.name, kind)
    return _counted(found, array).reshape(-1)


def _conform(
    array: np.ndarray, found: Input, spec: Spec, kind: ElementKind, float_dtype: np.dtype[Any]
) -> np.ndarray:
    """Integers as int64 (or float_dtype for a float tensor); floats as sent, but finite."""
    name, datatype = found.name, found.datatype
    if datatype == "BOOL":
        byte = array.view(np.uint8)
        checks.reject_first(name, byte, byte > 1, "is not a BOOL, 0 or 1", "bool")
    if datatype in INTEGERS:
        return array.astype(float_dtype if kind == "float" else np.int64, copy=False)
    if kind == "int":
        what = next(t.kind for t in spec.tensors if t.name == name)
        raise Invalid.at(
            (name,),
            f"{name} has datatype {datatype}, but its {what} are integers: send one of"
            f" {', '.join(INTEGERS)}",
            "datatype",
        )
    # A finite sum means every element is finite (NaN and infinity propagate): one pass with
    # no temporary; only a sum that is not (or overflows) looks for the first bad element.
    with np.errstate(over="ignore", invalid="ignore"):
        total = array.sum()
    if not np.isfinite(total):
        checks.reject_first(
            name, array, ~np.isfinite(array), "is not finite (NaN or infinity)", "not_finite"
        )
    return array
