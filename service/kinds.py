"""The kinds of function the service serves (losses, activations), in one table.

The routers, the OpenAPI document, the metrics and the CLI iterate over KINDS instead of naming
each registry: a kind's specs become /v1/{path}/{name} routes and /v2 models alike.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from service.activations import ACTIVATIONS
from service.api.models import (
    ActivationCatalogue,
    ActivationEntry,
    ActivationResponse,
    Catalogue,
    LossEntry,
    LossResponse,
)
from service.engine import Engine, Result
from service.losses import REGISTRY
from service.losses.spec import Spec

Run = Callable[[Engine, Any, Any, Any, Any], Result]
"""run(engine, spec, arrays, params, options): the engine's method for this kind."""


@dataclass(frozen=True)
class Kind:
    path: str
    """The collection's path segment in /v1: "losses"."""
    noun: str
    """One of them: "loss"."""
    specs: Mapping[str, Spec]
    value: str
    """The result's name: the v1 response field and the /v2 output ("loss", "output")."""
    entry: type[BaseModel]
    """The catalogue entry's model."""
    catalogue: type[BaseModel]
    """GET /v1/{path}'s model: {path: [entry, ...]}."""
    response: type[BaseModel]
    """The v1 response's model."""
    run: Run


KINDS = (
    Kind(
        path="losses",
        noun="loss",
        specs=REGISTRY,
        value="loss",
        entry=LossEntry,
        catalogue=Catalogue,
        response=LossResponse,
        run=Engine.compute,
    ),
    Kind(
        path="activations",
        noun="activation",
        specs=ACTIVATIONS,
        value="output",
        entry=ActivationEntry,
        catalogue=ActivationCatalogue,
        response=ActivationResponse,
        run=Engine.apply,
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
