"""``pyro_bdl.cli.demo``: ``pyro-bdl quickstart`` and ``pyro-bdl demo``."""

import re

from pyro_bdl.cli import main
from pyro_bdl.cli.report import MARKER

from .helpers import PNG, leftovers, load_netcdf, psis_loo


def test_quickstart_prints_a_table(capsys):
    assert main(["quickstart", "--epochs", "20", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") == 5 and out.startswith("| x |") and "epistemic std" in out
    assert re.search(r"ELBO / datum -?\d", out) and "fit: not converged" in out


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
    assert "| ridge regression |" in text and "| logistic regression |" in text  # baselines
    assert "> **Warning: not converged" in text  # 20 epochs: nothing converges
    for png in ("regression_bands.png", "reliability.png", "elbo_traces.png", "ppc.png",
                "regression_test.png"):  # fmt: skip
        assert f"]({png})" in text
        data = (out / png).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    checks = text.split("## Model checks")[1]
    rows = {"regression": (40, 50), "digits": (150, 150)}  # QUICK: training rows, test rows
    weights = {"regression_meanfield": 61, "regression_dropout": 601}
    for task in ("regression", "digits"):
        for guide in ("meanfield", "dropout"):
            name = f"{task}_{guide}.nc"
            assert f"`{name}`" in text
            idata = load_netcdf(out / name)
            groups = {"posterior", "log_likelihood", "observed_data", "predictions",
                      "predictions_constant_data"}  # fmt: skip
            assert groups <= set(idata.groups())
            n_train, n_test = rows[task]
            assert idata.log_likelihood["obs"].shape == (1, 8, n_train)  # what LOO reads
            assert idata.predictions["obs_log_lik"].shape == (1, 8, n_test)  # held out
            loo = psis_loo(idata)
            assert 0 <= float(loo.p_loo) < weights.get(f"{task}_{guide}", 7510)
            model = f"{task}, {'mean-field' if guide == 'meanfield' else 'MC dropout'}"
            assert f"| {model} | {float(loo.elpd_loo) / n_train:.3f} |" in checks
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
