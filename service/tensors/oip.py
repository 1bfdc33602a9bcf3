"""Open Inference Protocol tensors <-> numpy: the datatype table, binary and JSON data.

Binary data (Triton's binary tensor data extension) is little-endian, row-major, without
padding, in the body after the JSON header, in the order of the inputs that carry
`binary_data_size`. An input read from it stays a numpy view of the body (`np.frombuffer` with
an explicit little-endian dtype) where its datatype is what the computation takes. JSON `data`
(flat or nested) goes through the v1 reader (service.tensors.json), then takes the declared
shape. Every size is checked against the declared shape and datatype before anything is read.
"""

from collections.abc import Iterator, Sequence
from math import prod
from typing import Any, Final

import numpy as np

from service import checks
from service.errors import BadRequest, Invalid, PayloadTooLarge
from service.protocol import RequestInput
from service.spec import Arrays, Spec
from service.tensors.json import Budget, Piece, TensorReader, encode
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


def read_inputs(
    inputs: Sequence[RequestInput],
    binary: memoryview,
    spec: Spec,
    max_elements: int,
    float_dtype: np.dtype[Any],
) -> Arrays:
    """The inputs as numpy arrays of their declared shapes, ready for spec.validate.

    `binary` is the body after the JSON header. JSON data is held to its datatype as binary
    data is: integers within its range, floats rounded to it, so that both give the same
    tensor. Integers become int64 (float_dtype where the tensor holds floats); floats stay as
    sent (BF16 widened to float32) and must be finite.
    """
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
    sizes = [_check_header(i, max_elements) for i in inputs]
    elements = sum(prod(i.shape) for i in inputs)
    if elements > max_elements:
        raise PayloadTooLarge(f"the tensors hold more than max_elements ({max_elements}) elements")
    total = sum(size for size in sizes if size is not None)
    if total != len(binary):
        raise BadRequest(
            f"the body holds {len(binary)} bytes of binary data after its JSON header, but the"
            f" inputs' binary_data_size add up to {total}"
        )
    reader = TensorReader(Budget(max_elements), float_dtype)
    exact = TensorReader(reader.budget, np.dtype(np.float64))  # rounded once, to FP16 or BF16
    arrays, offset = {}, 0
    for request_input, size in zip(inputs, sizes, strict=True):
        dtype = DATATYPES[request_input.datatype]
        if size is None:
            half = request_input.datatype in ("FP16", "BF16")
            wire = _held_to_datatype(
                _from_json(request_input, exact if half else reader), request_input
            )
        else:
            wire = np.frombuffer(binary, dtype, prod(request_input.shape), offset)
            offset += size
            if request_input.datatype == "BF16":
                wire = _widen(wire)
        array = wire.reshape(request_input.shape)
        arrays[request_input.name] = _conform(
            array, request_input, spec, kinds[request_input.name], float_dtype
        )
    return arrays


def _check_header(request_input: RequestInput, max_elements: int) -> int | None:
    """The input's binary_data_size (None for JSON data), after checking its header."""
    name, shape, datatype = request_input.name, request_input.shape, request_input.datatype
    if datatype not in DATATYPES:
        raise BadRequest(
            f"input '{name}' has datatype '{datatype}'; this server takes: {', '.join(DATATYPES)}"
        )
    if len(shape) > MAX_RANK:
        raise Invalid.at((name,), f"{name} has more than {MAX_RANK} dimensions", "too_deep")
    if any(d < 0 for d in shape):
        raise BadRequest(f"input '{name}' has shape {shape}; dimensions must be >= 0")
    if any(d > max_elements for d in shape):  # even where another is 0: numpy takes no such shape
        raise PayloadTooLarge(
            f"input '{name}' has shape {shape}; a dimension may be at most max_elements"
            f" ({max_elements})"
        )
    unknown = set(request_input.parameters) - {"binary_data_size"}
    if unknown:
        raise BadRequest(
            f"input '{name}' has parameter '{min(unknown)}'; inputs take binary_data_size"
        )
    size = request_input.parameters.get("binary_data_size")
    has_data = len(request_input.data) > 0
    if size is None:
        if not has_data:
            raise BadRequest(f"input '{name}' has neither data nor binary_data_size")
        return None
    if has_data:
        raise BadRequest(f"input '{name}' has both data and binary_data_size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise BadRequest(f"input '{name}': binary_data_size must be a number of bytes")
    needed = prod(shape) * DATATYPES[datatype].itemsize
    if size != needed:
        raise BadRequest(
            f"input '{name}': binary_data_size is {size} bytes, but shape {shape} of"
            f" {datatype} takes {needed}"
        )
    return size


def _held_to_datatype(values: np.ndarray, request_input: RequestInput) -> np.ndarray:
    """JSON numbers as the input's datatype holds them: integers within its range; floats
    rounded to it (to nearest, ties to even), none beyond its largest finite value."""
    name, datatype = request_input.name, request_input.datatype
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


def _from_json(request_input: RequestInput, reader: TensorReader) -> np.ndarray:
    """JSON data, flat or nested, as a flat array of the declared number of elements."""
    name, datatype = request_input.name, request_input.datatype
    if datatype == "BOOL":
        array = reader.read_bools(request_input.data, name)
    else:
        kind: ElementKind = "int" if datatype in INTEGERS else "float"
        array = reader.read(request_input.data, name, kind)
    expected = prod(request_input.shape)
    if array.size != expected:
        raise BadRequest(
            f"input '{name}' holds {array.size} values, but its shape {request_input.shape}"
            f" takes {expected}"
        )
    return array.reshape(-1)


def _conform(
    array: np.ndarray,
    request_input: RequestInput,
    spec: Spec,
    kind: ElementKind,
    float_dtype: np.dtype[Any],
) -> np.ndarray:
    """Integers as int64 (or float_dtype for a float tensor); floats as sent, but finite."""
    name, datatype = request_input.name, request_input.datatype
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


def write_outputs(
    header: dict[str, Any], outputs: dict[str, tuple[np.ndarray, bool]]
) -> tuple[bytes | Iterator[Piece], list[memoryview]]:
    """The response's JSON (bytes, or pieces when it is large) and its binary outputs, each a
    view of its array's buffer, in order.

    `outputs` maps each output's name to its array and whether it goes as binary data.
    """
    entries, binary = [], []
    for name, (array, as_binary) in outputs.items():
        entry: dict[str, Any] = {
            "name": name,
            "datatype": DATATYPE_OF[array.dtype],
            "shape": list(array.shape),
        }
        if as_binary:
            flat = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)
            entry["parameters"] = {"binary_data_size": flat.nbytes}
            binary.append(flat.data.cast("B"))
        else:
            entry["data"] = array.reshape(-1)
        entries.append(entry)
    return encode(header | {"outputs": entries}), binary
