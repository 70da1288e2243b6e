"""``pyro_bdl.cli.csv_io``: reading the CSV, encoding the target, splitting the rows."""

import pytest
import torch

from pyro_bdl.cli import CLIError, encode_target, main, read_csv
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


def test_a_pandas_index_column_is_dropped_with_a_note(tmp_path, regression_csv, capsys):
    lines = regression_csv.read_text().splitlines()
    indexed = tmp_path / "indexed.csv"  # what DataFrame.to_csv writes without index=False
    indexed.write_text("\n".join([f",{lines[0]}"] + [f"{i},{row}" for i, row in
                                                     enumerate(lines[1:])]) + "\n")  # fmt: skip
    data = read_csv(indexed, "price")
    assert data.features == ["x1", "x2"] and data.x == read_csv(regression_csv, "price").x
    assert "index=False" in data.notes[0]
    out = tmp_path / "out"
    argv = ["fit", str(indexed), "--target", "price", "--out", str(out), "--epochs", "2",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert "holds the row numbers 0..39" in (out / "report.md").read_text()


def test_an_unnamed_column_that_is_not_an_index_is_refused_with_a_hint(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", ["a", "", "y"], [[1, 5, 3], [4, 2, 6], [7, 8, 9]])
    expect_error(capsys, ["fit", str(data), "--target", "y"],
                 r"empty column name in the header \(line 1, column 2\).*index=False")  # fmt: skip
    with pytest.raises(CLIError, match="column 1"):  # not the row numbers 0, 1, 2
        read_csv(write_csv(tmp_path / "e.csv", ["", "a", "y"], [[1, 1, 2], [2, 3, 4]]), "y")


def test_features_and_drop_choose_the_columns(tmp_path, capsys):
    path = write_csv(tmp_path / "d.csv", ["id", "a", "note", "b", "y"],
                     [["p1", 1, "x", 2, 3], ["p2", 4, "y", 5, 6]])  # fmt: skip
    data = read_csv(path, "y", drop=["id", "note"])
    assert data.features == ["a", "b"] and data.x == [[1.0, 2.0], [4.0, 5.0]]
    assert "'id', 'note'" in data.notes[0]
    data = read_csv(path, "y", features=["b", "a"])
    assert data.features == ["b", "a"] and data.x == [[2.0, 1.0], [5.0, 4.0]]
    with pytest.raises(CLIError, match=r"no column\(s\) \['c'\]"):
        read_csv(path, "y", features=["a", "c"])
    with pytest.raises(CLIError, match="target column 'y' cannot be a feature"):
        read_csv(path, "y", drop=["y"])
    with pytest.raises(CLIError, match="more than once"):
        read_csv(path, "y", features=["a", "a"])
    expect_error(
        capsys, ["fit", str(path), "--target", "y"], r"feature column 'id' must be numeric"
    )
    with pytest.raises(SystemExit) as e:  # one or the other
        main(["fit", str(path), "--target", "y", "--features", "a", "--drop", "id"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_a_continuous_target_is_refused_as_classes(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    values = torch.randint(25, 346, (120,), generator=g).tolist()  # like diabetes' target
    rows = [[i % 7, v] for i, v in enumerate(values)]
    path = write_csv(tmp_path / "d.csv", ["a", "target"], rows)
    argv = ["fit", str(path), "--target", "target", "--task", "classification"]
    expect_error(capsys, argv, r"looks continuous, not like class labels: \d+ distinct numbers in "
                 r"120 rows .* use --task regression")  # fmt: skip
    assert encode_target([str(v % 10) for v in values], "classification")[0] == "classification"
    text_labels = [f"c{v}" for v in values]  # the way to insist on classes
    assert len(encode_target(text_labels, "classification")[2]) > 20
