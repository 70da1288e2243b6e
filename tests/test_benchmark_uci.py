"""benchmarks/uci.py runs end to end at its smallest budget and returns a well-formed table."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_bdl.datasets import find_uci_dir
from pyro_bdl.hierarchical import ARDPrior, HorseshoePrior, LayerScalePrior
from pyro_bdl.priors import LearnedNormalPrior

from .conftest import load_script

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "uci.py"


@pytest.fixture(scope="module")
def uci():
    return load_script(_PATH, "benchmark_uci")


def _write_set(root: Path, name: str, n: int, d: int, seed: int) -> None:
    """A tiny data set in the layout of ../shared/data/uci: y = linear(x) + noise, last column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = 3.0 + x @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    folder = root / name
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", np.column_stack([x, y]))
    np.savetxt(folder / "index_features.txt", np.arange(d), fmt="%d")
    np.savetxt(folder / "index_target.txt", [d], fmt="%d")
    (folder / "n_hidden.txt").write_text("8\n")
    (folder / "n_epochs.txt").write_text("4\n")


def _check_results(results, datasets, guides, splits):
    assert list(results) == datasets
    for name in datasets:
        assert list(results[name]) == guides
        for s in results[name].values():
            assert len(s["splits"]) == splits
            keys = ("rmse", "rmse_se", "ll", "ll_se") if splits > 1 else ("rmse", "ll")
            for key in keys:
                assert math.isfinite(s[key]), (name, key, s[key])
            assert s["rmse"] > 0 and s["ll"] < 10


def test_quick_synthetic(uci, tmp_path):
    _write_set(tmp_path, "toyA", 60, 3, seed=0)
    _write_set(tmp_path, "toyB", 40, 2, seed=1)
    out = tmp_path / "table.md"
    argv = ["--quick", "--data-dir", str(tmp_path), "--datasets", "toyA", "toyB"]
    results = uci.main([*argv, "--tau-grid", "5", "10", "--output", str(out)])
    _check_results(results, ["toyA", "toyB"], ["dropout", "meanfield"], 2)
    for r in results["toyA"]["dropout"]["splits"]:
        assert r["p"] in (0.01, 0.05) and r["tau"] in (5.0, 10.0)
    text = out.read_text()
    assert text.count("| guide | splits | RMSE |") == 2
    rows = [line for line in text.splitlines() if re.match(r"\| (dropout|meanfield) \|", line)]
    assert len(rows) == 4
    assert all(line.count("|") == 10 and "n/a" in line for line in rows)


def test_unknown_dataset_needs_a_tau_grid(uci, tmp_path):
    _write_set(tmp_path, "toyA", 30, 2, seed=0)
    with pytest.raises(ValueError, match="--tau-grid"):
        uci.main(["--quick", "--data-dir", str(tmp_path), "--datasets", "toyA"])


def _uci_dir():
    try:
        return find_uci_dir()
    except FileNotFoundError:
        return None


@pytest.mark.skipif(
    _uci_dir() is None or not (_uci_dir() / "bostonHousing").is_dir(),
    reason="shared UCI data not found",
)
def test_quick_boston(uci):
    results = uci.main(["--quick", "--datasets", "bostonHousing", "--splits", "1"])
    _check_results(results, ["bostonHousing"], ["dropout", "meanfield"], 1)
    # published numbers sit beside ours, and 10 epochs already beat predicting the mean
    assert results["bostonHousing"]["dropout"]["rmse"] < 9.0


@pytest.mark.skipif(
    _uci_dir() is None or not (_uci_dir() / "bostonHousing").is_dir(),
    reason="shared UCI data not found",
)
def test_posteriors_quick_boston(uci, tmp_path):
    out = tmp_path / "boston.md"
    argv = ["--posteriors", "--quick", "--datasets", "bostonHousing", "--splits", "1"]
    results = uci.main([*argv, "--output", str(out)])
    _check_results(results, ["bostonHousing"], list(uci.POSTERIORS), 1)
    text = out.read_text()
    # the published anchors print beside ours: Deep Ensembles (Table 1, NLL -> LL) and PBP
    assert "| ensemble | 1 |" in text and "3.28 ± 1.00 (sd) | -2.41 ± 0.25 (sd)" in text
    assert "| PBP (published) | 20 |" in text and "-2.57" in text


