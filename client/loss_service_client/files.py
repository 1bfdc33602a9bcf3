"""Arrays in and out of files: .npy, .npz, .csv, and .parquet where pyarrow is installed.

A file may be followed by the columns to take: `FILE:COL`, `FILE:COL,COL`, or a prefix such as
`FILE:logit_*` (every column whose name starts with it, in the file's order); in an .npz,
`FILE:NAME` takes that array. One column is a vector, several a matrix, a row per line.

CSV is read strictly, and nothing in it is dropped: a blank line, an empty cell, or a cell that
is not a number is an error naming its line and column (a final newline is not a row). Cells
are split by commas, or, where the first line has none, by semicolons or tabs. The
first line is a header where it is not numbers: where the columns are picked by name, where
any of its cells is not a number, or, in a file of labels whose values are words, where its
value does not come again below. Labels may be words (class names); a missing one (an empty
cell, NaN) is an error. Numbers all written as integers are integers.
"""

import csv
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


class FileError(ValueError):
    """A file that cannot be read as asked: its message names the file and why."""


@dataclass(frozen=True)
class Source:
    """A file, and the columns (or the .npz array) to take from it; None: all of them."""

    path: Path
    columns: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, spec: str | Path) -> "Source":
        """FILE, or FILE:COL[,COL...] (a file whose own name holds a colon is taken whole)."""
        text = str(spec)
        head, sep, tail = text.rpartition(":")
        if not sep or not head or Path(text).exists() or "/" in tail or "\\" in tail:
            return cls(Path(text))
        columns = tuple(c.strip() for c in tail.split(","))
        if not all(columns):
            raise FileError(f"{text}: an empty column name; write FILE:COL or FILE:COL,COL")
        return cls(Path(head), columns)

    def __str__(self) -> str:
        return str(self.path) + (":" + ",".join(self.columns) if self.columns else "")


def read(spec: str | Path, labels: bool = False) -> np.ndarray:
    """One array from `spec` (FILE or FILE:COLUMNS); `labels` for a file of labels, whose
    values may be words and may not be missing. FileError names the file and what is wrong."""
    source = Source.parse(spec)
    path = source.path
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise FileError(f"{path}: the suffix must be one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise FileError(f"{path}: no such file")
    try:
        if suffix == ".npy":
            _no_columns(source)
            return np.asarray(np.load(path, allow_pickle=False))
        if suffix == ".npz":
            return _read_npz(source)
        if suffix == ".csv":
            return _read_csv(source, labels)
        return _read_parquet(source)
    except FileError:
        raise
    except Exception as error:  # numpy's, csv's, zipfile's, pyarrow's: each says why
        why = str(error) or type(error).__name__
        raise FileError(f"{path}: cannot be read as {suffix}: {why}") from None


def _no_columns(source: Source) -> None:
    if source.columns:
        raise FileError(f"{source}: a .npy file holds one array and has no columns to pick")


def _read_npz(source: Source) -> np.ndarray:
    with np.load(source.path, allow_pickle=False) as archive:
        names = archive.files
        if not names:
            raise FileError(f"{source.path}: the .npz holds no array")
        if source.columns is None:
            if len(names) > 1:
                raise FileError(
                    f"{source.path} holds {len(names)} arrays: pick one as"
                    f" {source.path}:NAME, of {', '.join(names)}"
                )
            return np.asarray(archive[names[0]])
        if len(source.columns) != 1 or source.columns[0] not in names:
            raise FileError(f"{source}: pick one of its arrays: {', '.join(names)}")
        return np.asarray(archive[source.columns[0]])


def _pick(source: Source, names: list[str]) -> list[int]:
    """The picked columns' positions: by name, or by a prefix ending in *."""
    if source.columns is None:
        return list(range(len(names)))
    picked: list[int] = []
    for wanted in source.columns:
        found = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, wanted)]
        if not found:
            raise FileError(f"{source}: no column '{wanted}'; it has: {', '.join(names)}")
        picked += [i for i in found if i not in picked]
    return picked


