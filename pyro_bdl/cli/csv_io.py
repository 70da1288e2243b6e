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
from dataclasses import dataclass
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

    Example::

        >>> data = CSVData(Path("d.csv"), ["a"], [[1.0], [2.0]], "y", ["u", "v"])
        >>> len(data.x), data.y
        (2, ['u', 'v'])
    """

    path: Path
    features: list[str]
    x: list[list[float]]
    target: str
    y: list[str]


def read_csv(path: str | Path, target: str) -> CSVData:
    """Read a CSV file with a header row; every column but ``target`` must be numeric.

    Cells and column names are stripped; blank lines are skipped.

    :param path: the CSV file (UTF-8, an optional byte-order mark).
    :param target: the name of the target column (any text).
    :raises CLIError: for a missing or unreadable file, a malformed CSV (ragged rows, bad
        quoting, no data), a missing target column, or a non-numeric or missing feature value.

    Example::

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "d.csv"
        ...     _ = path.write_text("a, label ,b\\n1,x,2\\n3e0, y ,-4\\n")
        ...     data = read_csv(path, "label")
        >>> data.features, data.x, data.y
        (['a', 'b'], [[1.0, 2.0], [3.0, -4.0]], ['x', 'y'])
    """
    path = Path(path)
    records = _records(path)
    names = _column_names(path, records)
    rows = records[1:]
    if target not in names:
        raise CLIError(f"target column {target!r} not in {str(path)!r}; its columns are {names}")
    t = names.index(target)
    features = [c for c in names if c != target]
    if not features:
        raise CLIError(f"{str(path)!r} has no feature columns besides the target {target!r}")
    x: list[list[float]] = []
    y: list[str] = []
    for n, row in rows:
        x.append([_feature(names[j], n, cell) for j, cell in enumerate(row) if j != t])
        label = row[t].strip()
        if not label:
            raise CLIError(f"target column {target!r} is empty on line {n}")
        y.append(label)
    return CSVData(path, features, x, target, y)


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
    if any(not n for n in names):
        raise CLIError(
            f"malformed CSV {str(path)!r}: empty column name in the header (line {header_line})"
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
    :raises CLIError: a non-numeric regression target, or fewer than 2 classes.

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
    else:
        keys = sorted(set(values))
    if len(keys) < 2:
        raise CLIError(f"classification needs at least 2 classes, but the target has {keys}")
    index = {k: i for i, k in enumerate(keys)}
    return task, torch.tensor([index[v] for v in values], dtype=torch.long), keys, reason


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
