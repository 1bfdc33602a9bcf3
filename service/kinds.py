"""The kinds of function the service serves (losses, activations, scores), in one table.

The routers, the OpenAPI document, the metrics and the CLI iterate over KINDS instead of naming
each registry: a kind's specs become /v1/{path}/{name} routes and /v2 models alike.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from service import scores
from service.activations import ACTIVATIONS
from service.api.models import (
    ActivationCatalogue,
    ActivationEntry,
    ActivationResponse,
    Catalogue,
    LabelQualityResponse,
    LossEntry,
    LossResponse,
)
from service.engine import Engine, Result
from service.losses import REGISTRY
from service.losses.spec import Spec
from service.tensors.torch import warnings

Run = Callable[[Engine, Any, Any, Any, Any], Result]
"""run(engine, spec, arrays, params, options): the engine's method for this kind."""
Body = Callable[[Result, Any], dict[str, Any]]
"""body(result, options): the content of the v1 response (its `response` model)."""


@dataclass(frozen=True)
class Kind:
    path: str
    """The collection's path segment in /v1: "losses"."""
    noun: str
    """One of them: "loss"."""
    specs: Mapping[str, Spec]
    entry: type[BaseModel]
    """The catalogue entry's model."""
    catalogue: type[BaseModel] | None
    """GET /v1/{path}'s model, {path: [entry, ...]}; None for a kind of one function, served
    at /v1/{name} itself (label_quality)."""
    response: type[BaseModel]
    """The v1 response's model."""
    run: Run
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


KINDS = (
    Kind(
        path="losses",
        noun="loss",
        specs=REGISTRY,
        entry=LossEntry,
        catalogue=Catalogue,
        response=LossResponse,
        run=Engine.compute,
        body=_loss_body,
    ),
    Kind(
        path="activations",
        noun="activation",
        specs=ACTIVATIONS,
        entry=ActivationEntry,
        catalogue=ActivationCatalogue,
        response=ActivationResponse,
        run=Engine.apply,
        body=_activation_body,
    ),
    Kind(
        path="label_quality",
        noun="score",
        specs=scores.SPECS,
        entry=ActivationEntry,
        catalogue=None,
        response=LabelQualityResponse,
        run=Engine.score,
        body=_score_body,
    ),
)


def models(kinds: tuple[Kind, ...] = KINDS) -> dict[str, tuple[Kind, Spec]]:
    """Every function by name across the kinds (the /v2 models); a name in two is an error."""
    found: dict[str, tuple[Kind, Spec]] = {}
    for kind in kinds:
        for name, spec in kind.specs.items():
            if name in found:
                raise ValueError(f"{name!r} is both a {found[name][0].noun} and a {kind.noun}")
            found[name] = (kind, spec)
    return found


MODELS = models()