def test_posteriors_quick_synthetic(uci, tmp_path):
    _write_set(tmp_path, "toyA", 60, 3, seed=0)
    out = tmp_path / "posteriors.md"
    argv = ["--posteriors", "--quick", "--data-dir", str(tmp_path), "--datasets", "toyA"]
    results = uci.main([*argv, "--tau-grid", "5", "10", "--output", str(out)])
    methods = list(uci.POSTERIORS)
    _check_results(results, ["toyA"], methods, 2)
    for method in ("ensemble", "laplace-last", "laplace-all", "swag"):
        s = results["toyA"][method]
        assert 0 < s["fit_seconds"] <= s["seconds"] / 2 + 1e-9  # fit time within the cell time
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0][2:] for r in rows] == ["method", *methods]  # no PBP row: no anchor
    assert all(line.count("|") == 11 for line in rows)


def test_posteriors_subset_of_methods(uci, tmp_path):
    """``--guides`` picks posterior types too; without dropout no tau grid is needed."""
    _write_set(tmp_path, "toyB", 40, 2, seed=1)
    argv = ["--posteriors", "--quick", "--data-dir", str(tmp_path), "--datasets", "toyB"]
    results = uci.main([*argv, "--guides", "ensemble", "swag", "--splits", "1"])
    _check_results(results, ["toyB"], ["ensemble", "swag"], 1)


def test_meanfield_prior_rows_quick_synthetic(uci, tmp_path):
    """``meanfield-{learned,layerscale,ard,horseshoe}``: mean-field VI with those priors (#20)."""
    _write_set(tmp_path, "toyA", 60, 3, seed=0)
    out = tmp_path / "priors.md"
    guides = ["meanfield", *(f"meanfield-{p}" for p in uci.PRIORS)]
    argv = ["--quick", "--data-dir", str(tmp_path), "--datasets", "toyA", "--splits", "1"]
    results = uci.main([*argv, "--guides", *guides, "--output", str(out)])
    _check_results(results, ["toyA"], guides, 1)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| meanfield")]
    assert [r.split(" | ")[0][2:] for r in rows] == guides
    assert "horseshoe BNN (published)" not in out.read_text()  # no anchor for a toy set


def test_meanfield_priors_are_the_named_ones(uci):
    kinds = {
        "learned": LearnedNormalPrior,
        "layerscale": LayerScalePrior,
        "ard": ARDPrior,
        "horseshoe": HorseshoePrior,
    }
    assert set(kinds) == set(uci.PRIORS)
    for name, kind in kinds.items():
        assert isinstance(uci.make_prior(name), kind)
    with pytest.raises(ValueError, match="horseshoe"):
        uci.make_prior("laplace")
    # the fit really samples the horseshoe's hyper-sites
    x = torch.randn(20, 3, dtype=uci.DTYPE)
    cfg = {"n_hidden": 4, "epochs": 2, "lr_meanfield": 1e-2}
    bnn = uci.fit_meanfield(x, x.sum(-1), cfg, seed=0, prior="horseshoe")
    assert "global_scale" in bnn.bayesian_model.hyper_site_names


def test_horseshoe_anchor_is_printed_beside_the_horseshoe_row(uci):
    s = {"rmse": 2.5, "rmse_se": 0.1, "ll": -2.6, "ll_se": 0.05, "seconds": 10.0, "splits": [{}]}
    text = uci.format_table({"bostonHousing": {"meanfield": s, "meanfield-horseshoe": s}})
    assert "| horseshoe BNN (published) | | | | | -2.54 |" in text
    assert "-2.90 ± 0.07" in text  # the N(0, 1) mean-field anchor of Gal & Ghahramani
    text = uci.format_table({"bostonHousing": {"meanfield": s}})
    assert "horseshoe BNN" not in text
