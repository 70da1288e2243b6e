"""The ``pyro-bdl fit`` defaults on scikit-learn's diabetes data, against ``RidgeCV`` (slow).

The default command (an 80/20 split with seed 0, one hidden layer, the convergence rule) must
predict as well as a linear model where the data are nearly linear: RMSE within 3 % of
scikit-learn's ``RidgeCV`` on the same split, and 95 % intervals that cover between 90 % and
98 % of the 88 test targets (a binomial 95 % band for 88 rows is about 0.90–0.99). Before the
convergence rule and the fan-in prior the command gave RMSE 60.1 (RidgeCV 56.2) and coverage
1.000. PSIS-LOO on its netCDF must agree with the held-out density.
"""

import json
import math

import pytest

from pyro_bdl.cli import main

from .helpers import load_netcdf, psis_loo, table_row, write_csv

pytestmark = pytest.mark.slow


def test_diabetes_default_fit_is_as_good_as_ridge_and_calibrated(tmp_path, capsys):
    datasets = pytest.importorskip("sklearn.datasets")
    linear_model = pytest.importorskip("sklearn.linear_model")
    np = pytest.importorskip("numpy")
    bunch = datasets.load_diabetes()  # bundled with scikit-learn: no download
    rows = [[*map(repr, x), repr(t)] for x, t in zip(bunch.data.tolist(), bunch.target.tolist(),
            strict=True)]  # fmt: skip
    data = write_csv(tmp_path / "diabetes.csv", [*bunch.feature_names, "target"], rows)
    out = tmp_path / "fit"
    assert main(["fit", str(data), "--target", "target", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "fit: converged after" in captured.out

    meta = json.loads((out / "model.json").read_text())
    test = np.array(meta["test_rows"])
    train = np.setdiff1d(np.arange(len(bunch.target)), test)
    assert len(test) == 88
    mean, std = bunch.data[train].mean(0), bunch.data[train].std(0)
    ridge = linear_model.RidgeCV().fit((bunch.data[train] - mean) / std, bunch.target[train])
    predicted = ridge.predict((bunch.data[test] - mean) / std)
    ridge_rmse = float(np.sqrt(np.mean((predicted - bunch.target[test]) ** 2)))

    text = (out / "report.md").read_text()
    rmse, _, coverage, *_ = table_row(text, "BNN (meanfield)")
    assert float(rmse) <= 1.03 * ridge_rmse, (rmse, ridge_rmse)
    assert 0.90 <= float(coverage) <= 0.98

    idata = load_netcdf(out / "inference_data.nc")
    loo = psis_loo(idata)
    assert float(loo.p_loo) < 121  # the network's weights: 10 -> 10 -> 1
    held_out = idata.predictions.attrs["lpd"] / len(test)
    assert abs(float(loo.elpd_loo) / len(train) - held_out) < 0.2  # se over 88 rows: ~0.1
    assert not math.isnan(float(loo.pareto_k.max()))
