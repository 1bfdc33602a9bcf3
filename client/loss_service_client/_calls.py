"""A call's keyword arguments, checked against the server's catalogue before anything is sent,
and sorted into tensors (as arrays: loss_service_client._arrays) and parameters."""

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from loss_service_client import _arrays
from loss_service_client._errors import InvalidCall
from loss_service_client._protocol import Call

OPTIONS = ("reduction", "grad", "dtype", "device")
"""What every loss takes beside its own tensors and parameters (activations: dtype, device)."""


def build(
    kind: str,
    name: str,
    entry: dict[str, Any],
    values: dict[str, Any],
    split: bool,
    classes: Sequence[str] | None = None,
) -> tuple[Call, tuple[str, ...] | None]:
    """The call, and the class names its labels were given as (None where they were indices).

    Every name must be the function's tensor, parameter or option: a misspelt one is refused
    with the nearest. Class-index tensors take whole floats (2.0), strings and categories;
    `cross_entropy`'s target of the input's shape is probabilities (floats, or one-hot)."""
    tensors = {t["name"]: t for t in entry["tensors"]}
    optional = {n: e for n, e in entry["parameters"].items() if "tensor" in e["type"]}
    known = [*tensors, *optional, *(n for n in entry["parameters"] if n not in optional), *OPTIONS]
    for key in values:
        if key not in known:
            raise InvalidCall(_unknown(name, key, known))
    missing = [t for t in tensors if values.get(t) is None]
    if missing:
        raise InvalidCall(f"{name} needs {', '.join(missing)}; it takes: {', '.join(known)}")
    held = {
        n: _arrays.hold(values[n], n) for n in [*tensors, *optional] if values.get(n) is not None
    }
    input_shape = held[next(iter(tensors))].array.shape
    arrays, datatypes, named = {}, {}, None
    for tensor, found in held.items():
        spec = tensors.get(tensor, {"dtype": "float", "kind": "weights"})
        if _probabilities(spec, found.array, input_shape):
            arrays[tensor] = found.array.astype(np.result_type(found.array, np.float32))
        elif spec["kind"].startswith("class ind"):
            arrays[tensor], named = _arrays.class_indices(found, tensor, classes)
        elif spec["dtype"] == "int":
            arrays[tensor] = _arrays.whole(_numbers(found.array, tensor, spec), tensor)
        else:
            arrays[tensor] = _numbers(found.array, tensor, spec)
        if found.datatype is not None:
            datatypes[tensor] = found.datatype
    if named is not None and len(input_shape) >= 2 and input_shape[1] != len(named):
        raise InvalidCall(
            f"the labels name {len(named)} classes, but input has {input_shape[1]} columns:"
            " give the class names in the order of input's columns (classes=, --classes)"
        )
    parameters = {k: _plain(v) for k, v in values.items() if k not in held}
    batch = {t: e["batch"] for t, e in tensors.items()}
    batch |= {t: e.get("batch") for t, e in optional.items()}
    return Call(kind, name, arrays, parameters, batch, split, datatypes), named


def _probabilities(spec: dict[str, Any], array: np.ndarray, input_shape: tuple[int, ...]) -> bool:
    """Whether a target that takes class indices or probabilities holds probabilities: of the
    input's shape, floats, or one-hot integers (0 and 1) as labelling tools write them."""
    if spec["dtype"] != "int or float" or array.shape != input_shape:
        return False
    if array.dtype.kind == "f":
        return True
    one_hot = "probabilities" in spec["kind"] and array.dtype.kind in "iub"
    return one_hot and bool(((array == 0) | (array == 1)).all())


def _numbers(array: np.ndarray, name: str, spec: dict[str, Any]) -> np.ndarray:
    if array.dtype.kind in "US":
        raise InvalidCall(
            f"{name} holds strings; it holds {spec['kind']}: numbers (class names are for"
            " class-index targets)"
        )
    return array


def _unknown(function: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    guess = f"; did you mean '{close[0]}'?" if close else ";"
    return f"{function} has no tensor or parameter '{key}'{guess} it takes: {', '.join(known)}"


def _plain(value: Any) -> Any:
    """numpy scalars and tuples as JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    return list(value) if isinstance(value, tuple) else value
