"""The pyro-bdl command: demo, fit, quickstart, help, and one-line errors with nothing written."""

import argparse
import errno
import json
import os
import re
import warnings

import pytest
import torch

from pyro_bdl import BNN, __version__
from pyro_bdl.cli import build_parser, encode_target, main, read_csv
from pyro_bdl.cli.report import MARKER, StagedFolder, markdown_table, text_table

PNG = b"\x89PNG\r\n\x1a\n"
FIT_QUICK = ["--epochs", "3", "--samples", "5", "--hidden", "8", "--no-progress"]


def subparsers():
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture
def regression_csv(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    y = 50 + 3 * x[:, 0] - x[:, 1] + 0.1 * torch.randn(40, generator=g)
    rows = [
        [f"{a:.4f}", f"{b:.4f}", f"{c:.4f}"]
        for (a, b), c in zip(x.tolist(), y.tolist(), strict=True)
    ]
    return write_csv(tmp_path / "reg.csv", ["x1", "x2", "price"], rows)


@pytest.fixture
def classification_csv(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(45, 3, generator=g)
    names = ["setosa", "versicolor", "virginica"]
    rows = [[names[i % 3], f"{a:.3f}", f"{b + i % 3:.3f}", f"{c:.3f}"] for i, (a, b, c) in
            enumerate(x.tolist())]  # fmt: skip
    return write_csv(tmp_path / "iris.csv", ["species", "f1", "f2", "f3"], rows)


def leftovers(folder):
    """Staging folders that a run left behind."""
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def load_netcdf(path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        import arviz as az
    return az.from_netcdf(str(path))


# ----------------------------------------------------------------------------- help, version
def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "fit", "quickstart"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


REQUIRED = {
    "demo": {"--out", "--seed", "--quick", "--no-progress"},
    "fit": {"--target", "--task", "--guide", "--epochs", "--hidden", "--lr", "--batch-size",
            "--samples", "--out", "--seed", "--test-fraction", "--no-progress"},
}  # fmt: skip


@pytest.mark.parametrize("command", ["demo", "fit", "quickstart"])
def test_subcommand_help_lists_every_option(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    options = set()
    for action in subparsers()[command]._actions:
        assert action.help and action.help != argparse.SUPPRESS, action.dest
        options.update(action.option_strings)
        for flag in action.option_strings:
            assert flag in out
    assert REQUIRED.get(command, set()) <= options
    if command == "fit":
        assert "DATA.csv" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


# ----------------------------------------------------------------------------- quickstart
def test_quickstart_prints_a_table(capsys):
    assert main(["quickstart", "--epochs", "20", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") == 5 and out.startswith("| x |") and "epistemic std" in out
    assert re.search(r"ELBO / datum -?\d", out)


def test_bad_subcommand_argument():
    with pytest.raises(SystemExit) as e:
        main(["quickstart", "--epochs", "many"])
    assert e.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "x.csv"],  # no --target
        ["fit", "x.csv", "--target", "y", "--epochs", "0"],
        ["fit", "x.csv", "--target", "y", "--test-fraction", "1"],
        ["fit", "x.csv", "--target", "y", "--lr", "-1"],
        ["fit", "x.csv", "--target", "y", "--guide", "laplace"],
        ["demo", "--seed", "-3"],
    ],
)
def test_bad_option_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


# ----------------------------------------------------------------------------- demo
def test_demo_quick_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "mean-field" in printed and "distilled student" in printed
    assert f"report: {out / 'report.md'}" in printed
    text = (out / "report.md").read_text()
    assert "| model | RMSE | test LL | 95% coverage |" in text
    assert "| model | accuracy | NLL | ECE | Brier |" in text
    assert re.search(r"\| distilled student \| \d\.\d{3} \|", text)
    for png in ("regression_bands.png", "reliability.png", "elbo_traces.png"):
        assert f"]({png})" in text
        data = (out / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    for task in ("regression", "digits"):
        for guide in ("meanfield", "dropout"):
            name = f"{task}_{guide}.nc"
            assert f"`{name}`" in text
            idata = load_netcdf(out / name)
            assert {"posterior", "log_likelihood", "observed_data"} <= set(idata.groups())
            assert idata.log_likelihood["obs"].shape[:2] == (1, 8)
    assert (out / MARKER).is_file()
    assert leftovers(tmp_path) == []


def test_demo_refuses_an_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("mine")
    assert main(["demo", "--quick", "--out", str(target), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("pyro-bdl: error: ") and captured.err.count("\n") == 1
    assert target.read_text() == "mine" and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- fit
def test_fit_regression_csv(regression_csv, tmp_path, capsys):
    out = tmp_path / "fitted"
    argv = ["fit", str(regression_csv), "--target", "price", "--out", str(out), *FIT_QUICK]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "BNN (meanfield)" in printed and "predict the training mean" in printed
    text = (out / "report.md").read_text()
    assert "task **regression**" in text and "| model | RMSE | test LL |" in text
    assert (out / "diagnostics.png").read_bytes().startswith(PNG)
    meta = json.loads((out / "model.json").read_text())
    assert meta["features"] == ["x1", "x2"] and meta["task"] == "regression"
    assert 45 < meta["target_mean"] < 55 and meta["classes"] is None
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    bnn = BNN.load(out / "posterior.pt", net=net.float())
    pred = bnn.predict(torch.zeros(4, 2, dtype=torch.float32), num_samples=3)
    assert pred.samples.shape == (3, 4)
    idata = load_netcdf(out / "inference_data.nc")
    assert idata.log_likelihood["obs"].shape == (1, 5, 8)  # 8 = 20 % of 40 rows
    assert leftovers(tmp_path) == []


def test_fit_classification_csv_with_string_labels(classification_csv, tmp_path, capsys):
    out = tmp_path / "fitted"
    argv = ["fit", str(classification_csv), "--target", "species", "--guide", "dropout",
            "--hidden", "8", "4", "--test-fraction", "0.2", "--out", str(out), *FIT_QUICK[:4],
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "BNN (dropout)" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert "task **classification** (auto: the target is not numeric)" in text
    assert "| 0 | `setosa` | 15 |" in text and "| 2 | `virginica` | 15 |" in text
    meta = json.loads((out / "model.json").read_text())
    assert meta["classes"] == ["setosa", "versicolor", "virginica"] and meta["hidden"] == [8, 4]
    assert (out / "posterior.pt").is_file()
    idata = load_netcdf(out / "inference_data.nc")
    assert list(idata.posterior["class"].values) == meta["classes"]


def test_fit_replaces_its_previous_report(regression_csv, tmp_path, capsys):
    out = tmp_path / "fitted"
    out.mkdir()
    (out / MARKER).write_text("")
    (out / "stale.txt").write_text("old run")
    argv = ["fit", str(regression_csv), "--target", "price", "--out", str(out), *FIT_QUICK]
    argv[argv.index("--epochs") + 1] = "1"
    assert main(argv) == 0
    assert not (out / "stale.txt").exists() and (out / "report.md").is_file()
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- errors
def expect_error(capsys, argv, message):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("pyro-bdl: error: ") and captured.err.count("\n") == 1
    assert re.search(message, captured.err), captured.err
    assert captured.out == ""


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


def test_output_folders_that_cannot_be_used(tmp_path, capsys, regression_csv):
    fit = ["fit", str(regression_csv), "--target", "price", *FIT_QUICK]
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    expect_error(capsys, fit + ["--out", str(a_file)], r"exists and is not a folder")
    expect_error(capsys, fit + ["--out", str(a_file / "sub")], r"is not a folder")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.md").write_text("precious")
    expect_error(capsys, fit + ["--out", str(theirs)], r"is not a pyro-bdl report")
    assert a_file.read_text() == "keep" and os.listdir(theirs) == ["notes.md"]
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_parent(tmp_path, capsys, regression_csv):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        argv = ["fit", str(regression_csv), "--target", "price", "--out", str(locked / "r")]
        expect_error(capsys, argv, r"cannot write output folder")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_location_fails_before_fitting(tmp_path, capsys, regression_csv, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted although the output cannot be written")

    monkeypatch.setattr("tempfile.mkdtemp", denied)
    monkeypatch.setattr(BNN, "fit", no_fit)
    argv = ["fit", str(regression_csv), "--target", "price", "--out", str(tmp_path / "r")]
    expect_error(capsys, argv, r"cannot write output folder .*: Permission denied")
    expect_error(capsys, ["demo", "--out", str(tmp_path / "d")], r"Permission denied")
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_a_failure_while_writing_leaves_nothing(tmp_path, capsys, regression_csv, monkeypatch):
    def disk_full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(BNN, "save", disk_full)
    out = tmp_path / "out"
    argv = ["fit", str(regression_csv), "--target", "price", "--out", str(out), *FIT_QUICK]
    argv[argv.index("--epochs") + 1] = "1"
    expect_error(capsys, argv, r"posterior\.pt: No space left on device")
    assert not out.exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- pieces
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


def test_staged_folder_commits_atomically(tmp_path):
    staged = StagedFolder.prepare(tmp_path / "deep" / "er" / "out")
    assert staged.path.parent == tmp_path and staged.path.name.startswith(".out.partial-")
    (staged.path / "a.txt").write_text("1")
    target = staged.commit()
    assert target == tmp_path / "deep" / "er" / "out" and (target / "a.txt").read_text() == "1"
    again = StagedFolder.prepare(target)
    (again.path / "b.txt").write_text("2")
    again.commit()
    assert sorted(os.listdir(target)) == [MARKER, "b.txt"]
    discarded = StagedFolder.prepare(tmp_path / "x")
    discarded.discard()
    assert os.listdir(tmp_path) == ["deep"]


def test_tables():
    assert markdown_table(["m", "v"], [["a", 0.5], ["b", None]]).splitlines() == [
        "| m | v |",
        "|:--|--:|",
        "| a | 0.500 |",
        "| b | — |",
    ]
    assert text_table(["m", "s"], [["a", 1.25]], digits=[0, 1]).splitlines() == ["m    s", "a  1.2"]
