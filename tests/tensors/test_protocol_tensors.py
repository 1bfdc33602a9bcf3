"""Open Inference Protocol tensors: JSON data held to its datatype as binary data is."""

import bisect
import struct
from fractions import Fraction
from functools import cache

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from service.protocol.tensors import _to_bfloat16


@cache
def bfloat16_values() -> list[float]:
    """Every finite non-negative bfloat16, ascending."""
    return [struct.unpack("<f", struct.pack("<I", bits << 16))[0] for bits in range(0x7F80)]


def rounded(value: float) -> float:
    """value rounded to bfloat16 in exact arithmetic: to nearest, ties to the even one."""
    values, magnitude = bfloat16_values(), abs(value)
    i = bisect.bisect_left(values, magnitude)
    if values[i] == magnitude:
        return value
    low, high = values[i - 1], values[i]
    middle = (Fraction(low) + Fraction(high)) / 2
    if Fraction(magnitude) == middle:
        even = struct.unpack("<I", struct.pack("<f", low))[0] >> 16 & 1 == 0
        nearest = low if even else high
    else:
        nearest = low if Fraction(magnitude) < middle else high
    return -nearest if value < 0 else nearest


@st.composite
def near_midpoints(draw: st.DrawFn) -> float:
    """Values at or within a hair of the point halfway between two bfloat16s: where rounding
    to float32 first, then to bfloat16, goes wrong."""
    values = bfloat16_values()
    i = draw(st.integers(1, len(values) - 3))
    middle = (values[i] + values[i + 1]) / 2
    hair = draw(st.sampled_from([0.0, 2.0**-30, -(2.0**-30), 2.0**-45, -(2.0**-45)]))
    return draw(st.sampled_from([1.0, -1.0])) * middle * (1 + hair)


@given(st.lists(near_midpoints() | st.floats(-3e38, 3e38), min_size=1, max_size=50))
def test_bfloat16_json_values_are_rounded_once(values: list[float]) -> None:
    held = _to_bfloat16(np.array(values)).astype(np.float64)
    assert held.tolist() == [rounded(v) for v in values]
