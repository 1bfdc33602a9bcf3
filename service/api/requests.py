"""A loss request from its JSON fields: scalars through pydantic, tensors straight to numpy.

Shared by every JSON endpoint that computes a loss, so each validates exactly alike.
"""

from dataclasses import dataclass
from typing import Any

import simdjson

from service.engine import Engine, LossResult
from service.errors import Invalid
from service.losses import LossSpec
from service.losses.spec import Arrays, Options, Params
from service.tensors.json import TensorReader, dumps, plain


@dataclass(frozen=True, slots=True)
class LossRequest:
    spec: LossSpec
    arrays: Arrays
    params: Params
    options: Options
    raw: dict[str, Any]
    """The tensors as parsed, for TensorReader.confirm."""

    def run(self, engine: Engine) -> LossResult:
        return engine.compute(self.spec, self.arrays, self.params, self.options)


def decode(spec: LossSpec, fields: simdjson.Object, reader: TensorReader) -> LossRequest:
    """Checks the field names, then the scalars (cheap), then reads the tensors."""
    names = list(fields.keys())
    _check_names(spec, names)
    kinds = spec.element_kinds
    params, options = spec.parse_options({k: plain(fields[k]) for k in names if k not in kinds})
    required = {t.name for t in spec.tensors}
    raw = {k: fields[k] for k in names if k in required or (k in kinds and fields[k] is not None)}
    arrays = {name: reader.read(value, name, kinds[name]) for name, value in raw.items()}
    return LossRequest(spec, arrays, params, options, raw)


def _check_names(spec: LossSpec, names: list[str]) -> None:
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


def encode(result: LossResult, options: Options) -> bytes:
    """The 200 response body (see LossResponse)."""
    content: dict[str, Any] = {
        "loss": result.loss,
        "reduction": options.reduction,
        "shape": list(result.loss.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    if options.grad:
        content["grad"] = result.grad
    if warnings := result.warnings:
        content["warnings"] = warnings
    return dumps(content)
