"""The service's vocabulary: type aliases and the constants every layer shares."""

import re
from typing import Literal

Reduction = Literal["none", "mean", "sum", "batchmean"]
DTypeName = Literal["float32", "float64"]
Loc = tuple[str | int, ...]
"""Where an error is: field names and indices, e.g. ("target", 3) or ("input", 0, 2)."""

ElementKind = Literal["float", "int", "int or float"]
"""What a tensor's elements are: floats, integers, or either (a class index or a probability)."""
MAX_RANK = 8
"""The most dimensions a tensor may have."""
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
"""A device's name, as a setting or a request's option."""
