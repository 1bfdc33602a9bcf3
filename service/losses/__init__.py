"""REGISTRY: every served loss by name, gathered from the family modules."""

from service.losses import (
    classification,
    ctc,
    distributions,
    embeddings,
    focal,
    margins,
    regression,
)
from service.spec import LossSpec, registry

REGISTRY = registry(
    (
        *classification.LOSSES,
        *focal.LOSSES,
        *regression.LOSSES,
        *distributions.LOSSES,
        *margins.LOSSES,
        *embeddings.LOSSES,
        *ctc.LOSSES,
    )
)

__all__ = ["REGISTRY", "LossSpec"]
