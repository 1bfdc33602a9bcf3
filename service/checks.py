"""Validation rules shared by the loss declarations, on numpy arrays before any torch call.

Each raises Invalid naming the field, the first offending index (row-major) and the rule.
"""

from typing import NoReturn

import numpy as np

from service.errors import Invalid


def reject_first(name: str, array: np.ndarray, bad: np.ndarray, rule: str, type: str) -> None:
    """Raises "name[i, j] = v <rule>" at the first True (row-major) in `bad`, if any."""
    if not bad.any():
        return
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    where = f"{name}[{', '.join(map(str, index))}]" if index else name
    value = array[index]  # str() prints the shortest decimal of its own dtype: float32 1.2
    raise Invalid.at((name, *map(int, index)), f"{where} = {value!s} {rule}", type)


def same_shape(name: str, array: np.ndarray, other: str, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise Invalid.at(
            (name,),
            f"{name} has shape {array.shape} but {other} has shape {shape}; they must be equal",
            "shape_mismatch",
        )


def broadcasts(name: str, array: np.ndarray, other: str, shape: tuple[int, ...]) -> None:
    """`array` must broadcast to `shape` without enlarging it, as PyTorch's weight does."""
    try:
        fits = np.broadcast_shapes(array.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise Invalid.at(
            (name,),
            f"{name} of shape {array.shape} does not broadcast to {other}'s shape {shape}",
            "broadcast",
        )


def signs(name: str, array: np.ndarray) -> None:
    reject_first(name, array, (array != 1) & (array != -1), "is not 1 or -1", "sign")


def at_least_zero(name: str, array: np.ndarray, what: str) -> None:
    reject_first(name, array, array < 0, f"is negative; {what} must be >= 0", "negative")


def probabilities(name: str, array: np.ndarray) -> None:
    reject_first(
        name, array, (array < 0) | (array > 1), "is not a probability in [0, 1]", "probability"
    )


def integers(name: str, array: np.ndarray, what: str) -> None:
    """Integers only: a float array means numbers written as 2.0 or 2e0 in JSON, or a float
    datatype on /v2 and gRPC."""
    if array.dtype.kind == "i":
        return
    reject_first(name, array, array != np.trunc(array), f"is not an integer {what}", "integer")
    raise Invalid.at(
        (name,),
        f"{name} holds floats (such as 2.0); each {what} must be an integer: in JSON without a"
        " fraction or an exponent, on /v2 and gRPC with an integer datatype (INT64, INT32, ...)",
        "integer",
    )


def class_count(input: np.ndarray) -> int:
    """C of an input shaped (C) or (N, C, d1, ..., dK)."""
    return int(input.shape[0] if input.ndim == 1 else input.shape[1])


def class_index_shape(input: np.ndarray) -> tuple[int, ...]:
    """The target shape for class indices: () for (C), (N, d1, ..., dK) for (N, C, d1, ...)."""
    return input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()


def class_weight(name: str, weight: np.ndarray, classes: int) -> None:
    if weight.shape != (classes,):
        raise Invalid.at(
            (name,),
            f"{name} has shape {weight.shape}; it needs one value per class, shape ({classes},)",
            "shape_mismatch",
        )


def class_indices(
    target: np.ndarray,
    input: np.ndarray,
    *,
    ignore_index: int | None = None,
    weight: np.ndarray | None = None,
    reduction: str = "none",
) -> None:
    """Integer targets in [0, C) or ignore_index; for "mean", a non-zero (weighted) count."""
    same_shape("target", target, "class indices for input", class_index_shape(input))
    integers("target", target, "class index")
    classes = class_count(input)
    every_class = target.size and target.min() >= 0 and target.max() < classes
    if every_class and (ignore_index is None or not 0 <= ignore_index < classes):
        # none is ignored, so the weighted mean is all that is left to check
        if reduction == "mean" and weight is not None and weight[target].sum() == 0:
            _zero_weight_sum()
        return
    rule = f"is not a class index in [0, {classes})"
    if ignore_index is None:
        kept = np.ones(target.shape, dtype=bool)
    else:
        kept = target != ignore_index
        rule += f" and is not ignore_index ({ignore_index})"
    reject_first(
        "target",
        target,
        kept & ((target < 0) | (target >= classes)),
        rule,
        "class_index_out_of_range",
    )
    if reduction != "mean":
        return
    if not kept.any():
        raise Invalid.at(
            ("target",),
            f"every target is ignore_index ({ignore_index}); reduction 'mean' has nothing"
            " to average (use 'sum' or 'none')",
            "all_ignored",
        )
    if weight is not None and weight[target[kept]].sum() == 0:
        _zero_weight_sum()


def _zero_weight_sum() -> NoReturn:
    raise Invalid.at(
        ("weight",),
        "the weights of the targets sum to 0; reduction 'mean' would divide by it",
        "zero_weight_sum",
    )
