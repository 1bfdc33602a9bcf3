"""The kinds of function the service serves (losses, activations, scores, grades), in one
table.

The data plane, the routers, the metrics and the CLI iterate over KINDS instead of naming each
registry: a kind's specs become /v1/{path}/{name} routes and /v2 models alike. How /v1 shows a
kind is the v1 adapter's (service.api.views).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service import scores
from service.activations import ACTIVATIONS
from service.engine import Engine, Result
from service.grades import GRADES
from service.losses import REGISTRY
from service.spec import Spec

Run = Callable[[Engine, Any, Any, Any, Any], Result]
"""run(engine, spec, arrays, params, options): the engine's method for this kind."""


@dataclass(frozen=True)
class Kind:
    path: str
    """The collection's path segment in /v1: "losses"."""
    noun: str
    """One of them: "loss"."""
    specs: Mapping[str, Spec]
    run: Run


KINDS = (
    Kind(path="losses", noun="loss", specs=REGISTRY, run=Engine.compute),
    Kind(path="activations", noun="activation", specs=ACTIVATIONS, run=Engine.apply),
    Kind(path="label_quality", noun="score", specs=scores.SPECS, run=Engine.score),
    Kind(path="grades", noun="metric", specs=GRADES, run=Engine.grade),
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
