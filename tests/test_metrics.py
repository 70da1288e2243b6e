"""Tests for pyro_bdl.metrics against direct float64 computations and scikit-learn."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from pyro_bdl.metrics import (
    CalibrationResult,
    accuracy,
    brier,
    coverage,
    ece,
    gaussian_test_ll,
    nll,
    ood_auroc,
    rmse,
)
from pyro_bdl.uncertainty import Prediction

DTYPE = torch.float64


def _dirichlet_draws(seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    gamma = -torch.log(torch.rand(shape, generator=gen, dtype=DTYPE))  # Dirichlet(1, ..., 1)
    return gamma / gamma.sum(-1, keepdim=True)


def _labels(seed: int, n: int, c: int) -> torch.Tensor:
    return torch.randint(c, (n,), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ classification


def test_nll_matches_direct_float64():
    probs = _dirichlet_draws(0, (7, 20, 4))
    y = _labels(1, 20, 4)
    p, t = probs.numpy(), y.numpy()
    expected = -np.mean(np.log(p[:, np.arange(20), t].mean(0)))
    assert nll(probs, y) == pytest.approx(expected, rel=0, abs=1e-12)
    pointwise = nll(probs, y, reduction="none")
    assert pointwise.shape == (20,)
    assert nll(probs, y, reduction="sum") == pytest.approx(float(pointwise.sum()), abs=1e-12)
    assert nll(Prediction("categorical", samples=probs), y) == pytest.approx(expected, abs=1e-12)


def test_nll_is_not_the_mean_of_per_draw_log_probs():
    probs = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]], dtype=DTYPE)
    y = torch.tensor([0])
    per_draw_mean = -(math.log(0.9) + math.log(0.1)) / 2  # 1.204: the wrong (Jensen) answer
    assert nll(probs, y) == pytest.approx(math.log(2), abs=1e-12)
    assert nll(probs, y) < per_draw_mean - 0.5
    hard = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=DTYPE)  # a draw with p(y) = 0
    assert nll(hard, y) == pytest.approx(math.log(2), abs=1e-12)


def test_accuracy_and_brier_known_values():
    probs = torch.tensor(
        [[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [[0.5, 0.5], [0.4, 0.6], [0.2, 0.8]]],
        dtype=DTYPE,
    )  # mean: [.7, .3], [.3, .7], [.4, .6]
    y = torch.tensor([0, 0, 1])
    assert accuracy(probs, y) == pytest.approx(2 / 3)
    expected = ((0.3**2 + 0.3**2) + (0.7**2 + 0.7**2) + (0.4**2 + 0.4**2)) / 3
    assert brier(probs, y) == pytest.approx(expected, abs=1e-12)
    assert isinstance(accuracy(probs, y), float)


def test_bernoulli_prediction_scored_as_two_classes():
    p1 = _dirichlet_draws(2, (5, 30, 2))[..., 1]
    y = _labels(3, 30, 2)
    two_class = torch.stack([1 - p1, p1], -1)
    pred = Prediction("bernoulli", samples=p1)
    assert accuracy(pred, y.double()) == accuracy(two_class, y)
    assert brier(pred, y) == pytest.approx(brier(two_class, y), abs=1e-12)
    assert nll(pred, y.double()) == pytest.approx(nll(two_class, y), abs=1e-12)
    assert ece(pred, y).ece == pytest.approx(ece(two_class, y).ece, abs=1e-12)


def _calibrated_binary(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    conf = 0.5 + 0.5 * torch.rand(n, generator=gen, dtype=DTYPE)
    correct = torch.rand(n, generator=gen, dtype=DTYPE) < conf
    y = torch.where(correct, 0, 1)
    probs = torch.stack([conf, 1 - conf], -1).unsqueeze(0)
    return probs, y


def test_ece_of_calibrated_predictor_shrinks_with_n():
    """Sampling noise only: ECE ~ sqrt(p(1-p) / n_bin); at N = 1e5 it must be below 0.01."""
    small = ece(*_calibrated_binary(1_000, seed=4))
    large = ece(*_calibrated_binary(100_000, seed=5))
    assert large.ece < small.ece
    assert large.ece < 0.01
    quantile = ece(*_calibrated_binary(100_000, seed=5), strategy="quantile")
    assert quantile.ece < 0.01


def test_ece_of_miscalibrated_predictor_is_analytic():
    # 1000 points at confidence 0.9 with 70 % right, 1000 at 0.6 with 60 % right:
    # ECE = 0.5 * |0.7 - 0.9| + 0.5 * |0.6 - 0.6| = 0.1
    conf = torch.cat([torch.full((1000,), 0.9), torch.full((1000,), 0.6)]).to(DTYPE)
    probs = torch.stack([conf, 1 - conf], -1).unsqueeze(0)
    y = torch.cat([(torch.arange(1000) >= 700).long(), (torch.arange(1000) >= 600).long()])
    for strategy in ("uniform", "quantile"):
        result = ece(probs, y, n_bins=10, strategy=strategy)
        assert isinstance(result, CalibrationResult)
        assert result.ece == pytest.approx(0.1, abs=1e-12)
        assert int(result.count.sum()) == 2000
    result = ece(probs, y, n_bins=10)
    torch.testing.assert_close(result.bin_lower, torch.linspace(0, 0.9, 10, dtype=DTYPE))
    full = result.count > 0
    assert result.count[full].tolist() == [1000, 1000]
    torch.testing.assert_close(result.confidence[full], torch.tensor([0.6, 0.9], dtype=DTYPE))
    torch.testing.assert_close(result.accuracy[full], torch.tensor([0.6, 0.7], dtype=DTYPE))
    assert torch.isnan(result.confidence[~full]).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=40),
    st.lists(st.integers(0, 5), min_size=1, max_size=40),
)
def test_ood_auroc_matches_sklearn_with_ties(score_in, score_out):
    s_in = torch.tensor(score_in, dtype=DTYPE)
    s_out = torch.tensor(score_out, dtype=DTYPE)
    labels = np.r_[np.zeros(len(score_in)), np.ones(len(score_out))]
    expected = roc_auc_score(labels, np.r_[score_in, score_out])
    assert ood_auroc(s_in, s_out) == pytest.approx(expected, abs=1e-12)


def test_ood_auroc_continuous_and_extremes():
    gen = torch.Generator().manual_seed(6)
    s_in, s_out = torch.randn(300, generator=gen), torch.randn(200, generator=gen) + 1
    expected = roc_auc_score(np.r_[np.zeros(300), np.ones(200)], np.r_[s_in, s_out])
    assert ood_auroc(s_in, s_out) == pytest.approx(expected, abs=1e-12)
    assert ood_auroc(torch.zeros(3), torch.ones(2)) == 1.0
    assert ood_auroc(torch.ones(3), torch.zeros(2)) == 0.0
    assert ood_auroc(torch.ones(3), torch.ones(2)) == 0.5


# ------------------------------------------------------------------ regression


def test_rmse_uses_mean_over_draws():
    gen = torch.Generator().manual_seed(7)
    loc = torch.randn(6, 15, generator=gen, dtype=DTYPE)
    y = torch.randn(15, generator=gen, dtype=DTYPE)
    expected = np.sqrt(np.mean((loc.numpy().mean(0) - y.numpy()) ** 2))
    assert rmse(loc, y) == pytest.approx(expected, abs=1e-12)
    assert rmse(Prediction("gaussian", samples=loc), y) == pytest.approx(expected, abs=1e-12)


def test_gaussian_test_ll_matches_gal_formula_and_mixture():
    gen = torch.Generator().manual_seed(8)
    loc = torch.randn(10, 25, generator=gen, dtype=DTYPE)
    y = torch.randn(25, generator=gen, dtype=DTYPE)
    tau = 2.5
    yhat, t = loc.numpy(), y.numpy()
    a = -0.5 * tau * (t - yhat) ** 2
    lse = a.max(0) + np.log(np.exp(a - a.max(0)).sum(0))
    expected = np.mean(lse - np.log(10) - 0.5 * np.log(2 * np.pi) + 0.5 * np.log(tau))
    assert gaussian_test_ll(loc, y, tau=tau) == pytest.approx(expected, abs=1e-12)
    scale = torch.full_like(loc, tau**-0.5)
    assert gaussian_test_ll(loc, y, scale=scale) == pytest.approx(expected, abs=1e-12)
    pred = Prediction("gaussian", samples=loc, scale=scale)
    assert gaussian_test_ll(pred, y) == pytest.approx(expected, abs=1e-12)
    assert gaussian_test_ll(Prediction("gaussian", samples=loc), y, tau=tau) == pytest.approx(
        expected, abs=1e-12
    )
    assert nll(pred, y) == pytest.approx(-expected, abs=1e-12)


def test_coverage_of_true_gaussian_is_level():
    """y ~ N(0, 1) against the exact predictive: tolerance 4 binomial standard errors."""
    n, level = 20_000, 0.9
    y = torch.randn(n, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    pred = Prediction(
        "gaussian", samples=torch.zeros(1, n, dtype=DTYPE), scale=torch.ones(1, n, dtype=DTYPE)
    )
    tol = 4 * math.sqrt(level * (1 - level) / n)
    assert coverage(pred, y, level=level) == pytest.approx(level, abs=tol)
    lower, upper = pred.interval(level)
    assert coverage(lower, upper, y) == coverage(pred, y, level=level)


def test_coverage_with_bounds():
    lower, upper = torch.zeros(4), torch.ones(4)
    assert coverage(lower, upper, torch.tensor([0.0, 1.0, 0.5, 3.0])) == 0.75


# ------------------------------------------------------------------ validation

PROBS = torch.tensor([[[0.3, 0.7], [0.5, 0.5]]], dtype=DTYPE)
Y = torch.tensor([0, 1])


@pytest.mark.parametrize("metric", [accuracy, nll, brier, ece])
@pytest.mark.parametrize(
    ("probs", "y", "error", "match"),
    [
        (PROBS, Y.double(), TypeError, r"integer class labels y \(torch.long\), got dtype"),
        (PROBS, torch.tensor([0, 2]), ValueError, r"labels in \[0, 1\], got values in \[0, 2\]"),
        (PROBS, torch.tensor([0]), ValueError, r"y of shape \(2,\)"),
        (PROBS[0], Y, ValueError, r"sample dimension first.*unsqueeze\(0\)"),
        (PROBS * 2, Y, ValueError, r"sum to 1 .*deviation \|sum - 1\| = 1"),
        (PROBS * float("nan"), Y, ValueError, "NaN"),
    ],
)
def test_classification_metrics_reject_bad_input(metric, probs, y, error, match):
    with pytest.raises(error, match=match):
        metric(probs, y)


def test_metrics_reject_bad_options_and_kinds():
    gauss = Prediction("gaussian", samples=torch.zeros(2, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="classification Prediction"):
        accuracy(gauss, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction 'mean', 'sum' or 'none'"):
        nll(PROBS, Y, reduction="max")
    with pytest.raises(ValueError, match="n_bins to be a positive int, but got 0"):
        ece(PROBS, Y, n_bins=0)
    with pytest.raises(ValueError, match="n_bins to be a positive int, but got True"):
        ece(PROBS, Y, n_bins=True)
    with pytest.raises(ValueError, match="strategy 'uniform' or 'quantile'"):
        ece(PROBS, Y, strategy="kmeans")
    with pytest.raises(ValueError, match="kind 'gaussian'"):
        rmse(Prediction("categorical", samples=PROBS), Y)


def test_regression_metrics_reject_bad_input():
    loc = torch.zeros(2, 3, dtype=DTYPE)
    y = torch.zeros(3, dtype=DTYPE)
    with pytest.raises(ValueError, match=r"y of shape \(3,\).*got shape \(2,\)"):
        rmse(loc, y[:2])
    with pytest.raises(ValueError, match="exactly one of tau= .* got both"):
        gaussian_test_ll(loc, y, tau=1.0, scale=torch.ones_like(loc))
    with pytest.raises(ValueError, match="got neither"):
        gaussian_test_ll(loc, y)
    with pytest.raises(ValueError, match="tau > 0"):
        gaussian_test_ll(loc, y, tau=-1.0)
    with pytest.raises(ValueError, match="tau= for a noise-free Prediction"):
        gaussian_test_ll(Prediction("gaussian", samples=loc), y)
    with pytest.raises(ValueError, match="lower <= upper"):
        coverage(torch.ones(3), torch.zeros(3), y)
    with pytest.raises(ValueError, match="one shape"):
        coverage(torch.zeros(3), torch.ones(2), y)
    with pytest.raises(ValueError, match="level= only with a Prediction"):
        coverage(torch.zeros(3), torch.ones(3), y, level=0.9)
    with pytest.raises(TypeError, match="coverage"):
        coverage(torch.zeros(3), y)
    with pytest.raises(ValueError, match="no NaN in score_out"):
        ood_auroc(torch.zeros(3), torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="at least one score in score_in"):
        ood_auroc(torch.zeros(0), torch.zeros(3))


# ------------------------------------------------------------------ targets as fit takes them


def _regression_case():
    gen = torch.Generator().manual_seed(4)
    loc = torch.randn(6, 5, generator=gen, dtype=DTYPE)
    scale = 0.5 + torch.rand(6, 5, generator=gen, dtype=DTYPE)
    y = torch.randn(5, generator=gen, dtype=DTYPE)
    return loc, scale, y


def test_single_output_regression_targets_of_shape_n_by_1_score_as_shape_n():
    """``fit`` takes y of shape (N, 1) for a one-output network, whose predictions are (S, N):
    every regression metric scores such y exactly as its (N,) column."""
    loc, scale, y = _regression_case()
    pred = Prediction("gaussian", samples=loc, scale=scale)
    column = y[:, None]
    assert column.shape == (5, 1)
    assert rmse(loc, column) == rmse(loc, y)
    assert rmse(pred, column) == rmse(pred, y)
    assert gaussian_test_ll(loc, column, tau=2.0) == gaussian_test_ll(loc, y, tau=2.0)
    assert gaussian_test_ll(pred, column) == gaussian_test_ll(pred, y)
    assert coverage(pred, column, level=0.8) == coverage(pred, y, level=0.8)
    torch.testing.assert_close(nll(pred, column, "none"), nll(pred, y, "none"), rtol=0, atol=0)
    # the value itself, against a direct computation (a column is not silently broadcast)
    expected = math.sqrt(float(((loc.mean(0) - y) ** 2).mean()))
    assert rmse(loc, column) == pytest.approx(expected, rel=1e-12)
    # a trailing dim that is not a single output is still refused
    with pytest.raises(ValueError, match=r"y of shape \(5,\).*got shape \(5, 2\)"):
        rmse(loc, torch.zeros(5, 2, dtype=DTYPE))


def test_metrics_take_numpy_lists_and_pandas_targets():
    pd = pytest.importorskip("pandas")  # optional: installed with ArviZ / xarray
    loc, scale, y = _regression_case()
    for target in (y.numpy(), y.tolist(), pd.Series(y.numpy()), y.numpy()[:, None]):
        assert rmse(loc, target) == rmse(loc, y)
        assert gaussian_test_ll(loc, target, tau=2.0) == gaussian_test_ll(loc, y, tau=2.0)
    pred = Prediction("gaussian", samples=loc, scale=scale)
    assert coverage(pred, y.numpy(), level=0.8) == coverage(pred, y, level=0.8)
    assert nll(pred, y.tolist()) == nll(pred, y)
    lower, upper = pred.interval(0.8)
    assert coverage(lower, upper, y.numpy()) == coverage(lower, upper, y)
    # float32 draws: a float64 numpy target takes the draws' dtype
    assert rmse(loc.float(), y.numpy()) == rmse(loc.float(), y.float())
    # class labels: numpy integers of any width and lists are integer labels
    for labels in (Y.numpy(), Y.numpy().astype(np.int32), Y.tolist(), pd.Series(Y.numpy())):
        assert accuracy(PROBS, labels) == accuracy(PROBS, Y)
        assert nll(PROBS, labels) == nll(PROBS, Y)
        assert brier(PROBS, labels) == brier(PROBS, Y)
        assert ece(PROBS, labels, n_bins=np.int64(3)).ece == ece(PROBS, Y, n_bins=3).ece
    # float labels are refused as a float tensor is
    with pytest.raises(TypeError, match="integer class labels"):
        accuracy(PROBS, Y.numpy().astype(np.float64))
    with pytest.raises(TypeError, match="hold real numbers.*dtype <U1"):
        rmse(loc, ["a"] * 5)
