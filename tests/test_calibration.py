"""Tests for pyro_bdl.calibration: temperature scaling and split-conformal prediction.

Ground truths: closed forms (Guo et al.'s softmax(z / T), sigmoid(z / T)), temperatures that
generated the data, the exact order statistic ceil((n + 1)(1 - alpha)) computed with decimal
fractions, and the exact distribution of split-conformal coverage. For continuous scores, the
coverage of a test point given the calibration set is Beta(k, n + 1 - k) with
k = ceil((n + 1)(1 - alpha)) (Vovk et al. 2005), so the mean coverage over R random splits with
m test points each is k / (n + 1) with the beta-binomial standard error computed below; every
coverage check allows 4 of those standard errors.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from pyro_bdl.calibration import (
    APSConformalClassifier,
    SplitConformalRegressor,
    TemperatureScaling,
    conformal_quantile,
    set_coverage,
    set_size,
    temper,
)
from pyro_bdl.metrics import coverage, ece, nll
from pyro_bdl.uncertainty import Prediction

DTYPE = torch.float64
Z = 4.0  # width of every statistical band, in standard errors


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _categorical_data(seed: int, n: int, c: int, spread: float = 2.0):
    """True logits (n, c) and labels drawn from softmax(logits)."""
    g = _gen(seed)
    logits = spread * torch.randn(n, c, generator=g, dtype=DTYPE)
    y = torch.multinomial(logits.softmax(-1), 1, generator=g).squeeze(-1)
    return logits, y


def _k(n: int, alpha: float) -> int:
    """ceil((n + 1)(1 - alpha)) in exact decimal arithmetic."""
    return math.ceil((n + 1) * (1 - Fraction(str(alpha))))


def _coverage_band(n: int, alpha: float, reps: int, m: int) -> tuple[float, float]:
    """Mean and standard error of the split-conformal coverage averaged over ``reps`` splits."""
    k = _k(n, alpha)
    a, b = k, n + 1 - k
    mean = a / (a + b)
    var_beta = a * b / ((a + b) ** 2 * (a + b + 1))
    e_p1mp = mean - (var_beta + mean**2)
    return mean, math.sqrt((var_beta + e_p1mp / m) / reps)


# ------------------------------------------------------------------ temperature: identities


def test_temperature_one_returns_the_input_exactly():
    probs = _categorical_data(0, 20, 4)[0].softmax(-1)
    draws = torch.stack([probs, probs.flip(-1), probs.roll(1, -1)])
    pred = Prediction("categorical", samples=draws, outputs=torch.zeros(3, 20, 4))
    assert torch.equal(temper(pred, 1.0).samples, pred.samples)
    assert torch.equal(temper(probs, 1.0), probs)
    p1 = torch.rand(3, 20, dtype=DTYPE, generator=_gen(1))
    assert torch.equal(temper(Prediction("bernoulli", samples=p1), 1.0).samples, p1)
    # the formula itself is continuous at T = 1 (the shortcut only removes rounding)
    near = temper(pred, 1.0 + 1e-13).samples
    assert torch.allclose(near, pred.samples, rtol=0, atol=1e-12)


@pytest.mark.parametrize("temperature", [0.3, 1.7, 5.0])
def test_single_draw_is_guo_temperature_scaling(temperature):
    logits = _categorical_data(2, 50, 6, spread=3.0)[0]
    pred = Prediction("categorical", samples=logits.softmax(-1)[None])
    expected = (logits / temperature).softmax(-1)
    assert torch.allclose(temper(pred, temperature).samples[0], expected, rtol=0, atol=1e-12)
    assert torch.allclose(temper(logits.softmax(-1), temperature), expected, rtol=0, atol=1e-12)
    z = 3.0 * torch.randn(40, 2, generator=_gen(3), dtype=DTYPE)  # bernoulli, trailing dim
    bern = Prediction("bernoulli", samples=z.sigmoid()[None])
    expected_b = (z / temperature).sigmoid()
    assert torch.allclose(temper(bern, temperature).samples[0], expected_b, rtol=0, atol=1e-12)
    assert torch.allclose(temper(z[:, 0].sigmoid(), temperature), expected_b[:, 0], atol=1e-12)


def test_every_draw_is_tempered_by_its_own_logits():
    g = _gen(4)
    logits = 2.0 * torch.randn(5, 30, 4, generator=g, dtype=DTYPE)
    pred = Prediction("categorical", samples=logits.softmax(-1))
    out = temper(pred, 2.5)
    assert out.kind == "categorical" and out.outputs is None
    assert torch.allclose(out.samples, (logits / 2.5).softmax(-1), rtol=0, atol=1e-12)
    # zero probabilities stay zero, ones stay one
    hard = torch.tensor([[[1.0, 0.0], [0.25, 0.75]]], dtype=DTYPE)
    assert torch.equal(
        temper(Prediction("categorical", samples=hard), 3.0).samples[0, 0], hard[0, 0]
    )


# ------------------------------------------------------------------ temperature: fitting


@pytest.mark.parametrize("true_t", [2.5, 0.5])
def test_recovers_a_known_temperature_single_draw(true_t):
    logits, y = _categorical_data(5, 20000, 5)
    miscalibrated = Prediction("categorical", samples=(logits * true_t).softmax(-1)[None])
    ts = TemperatureScaling().fit(miscalibrated, y)
    assert abs(ts.temperature - true_t) / true_t < 0.05  # MLE from 20000 labels
    assert ts.nll_after < ts.nll_before


def test_recovers_a_known_temperature_of_an_ensemble():
    """Labels from the mixture of S draws' softmax(z_s); the model's draws are softmax(3 z_s):
    tempering every draw by T = 3 gives back the true predictive exactly."""
    g = _gen(6)
    base = 1.5 * torch.randn(20000, 4, generator=g, dtype=DTYPE)
    z = base + 0.8 * torch.randn(6, 20000, 4, generator=g, dtype=DTYPE)
    y = torch.multinomial(z.softmax(-1).mean(0), 1, generator=g).squeeze(-1)
    pred = Prediction("categorical", samples=(3.0 * z).softmax(-1))
    ts = TemperatureScaling().fit(pred, y)
    assert abs(ts.temperature - 3.0) / 3.0 < 0.05
    fitted = ts(pred)
    assert fitted.num_samples == 6
    assert math.isclose(ts.nll_before, nll(pred, y), rel_tol=1e-10)
    assert math.isclose(ts.nll_after, nll(fitted, y), rel_tol=1e-10)


def test_recovers_a_known_temperature_bernoulli():
    g = _gen(7)
    z = 2.0 * torch.randn(20000, generator=g, dtype=DTYPE)
    y = torch.bernoulli(z.sigmoid(), generator=g).long()
    pred = Prediction("bernoulli", samples=(2.0 * z).sigmoid()[None])
    ts = TemperatureScaling().fit(pred, y)
    assert abs(ts.temperature - 2.0) / 2.0 < 0.05
    assert math.isclose(ts.nll_after, nll(ts(pred), y), rel_tol=1e-10)


def test_bernoulli_labels_may_be_float_zeros_and_ones():
    g = _gen(18)
    z = 2.0 * torch.randn(50, generator=g, dtype=DTYPE)
    p1 = (z + 0.5 * torch.randn(3, 50, generator=g, dtype=DTYPE)).sigmoid()
    y = torch.bernoulli(z.sigmoid(), generator=g)
    pred = Prediction("bernoulli", samples=p1)
    as_float = TemperatureScaling().fit(pred, y)
    assert as_float.temperature == TemperatureScaling().fit(pred, y.long()).temperature
    aps = APSConformalClassifier(alpha=0.2, seed=0)
    assert aps.fit(pred, y).qhat == aps.fit(pred, y.long()).qhat
    with pytest.raises(ValueError, match=r"binary labels y in \{0, 1\}.*got other values"):
        TemperatureScaling().fit(pred, torch.full((50,), 0.5))
    with pytest.raises(TypeError, match="integer class labels"):  # categorical: no floats
        TemperatureScaling().fit(torch.stack([1 - p1[0], p1[0]], -1), y)


def test_lowers_nll_and_ece_on_held_out_data():
    logits, y = _categorical_data(8, 8000, 10, spread=1.5)
    pred = Prediction("categorical", samples=(3.0 * logits).softmax(-1)[None])
    val, test = slice(0, 4000), slice(4000, 8000)
    ts = TemperatureScaling().fit(pred[val], y[val])
    before, after = pred[test], ts(pred[test])
    assert nll(after, y[test]) < nll(before, y[test]) - 0.1
    ece_before, ece_after = ece(before, y[test]).ece, ece(after, y[test]).ece
    assert ece_before > 0.1 and ece_after < 0.03  # 15 bins, 4000 points: noise ~0.01-0.02
    # the pooled predictive (a plain tensor) can be tempered as well
    ts_pooled = TemperatureScaling().fit(pred[val].probs, y[val])
    assert ece(ts_pooled(before.probs)[None], y[test]).ece < 0.03


def test_fit_is_a_deterministic_minimum():
    g = _gen(9)
    z = 2.0 * torch.randn(4, 500, 3, generator=g, dtype=DTYPE)
    y = torch.randint(3, (500,), generator=g)
    pred = Prediction("categorical", samples=(2.0 * z).softmax(-1))
    t1 = TemperatureScaling().fit(pred, y).temperature
    t2 = TemperatureScaling().fit(pred, y).temperature
    assert t1 == t2
    here = nll(temper(pred, t1), y)
    for factor in (0.99, 1.01, 0.5, 2.0):
        assert here <= nll(temper(pred, t1 * factor), y) + 1e-12


def test_fit_warns_at_the_bound_when_the_data_are_separated():
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0]] * 10, dtype=DTYPE)
    y = torch.tensor([0, 1] * 10)
    with pytest.warns(UserWarning, match="at the bound.*separate the validation classes"):
        ts = TemperatureScaling(bounds=(0.1, 10.0)).fit(logits.softmax(-1), y)
    assert math.isclose(ts.temperature, 0.1, rel_tol=1e-6)
    with pytest.warns(UserWarning, match="at the bound.*no useful information"):  # labels flipped
        ts = TemperatureScaling(bounds=(0.1, 10.0)).fit(logits.softmax(-1), 1 - y)
    assert math.isclose(ts.temperature, 10.0, rel_tol=1e-6)


def test_temperature_scaling_errors():
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=DTYPE)
    ts = TemperatureScaling()
    with pytest.raises(RuntimeError, match="call fit first"):
        ts(probs)
    with pytest.raises(TypeError, match=r"integer class labels.*got dtype torch.float64"):
        ts.fit(probs, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels in \[0, 1\], got values in \[0, 2\]"):
        ts.fit(probs, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"labels y of shape \(2,\).*got shape \(3,\)"):
        ts.fit(probs, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="finite values in pred, got 1 NaN"):
        ts.fit(torch.tensor([[float("nan"), 0.5], [0.5, 0.5]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="sum to 1"):
        ts.fit(torch.tensor([[2.0, 1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="at least one data point"):
        ts.fit(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="classification Prediction.*kind='gaussian'"):
        ts.fit(Prediction("gaussian", samples=torch.zeros(2, 3)), torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(N, C\).*Prediction\('categorical'"):
        ts.fit(torch.full((2, 3, 2), 0.5), torch.tensor([0, 1, 0]))
    ts.fit(torch.cat([probs, probs]), torch.tensor([0, 1, 0, 0]))  # 3 of 4 right: T inside
    with pytest.raises(ValueError, match="Expected a tensor.*got a Prediction"):
        ts(Prediction("categorical", samples=probs[None]))
    with pytest.raises(ValueError, match="0 < T_min < 1 < T_max"):
        TemperatureScaling(bounds=(2.0, 10.0))
    with pytest.raises(ValueError, match=r"temperature > 0, but got -1.0"):
        temper(probs, -1.0)


# ------------------------------------------------------------------ conformal quantile


@pytest.mark.parametrize(("n", "alpha"), [(99, 0.1), (9, 0.3), (45, 0.1), (20, 0.05), (7, 0.5)])
def test_conformal_quantile_is_the_kth_smallest(n, alpha):
    scores = torch.randperm(n, generator=_gen(n)).to(DTYPE) + 1.0  # 1..n shuffled
    assert conformal_quantile(scores, alpha) == float(_k(n, alpha))


def test_conformal_quantile_is_infinite_when_k_exceeds_n():
    assert conformal_quantile(torch.arange(1.0, 6.0), 0.1) == math.inf  # ceil(6 * 0.9) = 6 > 5
    assert conformal_quantile(torch.arange(1.0, 10.0), 0.1) == 9.0  # n = 9: ceil(9.0) = 9
    with pytest.raises(ValueError, match="without NaN"):
        conformal_quantile(torch.tensor([1.0, float("nan")]), 0.1)
    with pytest.raises(ValueError, match=r"shape \(n,\) with n >= 1"):
        conformal_quantile(torch.zeros(0), 0.1)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_alpha_outside_the_unit_interval_is_refused(alpha):
    for make in (SplitConformalRegressor, APSConformalClassifier):
        with pytest.raises(ValueError, match=r"alpha in \(0, 1\).*alpha=0.1"):
            make(alpha=alpha)
    with pytest.raises(TypeError, match="alpha to be a float"):
        SplitConformalRegressor(alpha="0.1")  # type: ignore[arg-type]


# ------------------------------------------------------------------ conformal regression


def _regression_splits(reps: int, size: int, seed: int):
    """``reps`` exchangeable data sets: x, heteroskedastic y, and a misspecified 4-draw
    Gaussian predictive (a wrong noise scale, shifted draws)."""
    g = _gen(seed)
    x = 4.0 * torch.rand(reps, size, generator=g, dtype=DTYPE) - 2.0
    y = torch.sin(2.0 * x) + (0.2 + 0.3 * x.abs()) * torch.randn(
        reps, size, generator=g, dtype=DTYPE
    )
    shifts = torch.tensor([-0.1, 0.0, 0.05, 0.1], dtype=DTYPE)
    loc = torch.sin(2.0 * x)[:, None] + shifts[:, None]  # (reps, S, size)
    return x, y, loc


@pytest.mark.slow
@pytest.mark.parametrize("score", ["abs", "normalized"])
def test_regression_coverage_guarantee_over_random_splits(score):
    reps, n, m, alpha = 500, 45, 400, 0.1
    x, y, loc = _regression_splits(reps, n + m, seed=10)
    scale = (0.25 + 0.2 * x.abs())[:, None].expand_as(loc)  # varies: normalized != abs
    covered = torch.empty(reps, dtype=DTYPE)
    for r in range(reps):
        pred = Prediction("gaussian", samples=loc[r], scale=scale[r])
        conf = SplitConformalRegressor(alpha=alpha, score=score).fit(pred[:n], y[r, :n])
        lower, upper = conf.predict(pred[n:])
        covered[r] = coverage(lower, upper, y[r, n:])
    mean, se = _coverage_band(n, alpha, reps, m)
    got = float(covered.mean())
    assert got >= 1 - alpha - Z * se  # the guarantee
    assert got <= 1 - alpha + 1 / (n + 1) + Z * se  # continuous scores: at most 1/(n+1) more
    assert abs(got - mean) < Z * se, (got, mean, se)  # exactly k / (n + 1) = 42/46 on average


def test_regression_intervals_by_hand():
    loc = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], dtype=DTYPE)
    resid = torch.tensor([0.5, -1.0, 2.0, -0.1, 0.3, 0.7, -0.2, 1.5, -0.9, 0.4], dtype=DTYPE)
    conf = SplitConformalRegressor(alpha=0.2).fit(loc, loc + resid)
    # k = ceil(11 * 0.8) = 9: the 9th smallest |residual| is 1.5
    assert conf.qhat == 1.5 and conf.n_calibration == 10
    lower, upper = conf.predict(torch.tensor([0.0, 10.0], dtype=DTYPE))
    assert torch.equal(lower, torch.tensor([-1.5, 8.5], dtype=DTYPE))
    assert torch.equal(upper, torch.tensor([1.5, 11.5], dtype=DTYPE))
    std = torch.linspace(0.5, 2.0, 10, dtype=DTYPE)
    norm = SplitConformalRegressor(alpha=0.2, score="normalized").fit(loc, loc + resid, scale=std)
    assert norm.qhat == float((resid.abs() / std).sort().values[8])
    lo, up = norm.predict(loc[:2], scale=torch.tensor([1.0, 2.0], dtype=DTYPE))
    assert torch.allclose(up - lo, 2 * norm.qhat * torch.tensor([1.0, 2.0], dtype=DTYPE))


def test_normalized_score_uses_the_predictive_std():
    g = _gen(11)
    loc = torch.randn(3, 30, generator=g, dtype=DTYPE)
    pred = Prediction("gaussian", samples=loc, scale=torch.full_like(loc, 0.5))
    y = torch.randn(30, generator=g, dtype=DTYPE)
    conf = SplitConformalRegressor(alpha=0.1, score="normalized").fit(pred, y)
    expected = conformal_quantile((y - pred.mean).abs() / pred.std, 0.1)
    assert conf.qhat == expected
    lower, upper = conf.predict(pred)
    assert torch.allclose(upper - pred.mean, expected * pred.std, rtol=1e-14)
    # (N, 1) targets and (S, N, 1) predictions are one output
    pred1 = Prediction("gaussian", samples=loc[..., None], scale=torch.full((3, 30, 1), 0.5))
    same = SplitConformalRegressor(alpha=0.1, score="normalized").fit(pred1, y[:, None])
    assert same.qhat == expected


def test_too_few_calibration_points_give_infinite_intervals():
    loc = torch.zeros(5, dtype=DTYPE)
    conf = SplitConformalRegressor(alpha=0.1)
    with pytest.warns(UserWarning, match=r"n = 5 calibration points.*at least 9"):
        conf.fit(loc, torch.arange(5.0, dtype=DTYPE))
    lower, upper = conf.predict(torch.zeros(3, dtype=DTYPE))
    assert bool(torch.isneginf(lower).all()) and bool(torch.isposinf(upper).all())
    # n = 9 = 1/alpha - 1 is enough: a finite interval, no warning
    nine = SplitConformalRegressor(alpha=0.1).fit(torch.zeros(9), torch.arange(9.0))
    assert nine.qhat == 8.0


def test_conformal_regression_errors():
    conf = SplitConformalRegressor()
    loc, y = torch.zeros(4, dtype=DTYPE), torch.ones(4, dtype=DTYPE)
    with pytest.raises(RuntimeError, match="call fit first"):
        conf.predict(loc)
    with pytest.raises(ValueError, match=r"finite values in y, got 1 NaN.*impute"):
        conf.fit(loc, torch.tensor([1.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"targets y of shape \(4,\).*got shape \(3,\)"):
        conf.fit(loc, y[:3])
    with pytest.raises(ValueError, match=r"shape \(N,\).*N >= 1, got shape \(0,\)"):
        conf.fit(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match=r"got shape \(2, 4\).*Prediction\('gaussian'"):
        conf.fit(torch.zeros(2, 4), y)
    with pytest.raises(ValueError, match="regression Prediction.*kind='categorical'"):
        conf.fit(Prediction("categorical", samples=torch.full((1, 4, 2), 0.5)), y)
    with pytest.raises(ValueError, match="single-output Prediction"):
        conf.fit(Prediction("gaussian", samples=torch.zeros(2, 4, 3)), y)
    norm = SplitConformalRegressor(score="normalized")
    with pytest.raises(ValueError, match="predictive std for score='normalized'.*scale="):
        norm.fit(loc, y)
    with pytest.raises(ValueError, match="std > 0 everywhere"):
        norm.fit(Prediction("gaussian", samples=torch.zeros(1, 4)), y)
    with pytest.raises(ValueError, match="score 'abs' or 'normalized'"):
        SplitConformalRegressor(score="sq")  # type: ignore[arg-type]


# ------------------------------------------------------------------ APS classification


def _classification_splits(reps: int, size: int, c: int, seed: int):
    """True class probabilities, labels drawn from them, and a misspecified 3-draw model."""
    g = _gen(seed)
    logits = 1.5 * torch.randn(reps, size, c, generator=g, dtype=DTYPE)
    y = torch.multinomial(logits.softmax(-1).reshape(-1, c), 1, generator=g).reshape(reps, size)
    noise = 0.5 * torch.randn(reps, 3, size, c, generator=g, dtype=DTYPE)
    model = (2.0 * logits[:, None] + noise).softmax(-1)  # over-confident, noisy draws
    return y, model


@pytest.mark.slow
@pytest.mark.parametrize("randomized", [True, False])
def test_aps_coverage_guarantee_over_random_splits(randomized):
    reps, n, m, alpha, c = 500, 45, 400, 0.1, 6
    y, model = _classification_splits(reps, n + m, c, seed=12)
    covered = torch.empty(reps, dtype=DTYPE)
    sizes = torch.empty(reps, dtype=DTYPE)
    for r in range(reps):
        pred = Prediction("categorical", samples=model[r])
        aps = APSConformalClassifier(alpha=alpha, randomized=randomized, seed=r)
        sets = aps.fit(pred[:n], y[r, :n]).predict(pred[n:])
        covered[r] = set_coverage(sets, y[r, n:])
        sizes[r] = set_size(sets).double().mean()
    mean, se = _coverage_band(n, alpha, reps, m)
    got = float(covered.mean())
    assert got >= 1 - alpha - Z * se  # the guarantee, with or without randomization
    if randomized:  # continuous scores: exact
        assert got <= 1 - alpha + 1 / (n + 1) + Z * se
        assert abs(got - mean) < Z * se, (got, mean, se)
    assert 1.0 < float(sizes.mean()) < c  # informative sets


def test_randomized_aps_includes_each_class_with_the_right_probability():
    """For one point repeated M times, class at rank r is in the set with probability
    clamp((tau - mass above r) / p_r, 0, 1): check the frequencies against it."""
    y, model = _classification_splits(1, 200, 4, seed=13)
    aps = APSConformalClassifier(alpha=0.2, seed=5).fit(model[0].mean(0), y[0])
    point = torch.tensor([0.1, 0.45, 0.3, 0.15], dtype=DTYPE)
    reps = 20000
    sets = aps.predict(point.expand(reps, 4))
    above = torch.tensor([0.9, 0.0, 0.45, 0.75], dtype=DTYPE)  # mass ranked above each class
    expected = ((aps.qhat - above) / point).clamp(0.0, 1.0)
    freq = sets.double().mean(0)
    se = (expected * (1 - expected) / reps).sqrt().clamp_min(1e-12)
    assert bool(((freq - expected).abs() <= Z * se).all()), (freq, expected)
    # the sets are the top classes: a class is in whenever every more probable class is
    order = point.argsort(descending=True)
    assert bool((sets[:, order].int().diff(dim=1) <= 0).all())


def test_deterministic_aps_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2]] * 10, dtype=DTYPE)
    y = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)
    aps = APSConformalClassifier(alpha=0.25, randomized=False).fit(probs, y)
    # scores 0.5 (x5), 0.8 (x3), 1.0 (x2); k = ceil(11 * 0.75) = 9 -> tau = 1.0
    assert aps.qhat == pytest.approx(1.0, abs=1e-15)
    aps = APSConformalClassifier(alpha=0.4, randomized=False).fit(probs, y)
    assert aps.qhat == pytest.approx(0.8, abs=1e-15)  # k = ceil(6.6) = 7
    test = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.05, 0.9, 0.05]], dtype=DTYPE)
    expected = torch.tensor([[True, True, False], [False, True, True], [False, True, False]])
    assert torch.equal(aps.predict(test), expected)
    assert torch.equal(set_size(expected), torch.tensor([2, 2, 1]))
    assert set_coverage(expected, torch.tensor([0, 0, 1])) == pytest.approx(2 / 3)


def test_aps_seed_and_inputs():
    y, model = _classification_splits(1, 100, 3, seed=14)
    pred = Prediction("categorical", samples=model[0])
    a = APSConformalClassifier(alpha=0.2, seed=3).fit(pred[:50], y[0, :50])
    b = APSConformalClassifier(alpha=0.2, seed=3).fit(pred.probs[:50], y[0, :50])
    assert a.qhat == b.qhat  # a Prediction is scored by its predictive probabilities
    assert torch.equal(a.predict(pred[50:]), a.predict(pred[50:]))  # predict is a function
    torch.manual_seed(0)
    c = APSConformalClassifier(alpha=0.2).fit(pred[:50], y[0, :50]).predict(pred[50:])
    torch.manual_seed(0)
    d = APSConformalClassifier(alpha=0.2).fit(pred[:50], y[0, :50]).predict(pred[50:])
    assert torch.equal(c, d)  # seed=None: torch's global RNG
    # a bernoulli prediction is two classes
    p1 = torch.rand(1, 40, generator=_gen(15), dtype=DTYPE)
    labels = torch.bernoulli(p1[0], generator=_gen(16)).long()
    bern = APSConformalClassifier(alpha=0.2, seed=0).fit(
        Prediction("bernoulli", samples=p1), labels
    )
    two = APSConformalClassifier(alpha=0.2, seed=0).fit(torch.stack([1 - p1[0], p1[0]], -1), labels)
    assert bern.qhat == two.qhat


def test_aps_too_few_points_and_errors():
    probs = torch.tensor([[0.6, 0.4]] * 3, dtype=DTYPE)
    aps = APSConformalClassifier(alpha=0.1, seed=0)
    with pytest.raises(RuntimeError, match="call fit first"):
        aps.predict(probs)
    with pytest.warns(UserWarning, match="every set holds all classes"):
        aps.fit(probs, torch.tensor([0, 1, 0]))
    assert bool(aps.predict(probs).all())
    with pytest.raises(ValueError, match="over 2 classes.*got 3"):
        aps.predict(torch.full((2, 3), 1 / 3))
    with pytest.raises(TypeError, match="integer class labels"):
        aps.fit(probs, torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"labels in \[0, 1\]"):
        aps.fit(probs, torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match=r"shape \(3,\).*got shape \(2,\)"):
        aps.fit(probs, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="classification Prediction"):
        aps.fit(Prediction("gaussian", samples=torch.zeros(1, 3)), torch.tensor([0, 1, 0]))
    with pytest.raises(TypeError, match=r"boolean tensor of shape \(N, C\)"):
        set_size(torch.ones(2, 3))
    with pytest.raises(TypeError, match="seed"):
        APSConformalClassifier(seed=1.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------ devices


def test_everything_stays_on_the_inputs_device(device):
    logits, y = _categorical_data(17, 60, 3)
    logits, y = logits.to(device), y.to(device)
    pred = Prediction("categorical", samples=(2.0 * logits).softmax(-1)[None])
    ts = TemperatureScaling().fit(pred[:30], y[:30])
    assert ts(pred).samples.device == logits.device
    aps = APSConformalClassifier(alpha=0.2, seed=0).fit(ts(pred[:30]), y[:30])
    sets = aps.predict(ts(pred[30:]))
    assert sets.device == logits.device and sets.shape == (30, 3)
    loc = logits[:, 0]
    conf = SplitConformalRegressor(alpha=0.2).fit(loc[:30], logits[:30, 1])
    lower, upper = conf.predict(loc[30:])
    assert lower.device == upper.device == logits.device
