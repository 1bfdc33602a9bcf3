"""A request from its JSON fields: scalars through pydantic, tensors straight to numpy.

Shared by every JSON endpoint, so that each validates exactly alike.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from service.engine import Result
from service.errors import Invalid
from service.losses.spec import Arrays, LossOptions, Options, Params, Spec
from service.tensors.json import TensorReader, encode, plain


@dataclass(frozen=True, slots=True)
class Decoded:
    arrays: Arrays
    params: Params
    options: Any


def decode(spec: Spec, fields: dict[str, msgspec.Raw], max_elements: int) -> Decoded:
    """Checks the field names, then the scalars (cheap), then reads the tensors."""
    for name in fields:
        if name not in spec.fields:
            raise Invalid.at(
                (name,),
                f"unknown field '{name}'; {spec.name} takes: {', '.join(spec.fields)}",
                "extra_forbidden",
            )
    kinds = spec.element_kinds
    scalars = {name: plain(raw) for name, raw in fields.items() if name not in kinds}
    params, options = spec.parse_options(scalars)
    reader = TensorReader(max_elements, np.dtype(options.dtype))
    required = {t.name for t in spec.tensors}
    arrays = {
        name: reader.read(raw, name, kinds[name])
        for name, raw in fields.items()
        if name in required or (name in kinds and not _is_null(raw))
    }
    return Decoded(arrays, params, options)


def _is_null(raw: msgspec.Raw) -> bool:
    """A tensor parameter given as null, meaning its default (none)."""
    return len(raw) == 4 and bytes(raw) == b"null"


def loss_response(result: Result, options: LossOptions) -> bytes | Iterator[bytes]:
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
    return encode(content)


def activation_response(result: Result, options: Options) -> bytes | Iterator[bytes]:
    """The body of an activation's 200 (ActivationResponse)."""
    content: dict[str, Any] = {
        "output": result.value,
        "shape": list(result.value.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    if warnings := result.warnings("output"):
        content["warnings"] = warnings
    return encode(content)
