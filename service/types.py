"""Type aliases shared across the service."""

from typing import Literal

Reduction = Literal["none", "mean", "sum", "batchmean"]
DTypeName = Literal["float32", "float64"]
Loc = tuple[str | int, ...]
"""Where an error is: field names and indices, e.g. ("target", 3) or ("input", 0, 2)."""
