"""Arrays in and out of files by their suffix: .npy, .npz, .csv, and .parquet where pyarrow
is installed."""

import csv
from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


def read(path: Path) -> np.ndarray:
    """One array: a .npy's, a .npz's only (or first) one, a .csv's numbers (a header row is
    skipped; one column becomes a vector), or a Parquet table's columns side by side."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.asarray(np.load(path, allow_pickle=False))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return np.asarray(archive[archive.files[0]])
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        table = _parquet().read_table(path)
        columns = [np.asarray(column.to_numpy()) for column in table.columns]
        return columns[0] if len(columns) == 1 else np.stack(columns, axis=1)
    raise ValueError(f"{path}: the suffix must be one of {', '.join(SUFFIXES)}")


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]
    try:
        values = np.array([[float(cell) for cell in row] for row in rows])
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if values.size and np.all(values == np.round(values)) and "." not in "".join(rows[0]):
        values = values.astype(np.int64)  # labels: integers stay integers
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Named arrays: a .npz of them all, a .npy of the first, or a table (.csv, .parquet) with
    a column per vector (a matrix gives one per column, name_0, name_1, ...)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        np.savez(path, **arrays)  # type: ignore[arg-type]
    elif suffix == ".npy":
        np.save(path, next(iter(arrays.values())))
    elif suffix == ".csv":
        columns = _columns(arrays)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(zip(*(c.tolist() for c in columns.values()), strict=True))
    elif suffix == ".parquet":
        import pyarrow

        _parquet().write_table(pyarrow.table(_columns(arrays)), path)
    else:
        raise ValueError(f"{path}: the suffix must be one of {', '.join(SUFFIXES)}")


def _columns(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    columns = {}
    for name, array in arrays.items():
        rows = np.atleast_1d(array)
        matrix = rows.reshape(rows.shape[0], -1)
        if matrix.shape[1] == 1:
            columns[name] = matrix[:, 0]
        else:
            columns |= {f"{name}_{i}": matrix[:, i] for i in range(matrix.shape[1])}
    return columns


def _parquet() -> Any:
    try:
        import pyarrow.parquet
    except ImportError:
        raise ValueError(
            "Parquet needs pyarrow: pip install 'loss-service-client[parquet]'"
        ) from None
    return pyarrow.parquet
