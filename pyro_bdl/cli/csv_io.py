"""The data of ``pyro-bdl fit``: read a CSV file, encode its target, split its rows.

Every problem with the file is a :class:`~pyro_bdl.cli.common.CLIError` whose message names
the file, the column and the line.

Example::

    >>> task, y, classes, reason = encode_target(["red", "blue", "red"], "auto")
    >>> task, y.tolist(), classes
    ('classification', [1, 0, 1], ['blue', 'red'])
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .common import DTYPE, CLIError, one_line

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["CSVData", "encode_target", "read_csv", "split_rows"]


@dataclass
class CSVData:
    """A CSV file read for ``pyro-bdl fit``: numeric features and the raw target column.

    :param path: the file.
    :param features: the feature columns' names, in the file's order.
    :param x: one row of feature values per data line.
    :param target: the target column's name.
    :param y: the target's cells, stripped, one per data line.
    :param notes: what was done to the file's columns (a dropped row index, ignored columns),
        one sentence each, for the report.

    Example::

        >>> data = CSVData(Path("d.csv"), ["a"], [[1.0], [2.0]], "y", ["u", "v"])
        >>> len(data.x), data.y, data.notes
        (2, ['u', 'v'], [])
    """

    path: Path
    features: list[str]
    x: list[list[float]]
    target: str
    y: list[str]
    notes: list[str] = field(default_factory=list)


def read_csv(
    path: str | Path,
    target: str,
    *,
    features: Sequence[str] | None = None,
    drop: Sequence[str] = (),
) -> CSVData:
    """Read a CSV file with a header row; every feature column must be numeric.

    Cells and column names are stripped; blank lines are skipped. A first column without a name
    that holds the row numbers 0, 1, 2, ... (the index pandas writes unless ``index=False``) is
    dropped, with a note.

    :param path: the CSV file (UTF-8, an optional byte-order mark).
    :param target: the name of the target column (any text).
    :param features: the feature columns to use, in this order (default: every other column).
    :param drop: columns to ignore (not read as numbers); not with ``features``.
    :raises CLIError: for a missing or unreadable file, a malformed CSV (ragged rows, bad
        quoting, no data), a missing target column, an unknown column in ``features`` or
        ``drop``, or a non-numeric or missing feature value.

    Example::

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "d.csv"
        ...     _ = path.write_text(",a, label ,b,id\\n0,1,x,2,p\\n1,3e0, y ,-4,q\\n")
        ...     data = read_csv(path, "label", drop=["id"])
        >>> data.features, data.x, data.y
        (['a', 'b'], [[1.0, 2.0], [3.0, -4.0]], ['x', 'y'])
        >>> data.notes[0]  # doctest: +ELLIPSIS
        'The first column has no name and holds the row numbers 0..1 ...'
    """
    path = Path(path)
    records = _records(path)
    records, notes = _drop_row_index(path, records)
    names = _column_names(path, records)
    rows = records[1:]
    if target not in names:
        raise CLIError(f"target column {target!r} not in {str(path)!r}; its columns are {names}")
    t = names.index(target)
    chosen = _feature_columns(path, names, target, features, drop)
    if not chosen:
        raise CLIError(f"{str(path)!r} has no feature columns besides the target {target!r}")
    ignored = [c for c in names if c not in chosen and c != target]
    if ignored:
        notes.append(f"Columns not used as features: {', '.join(map(repr, ignored))}.")
    index = [names.index(c) for c in chosen]
    x: list[list[float]] = []
    y: list[str] = []
    for n, row in rows:
        x.append([_feature(names[j], n, row[j]) for j in index])
        label = row[t].strip()
        if not label:
            raise CLIError(f"target column {target!r} is empty on line {n}")
        y.append(label)
    return CSVData(path, list(chosen), x, target, y, notes)


def _feature_columns(
    path: Path,
    names: list[str],
    target: str,
    features: Sequence[str] | None,
    drop: Sequence[str],
) -> list[str]:
    """The feature columns: ``features`` as given, or every column but the target and ``drop``."""
    asked = [*(features or ()), *drop]
    unknown = [c for c in asked if c not in names]
    if unknown:
        raise CLIError(
            f"no column(s) {unknown} in {str(path)!r} (--features / --drop); its columns are "
            f"{names}"
        )
    if target in asked:
        raise CLIError(f"the target column {target!r} cannot be a feature or dropped")
    if features is not None:
        repeated = sorted({c for c in features if list(features).count(c) > 1})
        if repeated:
            raise CLIError(f"--features names {repeated} more than once")
        return list(features)
    return [c for c in names if c != target and c not in drop]


def _drop_row_index(
    path: Path, records: list[tuple[int, list[str]]]
) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """Drop a leading unnamed column of row numbers 0, 1, 2, ... (a pandas index)."""
    header = records[0][1]
    if len(header) < 2 or header[0].strip() or any(len(r) != len(header) for _, r in records):
        return records, []
    cells = [row[0].strip() for _, row in records[1:]]
    if cells != [str(i) for i in range(len(cells))]:
        return records, []
    note = (
        f"The first column has no name and holds the row numbers 0..{len(cells) - 1} (the index "
        "pandas writes; `to_csv(..., index=False)` leaves it out): it was dropped."
    )
    return [(n, row[1:]) for n, row in records], [note]


def _records(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank lines of ``path`` as ``(line number, cells)``; at least one."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = [(n, row) for n, row in enumerate(csv.reader(f, strict=True), 1)]
    except FileNotFoundError:
        raise CLIError(f"no such file: {str(path)!r}") from None
    except IsADirectoryError:
        raise CLIError(f"{str(path)!r} is a folder, not a CSV file") from None
    except UnicodeDecodeError as error:
        raise CLIError(f"{str(path)!r} is not UTF-8 text ({error.reason})") from None
    except csv.Error as error:
        raise CLIError(f"malformed CSV {str(path)!r}: {one_line(str(error))}") from None
    except OSError as error:
        raise CLIError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    records = [(n, row) for n, row in records if any(cell.strip() for cell in row)]
    if not records:
        raise CLIError(f"malformed CSV {str(path)!r}: the file is empty")
    return records


def _column_names(path: Path, records: list[tuple[int, list[str]]]) -> list[str]:
    """The header's stripped names, checked: none empty or repeated, every row as wide."""
    header_line, header = records[0]
    names = [h.strip() for h in header]
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise CLIError(
            f"malformed CSV {str(path)!r}: empty column name in the header (line {header_line}, "
            f"column {empty[0]}); name every column (a file written by pandas needs "
            "`to_csv(..., index=False)`)"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CLIError(f"malformed CSV {str(path)!r}: duplicate column name(s) {duplicates}")
    for n, row in records[1:]:
        if len(row) != len(names):
            raise CLIError(
                f"malformed CSV {str(path)!r}: line {n} has {len(row)} fields, the header has "
                f"{len(names)}"
            )
    if len(records) < 3:
        raise CLIError(f"malformed CSV {str(path)!r}: need a header and at least 2 data rows")
    return names


def _feature(column: str, line: int, cell: str) -> float:
    """The value of a feature cell, which must be a finite number."""
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        what = "is empty" if not text else f"is {text!r}"
        raise CLIError(
            f"feature column {column!r} must be numeric, but line {line} {what}"
        ) from None
    if not math.isfinite(value):
        raise CLIError(f"feature column {column!r} must be finite, but line {line} is {text!r}")
    return value


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def encode_target(values: Sequence[str], task: str) -> tuple[str, Tensor, list[str] | None, str]:
    """Decide the task and encode the target column.

    :param values: the raw target strings.
    :param task: ``"auto"``, ``"regression"`` or ``"classification"``.
    :return: ``(task, y, classes, reason)``: y is a float tensor (regression) or long labels
        ``0..K-1`` with ``classes[k]`` the original label of ``k`` (sorted numerically if every
        label is a number, else as text).
    :raises CLIError: a non-numeric regression target, fewer than 2 classes, or numeric classes
        that look continuous (more than :data:`MAX_NUMERIC_CLASSES` distinct numbers with fewer
        than :data:`MIN_ROWS_PER_CLASS` rows each on average).

    Example::

        >>> task, y, classes, reason = encode_target(["3", "10", "3", "9"], "auto")
        >>> task, y.tolist(), classes
        ('classification', [0, 2, 0, 1], ['3', '9', '10'])
        >>> reason
        'auto: the target holds 3 distinct integers'
        >>> encode_target(["0.5", "1.5"], "auto")[1]
        tensor([0.5000, 1.5000])
    """
    numbers = [_as_number(v) for v in values]
    floats = [v for v in numbers if v is not None]
    numeric = len(floats) == len(numbers)
    reason = f"--task {task}"
    if task == "auto":
        distinct = set(numbers) if numeric else set(values)
        integral = numeric and all(v.is_integer() for v in floats)
        if not numeric:
            task, reason = "classification", "auto: the target is not numeric"
        elif integral and len(distinct) <= 10:
            task = "classification"
            reason = f"auto: the target holds {len(distinct)} distinct integers"
        else:
            task, reason = "regression", "auto: the target is numeric"
    if task == "regression":
        if not numeric:
            bad = next(v for v, num in zip(values, numbers, strict=True) if num is None)
            raise CLIError(
                f"a regression target must be numeric, but the target column holds {bad!r}; "
                "pass --task classification for class labels"
            )
        return task, torch.tensor(floats, dtype=DTYPE), None, reason
    if numeric:
        keys = sorted(set(values), key=lambda v: (float(v), v))
        _refuse_continuous_classes(len(set(floats)), len(values))
    else:
        keys = sorted(set(values))
    if len(keys) < 2:
        raise CLIError(f"classification needs at least 2 classes, but the target has {keys}")
    index = {k: i for i, k in enumerate(keys)}
    return task, torch.tensor([index[v] for v in values], dtype=torch.long), keys, reason


#: A numeric target with more distinct values than this ...
MAX_NUMERIC_CLASSES = 20
#: ... and fewer rows per value than this, on average, looks continuous: not class labels.
MIN_ROWS_PER_CLASS = 5


def _refuse_continuous_classes(distinct: int, rows: int) -> None:
    """Refuse numeric "class labels" that look like a continuous quantity."""
    if distinct > MAX_NUMERIC_CLASSES and rows < MIN_ROWS_PER_CLASS * distinct:
        raise CLIError(
            f"the target looks continuous, not like class labels: {distinct} distinct numbers "
            f"in {rows} rows ({rows / distinct:.1f} rows per class); use --task regression, or "
            "write the labels as text (e.g. 'c25') if they really are classes"
        )


def split_rows(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor, bool]:
    """Random train/test indices; with ``fraction == 0`` the test set is the training set.

    :param n: the number of rows.
    :param fraction: the share of rows held out for testing, in ``[0, 1)``; at least one row is
        held out when it is positive.
    :param seed: seed of the permutation.
    :return: ``(train, test, held_out)``: index tensors and whether the test rows are apart.
    :raises CLIError: if fewer than 2 rows would be left for training.

    Example::

        >>> train, test, held_out = split_rows(10, 0.2, seed=0)
        >>> len(train), len(test), held_out
        (8, 2, True)
        >>> split_rows(3, 0.0, seed=0)
        (tensor([0, 1, 2]), tensor([0, 1, 2]), False)
    """
    if fraction == 0:
        everything = torch.arange(n)
        return everything, everything, False
    n_test = max(1, round(fraction * n))
    if n - n_test < 2:
        raise CLIError(
            f"--test-fraction {fraction:g} leaves {n - n_test} of {n} rows for training; "
            "use a smaller fraction or more rows"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:], perm[:n_test], True
