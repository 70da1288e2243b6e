"""``pyro_bdl.cli.fit_csv``: ``pyro-bdl fit`` on CSV files, and output folders it cannot use."""

import errno
import json
import os

import pytest
import torch

from pyro_bdl import BNN
from pyro_bdl.cli import main
from pyro_bdl.cli.report import MARKER

from .helpers import FIT_QUICK, PNG, expect_error, leftovers, load_netcdf


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
