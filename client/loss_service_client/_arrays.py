"""What a pipeline holds, as arrays the client can send.

numpy arrays of any number type; torch tensors of any dtype and device (bfloat16 kept as its
bits, sent as the Protocol's BF16); pandas Series and DataFrames (nullable columns, and
categorical ones with their categories as class names); pyarrow arrays and chunked arrays
(list<float> columns, as HuggingFace `datasets` and Parquet hold logits, become 2-D;
dictionary columns are their values); anything with `__array__`, `__dlpack__` or the Arrow
C interface; nested lists and numbers. A missing value (NA, null) is refused, naming its rows.

Class-index tensors also take strings (or categories): they become indices into `classes`,
given or, where not, the labels' sorted unique values; the names go back with the result.
torch, pandas and pyarrow are never imported here unless the value is one of theirs.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loss_service_client._errors import InvalidCall

BF16 = "BF16"


@dataclass(frozen=True)
class Held:
    """A tensor as numpy: `array`, where `datatype` is BF16 the bits of bfloat16s (uint16), and
    where `classes` is given the codes of categories with those names."""

    array: np.ndarray
    datatype: str | None = None
    classes: tuple[str, ...] | None = None


def hold(value: Any, name: str) -> Held:
    """`value` as numpy, or InvalidCall naming `name` and what is wrong with it."""
    if isinstance(value, Held):
        return value
    module = type(value).__module__.partition(".")[0]
    if module == "torch" and hasattr(value, "detach"):
        return _torch(value, name)
    if module == "pandas":
        return _pandas(value, name)
    if module == "pyarrow" or hasattr(value, "__arrow_c_stream__"):
        return _arrow(value, name)
    if isinstance(value, np.ndarray):
        return Held(_checked(value, name))
    if hasattr(value, "__array__"):
        return Held(_checked(np.asarray(value), name))
    if hasattr(value, "__dlpack__"):
        return Held(_checked(np.from_dlpack(value), name))
    return Held(_checked(_nested(value, name), name))


def _nested(value: Any, name: str) -> np.ndarray:
    """Nested lists (or tuples, or a list of arrays) and numbers; names only where all are
    names (numpy would write the numbers among them as words)."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise InvalidCall(
            f"{name} is ragged: its rows have different lengths, and a tensor is rectangular"
        ) from None
    if array.dtype.kind in "US":
        leaves = np.asarray(value, dtype=object)
        kinds = [isinstance(v, str) for v in leaves.ravel()]
        if not all(kinds):
            first = kinds.index(False) if kinds.count(True) > len(kinds) / 2 else kinds.index(True)
            where = _where(name, np.unravel_index(first, leaves.shape))
            raise InvalidCall(
                f"{name} mixes numbers and names: {where} = {leaves.ravel()[first]!r}"
            )
    return array


def _checked(array: np.ndarray, name: str) -> np.ndarray:
    """Numbers, booleans and strings pass; objects that are all strings become strings."""
    kind = array.dtype.kind
    if kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() >= 2**63:
        where = _where(name, np.unravel_index(int(np.argmax(array >= 2**63)), array.shape))
        raise InvalidCall(f"{where} = {array.max()} does not fit in a signed 64-bit integer")
    if kind in "fiub" and array.dtype.itemsize <= 8:
        return array
    if kind == "f":  # long double
        return array.astype(np.float64)
    if kind in "US":
        return array
    if kind == "O":
        flat = array.ravel()
        _no_missing(np.array([v is None for v in flat], dtype=bool), range(len(flat)), name)
        if all(isinstance(v, str) for v in flat):
            return array.astype(str)
        try:
            return np.asarray(array.tolist(), dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(i for i, v in enumerate(flat) if not _number(v))
            where = _where(name, np.unravel_index(bad, array.shape))
            raise InvalidCall(f"{where} = {flat[bad]!r} is not a number") from None
    raise InvalidCall(f"{name} holds {array.dtype} values; a tensor holds numbers")


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str)


def _torch(tensor: Any, name: str) -> Held:
    """Detached, dense, on the CPU; bfloat16 as its bits, other floats as numpy has them."""
    tensor = tensor.detach()
    if str(tensor.layout) != "torch.strided":
        tensor = tensor.to_dense()
    tensor = tensor.cpu().resolve_conj().resolve_neg().contiguous()
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype == "bfloat16" or dtype.startswith("float8"):
        import torch

        if dtype == "bfloat16":
            return Held(tensor.view(torch.int16).numpy().view(np.uint16), BF16)
        tensor = tensor.to(torch.float32)
    if tensor.is_complex():
        raise InvalidCall(f"{name} holds complex numbers ({dtype})")
    return Held(_checked(tensor.numpy(), name))


def _pandas(value: Any, name: str) -> Held:
    """A Series or a DataFrame: missing values refused by row, categories as class names."""
    import pandas

    if isinstance(value, pandas.Categorical | pandas.Index):
        value = pandas.Series(value)
    if isinstance(value, pandas.DataFrame):
        _no_missing(value.isna().any(axis=1).to_numpy(), value.index, name)
        if all(isinstance(d, pandas.CategoricalDtype) for d in value.dtypes):
            raise InvalidCall(f"{name}: a DataFrame of categories; pass one column of labels")
        return Held(_checked(value.to_numpy(), name))
    if not isinstance(value, pandas.Series):
        return Held(_checked(np.asarray(value), name))
    _no_missing(value.isna().to_numpy(), value.index, name)
    if isinstance(value.dtype, pandas.CategoricalDtype):
        names = tuple(str(c) for c in value.cat.categories)
        return Held(value.cat.codes.to_numpy().astype(np.int64), classes=names)
    if value.dtype == object and len(value) and isinstance(value.iloc[0], list | np.ndarray):
        return Held(_checked(_nested(value.tolist(), name), name))
    kind = getattr(value.dtype, "kind", "O")
    target = None if kind == "O" else getattr(value.dtype, "numpy_dtype", None)
    return Held(_checked(value.to_numpy(dtype=target), name))


