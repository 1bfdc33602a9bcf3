"""REGISTRY: every served loss by name, gathered from the family modules."""

from collections.abc import Iterable

from service.losses import classification, focal
from service.losses.spec import LossSpec


def _register(specs: Iterable[LossSpec]) -> dict[str, LossSpec]:
    registry: dict[str, LossSpec] = {}
    for spec in specs:
        if spec.name in registry:
            raise ValueError(f"loss {spec.name!r} is declared twice")
        registry[spec.name] = spec
    return registry


REGISTRY = _register((*classification.LOSSES, *focal.LOSSES))

__all__ = ["REGISTRY", "LossSpec"]
