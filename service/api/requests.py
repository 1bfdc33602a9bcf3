"""A request from its JSON fields: scalars through pydantic, tensors straight to numpy.

Shared by every JSON endpoint, so that each validates exactly alike.
"""

from dataclasses import dataclass
from typing import Any

import simdjson

from service.engine import Result
from service.errors import Invalid
from service.losses.spec import Arrays, LossOptions, Options, Params, Spec
from service.tensors.json import TensorReader, dumps, plain


@dataclass(frozen=True, slots=True)
class Decoded:
    arrays: Arrays
    params: Params
    options: Any
    raw: dict[str, Any]
    """The tensors as parsed, for TensorReader.confirm."""


def decode(spec: Spec, fields: simdjson.Object, reader: TensorReader) -> Decoded:
    """Checks the field names, then the scalars (cheap), then reads the tensors."""
    names = list(fields.keys())
    _check_names(spec, names)
    kinds = spec.element_kinds
    params, options = spec.parse_options({k: plain(fields[k]) for k in names if k not in kinds})
    required = {t.name for t in spec.tensors}
    raw = {k: fields[k] for k in names if k in required or (k in kinds and fields[k] is not None)}
    arrays = {name: reader.read(value, name, kinds[name]) for name, value in raw.items()}
    return Decoded(arrays, params, options, raw)


def _check_names(spec: Spec, names: list[str]) -> None:
    known = spec.fields
    for name in names:
        if name not in known:
            raise Invalid.at(
                (name,),
                f"unknown field '{name}'; {spec.name} takes: {', '.join(known)}",
                "extra_forbidden",
            )
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise Invalid.at((twice,), f"field '{twice}' appears twice", "duplicate_field")


def loss_response(result: Result, options: LossOptions) -> bytes:
    """The body of a loss's 200 (LossResponse)."""
    content: dict[str, Any] = {
        "loss": result.value,
        "reduction": options.reduction,
        "shape": list(result.value.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    if options.grad:
        content["grad"] = result.grad
    if warnings := result.warnings("loss"):
        content["warnings"] = warnings
    return dumps(content)


def activation_response(result: Result, options: Options) -> bytes:
    """The body of an activation's 200 (ActivationResponse)."""
    content: dict[str, Any] = {
        "output": result.value,
        "shape": list(result.value.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    if warnings := result.warnings("output"):
        content["warnings"] = warnings
    return dumps(content)