def _no_missing(missing: np.ndarray, index: Any, name: str) -> None:
    if missing.any():
        rows = [str(index[i]) for i in np.flatnonzero(missing)[:5]]
        more = f" and {int(missing.sum()) - 5} more" if missing.sum() > 5 else ""
        raise InvalidCall(
            f"{name} has missing values (NA) at rows {', '.join(rows)}{more}: drop or fill them"
        )


def _arrow(value: Any, name: str) -> Held:
    """A pyarrow array, chunked array, table, or anything with the Arrow C interface."""
    import pyarrow

    if isinstance(value, pyarrow.Table | pyarrow.RecordBatch):
        columns = [_arrow(column, name).array for column in value.columns]
        return Held(columns[0] if len(columns) == 1 else np.stack(columns, axis=1))
    if not isinstance(value, pyarrow.Array | pyarrow.ChunkedArray):
        value = _stream(value) if hasattr(value, "__arrow_c_stream__") else pyarrow.array(value)
        if isinstance(value, pyarrow.Table):
            return _arrow(value, name)
    if isinstance(value, pyarrow.ChunkedArray):
        value = value.combine_chunks()
    if value.null_count:
        missing = np.asarray(value.is_null().to_numpy(zero_copy_only=False))
        _no_missing(missing, range(len(value)), name)
    kind = value.type
    if pyarrow.types.is_dictionary(kind):  # its order is the order values first came in
        names = np.asarray(value.dictionary.to_pylist(), dtype=object)
        labels = names[np.asarray(value.indices.to_numpy(zero_copy_only=False), np.int64)]
        return Held(_checked(labels, name))
    if (
        pyarrow.types.is_list(kind)
        or pyarrow.types.is_large_list(kind)
        or (pyarrow.types.is_fixed_size_list(kind))
    ):
        return Held(_rows(value, name))
    return Held(_checked(np.asarray(value.to_numpy(zero_copy_only=False)), name))


def _stream(value: Any) -> Any:
    """A table where the stream is of record batches (a polars DataFrame), else a chunked
    array (a polars Series)."""
    import pyarrow

    try:
        return pyarrow.table(value)
    except (pyarrow.ArrowInvalid, TypeError):
        return pyarrow.chunked_array(value)


def _rows(value: Any, name: str) -> np.ndarray:
    """A list column as a 2-D (or deeper) array: every row of one length."""
    import pyarrow.compute

    lengths = np.asarray(pyarrow.compute.list_value_length(value).to_numpy(zero_copy_only=False))
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.argmax(lengths != lengths[0]))
        raise InvalidCall(
            f"{name} is ragged: row {row} holds {lengths[row]} values, row 0 {lengths[0]}"
        )
    inner = _arrow(value.flatten(), name).array
    width = int(lengths[0]) if len(lengths) else 0
    return inner.reshape(len(value), width, *inner.shape[1:])


def class_indices(
    held: Held, name: str, classes: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """A class-index tensor as int64, and the class names where there are any: strings and
    categories become indices into `classes` (given, or else the data's own); floats must be
    whole numbers (labels stored as 2.0)."""
    array = held.array
    given = tuple(str(c) for c in classes) if classes is not None else None
    if given is not None and len(set(given)) < len(given):
        twice = next(c for c in given if given.count(c) > 1)
        raise InvalidCall(
            f"classes names '{twice}' {given.count(twice)} times; each class has one name"
        )
    if held.classes is not None:  # categories: their codes, in the order of `given` if any
        if given is None:
            return array, held.classes
        return _indices(np.asarray(held.classes)[array], given, name), given
    if array.dtype.kind in "US":
        found = given or tuple(sorted(str(v) for v in np.unique(array)))
        return _indices(array, found, name), found
    if array.dtype.kind == "f":
        return whole(array, name), given
    if array.dtype.kind == "b":
        return array.astype(np.int64), given
    return array, given


def _indices(labels: np.ndarray, classes: tuple[str, ...], name: str) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    flat = labels.ravel()
    indices = np.fromiter((lookup.get(str(v), -1) for v in flat), np.int64, len(flat))
    if (indices < 0).any():
        first = int(np.argmax(indices < 0))
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        where = _where(name, np.unravel_index(first, labels.shape))
        raise InvalidCall(f"{where} = {str(flat[first])!r} is not one of the classes: {shown}")
    return indices.reshape(labels.shape)


def whole(array: np.ndarray, name: str) -> np.ndarray:
    """Floats that are whole numbers (labels stored as 2.0) as int64; anything else refused
    with its first index."""
    if array.dtype.kind != "f":
        return array
    wrong = ~np.isfinite(array) | (array != np.round(array))
    if wrong.any():
        index = np.unravel_index(int(np.argmax(wrong)), array.shape)
        raise InvalidCall(
            f"{_where(name, index)} = {array[index].item()!r} is not a whole number; {name}"
            " holds class indices or labels: integers (2.0 is taken as 2)"
        )
    return array.astype(np.int64)


def _where(name: str, index: tuple[Any, ...]) -> str:
    """("target", (3, 1)) -> "target[3, 1]"."""
    return f"{name}[{', '.join(str(int(i)) for i in index)}]" if index else name
