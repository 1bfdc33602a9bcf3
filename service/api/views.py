"""How /v1 shows each kind of function: its catalogue's models, its response's model, and the
body of a response built from the data plane's Result."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from service.api.models import (
    ActivationCatalogue,
    ActivationEntry,
    ActivationResponse,
    Catalogue,
    LabelQualityResponse,
    LossEntry,
    LossResponse,
)
from service.engine import Result
from service.kinds import Kind
from service.tensors.torch import warnings

Body = Callable[[Result, Any], dict[str, Any]]
"""body(result, options): the content of the v1 response (its `response` model)."""


@dataclass(frozen=True)
class View:
    entry: type[BaseModel]
    """The catalogue entry's model."""
    catalogue: type[BaseModel] | None
    """GET /v1/{path}'s model, {path: [entry, ...]}; None for a kind of one function, served
    at /v1/{name} itself (label_quality)."""
    response: type[BaseModel]
    """The v1 response's model."""
    body: Body


def _loss_body(result: Result, options: Any) -> dict[str, Any]:
    loss = result.outputs["loss"]
    grad = {name.removeprefix("grad_"): g for name, g in result.outputs.items() if name != "loss"}
    content: dict[str, Any] = {
        "loss": loss,
        "reduction": options.reduction,
        "shape": list(loss.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    if grad:
        content["grad"] = grad
    if result.divisor is not None:
        content["divisor"] = result.divisor
    named = {"loss": loss} | {f"grad.{tensor}": g for tensor, g in grad.items()}
    return _warned(content, named)


def _activation_body(result: Result, options: Any) -> dict[str, Any]:
    output = result.outputs["output"]
    content = {
        "output": output,
        "shape": list(output.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    return _warned(content, {"output": output})


def _score_body(result: Result, options: Any) -> dict[str, Any]:
    scores = {name: a for name, a in result.outputs.items() if name != "predicted"}
    content = {
        "scores": scores,
        "predicted": result.outputs["predicted"],
        "dtype": options.dtype,
        "device": result.device,
    }
    return _warned(content, {f"scores.{name}": a for name, a in scores.items()})


def _warned(content: dict[str, Any], named: dict[str, np.ndarray]) -> dict[str, Any]:
    """content, with `warnings` when a result is not finite (JSON writes it as null)."""
    if found := warnings(named):
        content["warnings"] = found
    return content


VIEWS = {
    "losses": View(LossEntry, Catalogue, LossResponse, _loss_body),
    "activations": View(ActivationEntry, ActivationCatalogue, ActivationResponse, _activation_body),
    "label_quality": View(ActivationEntry, None, LabelQualityResponse, _score_body),
}
"""Each kind's view, by its path."""


def view(kind: Kind) -> View:
    return VIEWS[kind.path]
