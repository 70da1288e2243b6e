"""The ArviZ diagnostics example runs end to end at its smallest budget."""

from pathlib import Path

import pytest

from .conftest import load_script

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arviz_diagnostics.py"


def load_example():
    return load_script(EXAMPLE, "arviz_diagnostics")


def test_quick_run_compares_three_fits_and_writes_plots(tmp_path, capsys):
    result = load_example().main(["--quick", "--seed", "0", "--out", str(tmp_path)])
    fits = {"mean-field", "dropout", "NUTS"}
    assert set(result["compare"]) == fits
    assert sorted(row["rank"] for row in result["compare"].values()) == [0, 1, 2]
    assert sum(row["weight"] for row in result["compare"].values()) == pytest.approx(1.0)
    # only the mean-field guide has a density over the weights
    assert isinstance(result["khat"]["mean-field"], float)
    assert result["khat"]["dropout"] is None and result["khat"]["NUTS"] is None
    assert result["khat_reading"]["mean-field"] in ("good", "usable", "unreliable")
    assert result["khat_reading"]["dropout"].startswith("n/a")
    assert set(result["loo_max_khat"]) == fits
    assert len(result["plots"]) == 3 and all(Path(p).stat().st_size > 0 for p in result["plots"])
    out = capsys.readouterr().out
    assert "| fit | rank | elpd_loo |" in out and "PSIS k̂" in out
