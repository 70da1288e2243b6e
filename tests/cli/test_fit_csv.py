"""``pyro_bdl.cli.fit_csv``: ``pyro-bdl fit`` on CSV files, and output folders it cannot use."""

import errno
import json
import math
import os
import re

import pytest
import torch

from pyro_bdl import BNN
from pyro_bdl.cli import main
from pyro_bdl.cli.report import MARKER

from .helpers import (
    FIT_QUICK,
    PNG,
    expect_error,
    leftovers,
    load_netcdf,
    psis_loo,
    table_row,
    write_csv,
)


def test_fit_regression_csv(regression_csv, tmp_path, capsys):
    out = tmp_path / "fitted"
    argv = ["fit", str(regression_csv), "--target", "price", "--out", str(out), *FIT_QUICK]
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "BNN (meanfield)" in printed and "predict the training mean" in printed
    assert "ridge regression" in printed  # the linear baseline
    # 3 epochs cannot converge: a warning on stderr and at the top of the report
    assert captured.err.startswith("pyro-bdl: warning: not converged: the limit of 3 epochs")
    text = (out / "report.md").read_text()
    assert "> **Warning: not converged" in text.split("## Metrics")[0]
    assert "task **regression**" in text and "| model | RMSE | test LL |" in text
    assert "| ridge regression |" in text and "## Model checks" in text
    for png in ("diagnostics.png", "checks.png"):
        assert f"]({png})" in text and (out / png).read_bytes().startswith(PNG)
    meta = json.loads((out / "model.json").read_text())
    assert meta["features"] == ["x1", "x2"] and meta["task"] == "regression"
    assert 45 < meta["target_mean"] < 55 and meta["classes"] is None
    assert len(meta["test_rows"]) == 8 and meta["prior"] == "fan-in"
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    bnn = BNN.load(out / "posterior.pt", net=net.float())
    pred = bnn.predict(torch.zeros(4, 2, dtype=torch.float32), num_samples=3)
    assert pred.samples.shape == (3, 4)
    idata = load_netcdf(out / "inference_data.nc")
    # LOO reads the 32 training rows; the 8 test rows are out-of-sample predictions
    assert idata.log_likelihood["obs"].shape == (1, 5, 32)
    assert idata.observed_data["obs"].shape == (32,)
    assert idata.predictions["obs_log_lik"].shape == (1, 5, 8)
    assert idata.predictions_constant_data["x"].shape == (8, 2)
    assert idata.predictions_constant_data["obs"].shape == (8,)
    assert leftovers(tmp_path) == []


def test_fit_classification_csv_with_string_labels(classification_csv, tmp_path, capsys):
    out = tmp_path / "fitted"
    argv = ["fit", str(classification_csv), "--target", "species", "--guide", "dropout",
            "--hidden", "8", "4", "--test-fraction", "0.2", "--out", str(out), *FIT_QUICK[:4],
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "BNN (dropout)" in printed and "logistic regression" in printed
    text = (out / "report.md").read_text()
    assert "task **classification** (auto: the target is not numeric)" in text
    assert "| logistic regression |" in text and "N(0, 1) prior" in text  # --prior auto
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


def _python_block(text):
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def _csv_rows(path):
    lines = path.read_text().splitlines()[1:]
    return [[float(c) for c in line.split(",")] for line in lines]


def test_report_snippet_predicts_in_original_units(regression_csv, tmp_path, capsys, monkeypatch):
    out = tmp_path / "fitted"
    argv = ["fit", str(regression_csv), "--target", "price", "--out", str(out), "--epochs", "200",
            "--hidden", "8", "--samples", "20", "--seed", "3", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    text = (out / "report.md").read_text()
    meta = json.loads((out / "model.json").read_text())
    data = _csv_rows(regression_csv)  # x1, x2, price
    rows = [data[i][:2] for i in meta["test_rows"]]
    targets = torch.tensor([data[i][2] for i in meta["test_rows"]], dtype=torch.float64)
    code = _python_block(text)
    assert "rows = [[...], [...]]" in code and "seed=3" in code and "num_samples=20" in code
    namespace = {}
    monkeypatch.chdir(out)  # the snippet runs in the report folder
    exec(code.replace("rows = [[...], [...]]", f"rows = {rows!r}"), namespace)
    pred = namespace["pred"]
    mean = pred.mean.double()
    assert 40 < float(mean.mean()) < 60  # the prices' units, not standardised (about 0)
    rmse = float((mean - targets).square().mean().sqrt())
    assert f"{rmse:.3f}" == table_row(text, "BNN (meanfield)")[0]  # the report's number


def _linear_csv(path, n=300):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = 2.0 + x[:, 0] - 0.5 * x[:, 1] + torch.randn(n, generator=g, dtype=torch.float64)
    rows = [[f"{a:.6f}", f"{b:.6f}", f"{c:.6f}"] for (a, b), c in zip(x.tolist(), y.tolist(),
            strict=True)]  # fmt: skip
    return write_csv(path, ["u", "v", "y"], rows)


def test_hidden_zero_is_bayesian_linear_regression_and_loo_reads_the_training_rows(
    tmp_path, capsys
):
    data = _linear_csv(tmp_path / "linear.csv")
    out = tmp_path / "fitted"
    assert main(["fit", str(data), "--target", "y", "--hidden", "0", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert captured.err == ""  # converged: no warning
    assert "fit: converged after" in captured.out
    text = (out / "report.md").read_text()
    assert "linear model 2 → 1 (Bayesian linear regression)" in text and "Warning" not in text
    bnn, ridge = table_row(text, "BNN (meanfield)"), table_row(text, "ridge regression")
    assert float(bnn[0]) <= 1.03 * float(ridge[0])  # RMSE: the same model class
    assert 0.90 <= float(bnn[2]) <= 0.99  # 95 % coverage of 60 test rows
    idata = load_netcdf(out / "inference_data.nc")
    assert idata.log_likelihood["obs"].shape == (1, 100, 240)  # the 240 training rows
    loo = psis_loo(idata)
    # 3 weights (and a fitted noise std): p_loo must be about 3, never beyond the parameters
    assert 1.5 < float(loo.p_loo) < 4.0
    # consistent with the training fit: a new row's expected log density under the fitted
    # N(f(x), noise std^2) is -log(sqrt(2 pi e) noise std); LOO estimates it from the 240
    # training rows (netCDF units: the standardised target, + log std(y)), less p_loo / N
    meta = json.loads((out / "model.json").read_text())
    shift = math.log(meta["target_std"])
    fitted = -0.5 * math.log(2 * math.pi * math.e) - math.log(float(bnn[3])) + shift
    assert abs(float(loo.elpd_loo) / 240 - fitted) < 0.05  # p_loo / N = 0.01, MC noise
    # the truth, y | x ~ N(., 1): the held-out density of the 60 test rows (se about 0.1)
    truth = -0.5 * math.log(2 * math.pi * math.e) + shift
    assert abs(idata.predictions.attrs["lpd"] / 60 - truth) < 0.3
    assert "| BNN (meanfield) |" in text.split("## Model checks")[1]  # k̂ and p_loo reported
