"""``pyro_bdl.cli.csv_io``: reading the CSV, encoding the target, splitting the rows."""

import pytest
import torch

from pyro_bdl.cli import encode_target, read_csv
from pyro_bdl.cli.csv_io import split_rows

from .helpers import expect_error, leftovers, write_csv


@pytest.mark.parametrize(
    "content, target, message",
    [
        ("a,b,y\n1,2,3\n4,5\n6,7,8\n", "y", r"malformed CSV .* line 3 has 2 fields"),
        ('a,b,y\n1,"2,3\n4,5,6\n', "y", r"malformed CSV"),
        ("", "y", r"malformed CSV .* empty"),
        ("a,b,y\n1,2,3\n", "y", r"at least 2 data rows"),
        ("a,a,y\n1,2,3\n4,5,6\n", "y", r"duplicate column"),
        ("a,b,y\n1,2,3\n4,5,6\n", "z", r"target column 'z' not in .*\['a', 'b', 'y'\]"),
        ("a,b,y\n1,2,3\n4,oops,6\n", "y", r"feature column 'b' must be numeric, but line 3"),
        ("a,b,y\n1,,3\n4,5,6\n", "y", r"feature column 'b' .* line 2 is empty"),
        ("a,b,y\n1,nan,3\n4,5,6\n", "y", r"must be finite"),
        ("y\n1\n2\n", "y", r"no feature columns"),
        ("a,y\n1,a\n2,a\n3,a\n", "y", r"at least 2 classes"),
        ("a,y\n1,\n2,3\n", "y", r"target column 'y' is empty on line 2"),
    ],
)
def test_bad_csv_is_one_line_and_writes_nothing(tmp_path, capsys, content, target, message):
    data = tmp_path / "data.csv"
    data.write_text(content)
    out = tmp_path / "out"
    expect_error(capsys, ["fit", str(data), "--target", target, "--out", str(out)], message)
    assert not out.exists() and leftovers(tmp_path) == []


def test_missing_file_and_bad_task(tmp_path, capsys, regression_csv):
    out = tmp_path / "out"
    expect_error(capsys, ["fit", str(tmp_path / "nope.csv"), "--target", "y"], r"no such file")
    labels = tmp_path / "labels.csv"
    write_csv(labels, ["a", "y"], [[1, "red"], [2, "blue"], [3, "red"]])
    argv = ["fit", str(labels), "--target", "y", "--task", "regression", "--out", str(out)]
    expect_error(capsys, argv, r"regression target must be numeric, but .* 'red'")
    argv = ["fit", str(regression_csv), "--target", "price", "--test-fraction", "0.99"]
    expect_error(capsys, argv + ["--out", str(out)], r"leaves 0 of 40 rows for training")
    assert not out.exists() and leftovers(tmp_path) == []


def test_target_encoding():
    task, y, classes, reason = encode_target(["3", "10", "3", "9"], "auto")
    assert task == "classification" and classes == ["3", "9", "10"] and y.tolist() == [0, 2, 0, 1]
    assert "3 distinct integers" in reason
    task, y, classes, _ = encode_target(["0.5", "1.5", "2"], "auto")
    assert task == "regression" and classes is None and y.dtype == torch.float32
    task, y, classes, _ = encode_target(["1", "2", "3"], "regression")
    assert task == "regression" and y.tolist() == [1.0, 2.0, 3.0]


def test_read_csv_strips_and_keeps_column_order(tmp_path):
    path = write_csv(tmp_path / "d.csv", [" a ", "label", "b"], [[1, " x ", 2], ["3e0", "y", -4]])
    data = read_csv(path, "label")
    assert data.features == ["a", "b"] and data.x == [[1.0, 2.0], [3.0, -4.0]]
    assert data.y == ["x", "y"]


def test_split_rows_holds_out_a_seeded_share():
    train, test, held_out = split_rows(10, 0.25, seed=3)
    assert held_out and len(test) == 2 and len(train) == 8  # round(2.5) = 2
    assert sorted(torch.cat([train, test]).tolist()) == list(range(10))
    again = split_rows(10, 0.25, seed=3)
    assert torch.equal(again[0], train) and torch.equal(again[1], test)
    train, test, held_out = split_rows(4, 0.0, seed=0)
    assert not held_out and train.tolist() == test.tolist() == [0, 1, 2, 3]