def _read_csv(source: Source, labels: bool) -> np.ndarray:
    path = source.path
    with path.open(newline="", encoding="utf-8-sig") as handle:
        text = handle.read()
    reader = csv.reader(text.splitlines(keepends=True), delimiter=_delimiter(text))
    rows, blank = [], None
    for row in reader:
        if not row:
            blank = blank or reader.line_num
            continue
        if blank is not None:
            raise FileError(
                f"{path} line {blank}: a blank line inside the data; remove it, or write the"
                " missing values in their cells"
            )
        rows.append((reader.line_num, row))
    if blank is not None:
        raise FileError(f"{path} line {blank}: a blank line after the data; remove it")
    if not rows:
        raise FileError(f"{path}: the file is empty")
    width = len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise FileError(f"{path} line {line}: {len(row)} cells where line 1 has {width}")
    names = [f"column {i + 1}" for i in range(width)]
    if _header(rows, source, labels):
        names = [cell.strip() for cell in rows[0][1]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise FileError(f"{path} line 1: the header names '{twice[0]}' twice")
        rows = rows[1:]
    picked = _pick(source, names)
    columns = [_column(path, rows, i, names[i], labels) for i in picked]
    if not rows:
        raise FileError(f"{path}: a header and no data")
    if len(columns) == 1:
        return columns[0]
    if any(c.dtype.kind == "U" for c in columns):
        raise FileError(f"{path}: labels that are words come one column at a time")
    return np.stack(columns, axis=1)


def _delimiter(text: str) -> str:
    """Commas, or where the first line has none, semicolons or tabs (as spreadsheets in many
    countries write CSV)."""
    first = text.split("\n", 1)[0]
    if "," in first:
        return ","
    return next((d for d in ";\t" if d in first), ",")


def _header(rows: list[tuple[int, list[str]]], source: Source, labels: bool) -> bool:
    first = rows[0][1]
    if source.columns is not None:
        return True
    if all(_number(cell) for cell in first):
        return False
    if not labels or len(first) != 1:
        return True
    below = {row[0].strip() for _, row in rows[1:]}
    return first[0].strip() not in below  # a header, or a label that comes again


def _column(
    path: Path, rows: list[tuple[int, list[str]]], index: int, name: str, labels: bool
) -> np.ndarray:
    """One column's cells, as integers, floats or (labels only) words."""
    where = f"column {index + 1}" + (f" ({name})" if not name.startswith("column ") else "")
    cells = [(line, row[index].strip()) for line, row in rows]
    for line, cell in cells:
        if not cell:
            raise FileError(f"{path} line {line}, {where}: an empty cell")
    numbers = [_number(cell) for _, cell in cells]
    if labels and not any(numbers):
        return np.array([cell for _, cell in cells])
    if labels and numbers.count(True) < len(numbers) / 2:  # names, with a number among them
        line, cell = cells[numbers.index(True)]
        raise FileError(f"{path} line {line}, {where}: {cell!r} is a number among names")
    if not all(numbers):
        line, cell = cells[numbers.index(False)]
        among = " among numbers" if labels else ""
        raise FileError(f"{path} line {line}, {where}: {cell!r} is not a number{among}")
    if all(_integer(cell) for _, cell in cells):
        return np.array([int(cell) for _, cell in cells], dtype=np.int64)
    values = np.array([float(cell) for _, cell in cells])
    if labels and not np.isfinite(values).all():
        line, cell = cells[int(np.argmax(~np.isfinite(values)))]
        raise FileError(f"{path} line {line}, {where}: {cell!r} is not a label")
    return values


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _integer(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def _read_parquet(source: Source) -> np.ndarray:
    """The picked columns side by side; a list column (as `datasets` writes logits) is a
    matrix; a null is an error naming its rows."""
    from loss_service_client._arrays import hold
    from loss_service_client._errors import InvalidCall

    table = _parquet().read_table(source.path)
    picked = [table.column_names[i] for i in _pick(source, table.column_names)]
    try:
        arrays = [hold(table.column(name), f"{source.path}:{name}").array for name in picked]
    except InvalidCall as error:
        raise FileError(str(error)) from None
    if len(arrays) == 1:
        return arrays[0]
    return np.stack(arrays, axis=1)


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
        raise FileError(f"{path}: the suffix must be one of {', '.join(SUFFIXES)}")


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
        raise FileError(
            "Parquet needs pyarrow: pip install 'loss-service-client[parquet]'"
        ) from None
    return pyarrow.parquet
