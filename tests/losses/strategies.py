"""Hypothesis strategies for loss requests: shapes, tensors, parameters and options."""

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from service.checks import class_index_shape

LOGITS = st.floats(-20, 20, allow_nan=False, width=64)
UNIT = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1, width=64))


@st.composite
def class_shape(draw: st.DrawFn) -> tuple[int, ...]:
    """(C), (N, C) or (N, C, d1, ..., dK) with K <= 2, N = 1 and C = 1 included."""
    classes = draw(st.integers(1, 5))
    if draw(st.booleans()):
        return (classes,)
    extra = draw(st.lists(st.integers(1, 3), max_size=2))
    return (draw(st.integers(1, 4)), classes, *extra)


@st.composite
def class_indices(
    draw: st.DrawFn, input_shape: tuple[int, ...], ignore_index: int | None = None
) -> np.ndarray:
    """Indices in [0, C), some ignore_index, the first never ignored (so 'mean' is defined)."""
    classes = input_shape[0] if len(input_shape) == 1 else input_shape[1]
    values = st.integers(0, classes - 1)
    if ignore_index is not None:
        values |= st.just(ignore_index)
    target = draw(arrays(np.int64, class_index_shape(np.empty(input_shape)), elements=values))
    target.flat[0] = draw(st.sampled_from([c for c in range(classes) if c != ignore_index]))
    return target


OPTIONS = st.fixed_dictionaries(
    {
        "reduction": st.sampled_from(["none", "mean", "sum"]),
        "dtype": st.sampled_from(["float32", "float64"]),
        "grad": st.booleans(),
    }
)


def as_computed(value: np.ndarray, dtype: str) -> np.ndarray:
    """Float tensors as the service sees them in `dtype`, back in float64 for the reference."""
    if value.dtype.kind != "f":
        return value
    return value.astype(dtype).astype(np.float64)


def jsonable(value: np.ndarray) -> Any:
    return value.tolist()


def shapes(min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def tensor(shape: tuple[int, ...], low: float = -10, high: float = 10) -> st.SearchStrategy:
    return arrays(np.float64, shape, elements=st.floats(low, high, width=64))


def signs(shape: tuple[int, ...]) -> st.SearchStrategy:
    return arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0]))


def options(*reductions: str) -> st.SearchStrategy:
    """OPTIONS with other reductions (kl_div's batchmean)."""
    return OPTIONS.flatmap(
        lambda o: st.sampled_from(reductions).map(lambda r: o | {"reduction": r})
    )
