"""ArviZ export and PSIS k̂: closed-form ground truth, ArviZ round trips, chains, memory, bad input.

Ground truth is conjugate Bayesian linear regression with an orthogonal design, where the
mean-field guide set to the closed-form posterior *is* the posterior: every importance ratio
p(W, y) / q(W) then equals the evidence p(y).
"""

import math
import os
import subprocess
import sys
import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import xarray as xr
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide import AutoDelta
from pyro.infer.importance import psis_diagnostic, vectorized_importance_weights
from scipy.special import logsumexp
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.arviz import (
    OBS_ID,
    OBS_MEAN,
    VARIATIONAL,
    arviz_major_version,
    prediction_from_samples,
    psis_khat,
    psislw,
    to_inference_data,
)
from pyro_bdl.guides import BernoulliDropout

with warnings.catch_warnings():
    # ArviZ 0.23 announces its 1.x refactor with a FutureWarning on first import
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

ARVIZ0 = arviz_major_version() == 0
only_arviz0 = pytest.mark.skipif(not ARVIZ0, reason="ArviZ 0.x API (InferenceData, plot_ppc)")

# --------------------------------------------------------------------------- conjugate model
N, D, SIGMA, ALPHA = 40, 3, 0.5, 1.0


def conjugate_problem(sigma: float = SIGMA):
    """Bayesian linear regression, known noise, orthogonal design: the posterior factorises.

    The data always have noise SIGMA; ``sigma`` is the noise the model assumes.
    """
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(N, D, generator=g))
    x = q * torch.tensor([4.0, 2.0, 1.0])  # X^T X = diag(16, 4, 1)
    y = x @ torch.tensor([1.0, -0.5, 0.3]) + SIGMA * torch.randn(N, generator=g)
    cov = torch.linalg.inv(x.T @ x / sigma**2 + torch.eye(D) / ALPHA**2)
    mean = cov @ x.T @ y / sigma**2
    log_evidence = dist.MultivariateNormal(
        torch.zeros(N), sigma**2 * torch.eye(N) + ALPHA**2 * x @ x.T
    ).log_prob(y)
    return x, y, mean, cov.diag().sqrt(), float(log_evidence)


def exact_bnn(shrink: float = 1.0, sigma: float = SIGMA):
    """The conjugate BNN with its mean-field guide set to the posterior (std divided by shrink)."""
    x, y, mean, std, log_evidence = conjugate_problem(sigma)
    bnn = BNN(
        nn.Linear(D, 1, bias=False), dist.Normal(0.0, ALPHA), HomoskedasticGaussian(scale=sigma)
    )
    bnn.guide(x, y)  # build the guide's parameters, then overwrite them
    bnn.guide.locs.weight = mean.reshape(1, D)
    bnn.guide.scales.weight = (std / shrink).reshape(1, D)
    return bnn, x, y, log_evidence


def direct_loglik(weights: np.ndarray, x, y) -> np.ndarray:
    """log N(y_n; x_n . w_s, SIGMA^2) in float64, independently of the library: shape (S, N)."""
    mu = weights.reshape(-1, D) @ x.numpy().T
    return -0.5 * math.log(2 * math.pi * SIGMA**2) - (y.numpy() - mu) ** 2 / (2 * SIGMA**2)


def group_names(data) -> set[str]:
    """Groups of an InferenceData (ArviZ 0.x) or children of a DataTree (1.x)."""
    return set(data.children) if isinstance(data, xr.DataTree) else set(data.groups())


def elpd(loo_or_waic) -> float:
    for name in ("elpd_loo", "elpd_waic", "elpd"):  # 0.x names first, then 1.x's
        if hasattr(loo_or_waic, name):
            return float(getattr(loo_or_waic, name))
    raise AttributeError(f"no elpd in {loo_or_waic!r}")


@pytest.fixture
def exact():
    return exact_bnn()


@pytest.fixture
def idata(exact):
    bnn, x, y, _ = exact
    return to_inference_data(bnn, x, y, num_samples=1000, var_names=["weight", OBS_MEAN], seed=0)


# --------------------------------------------------------------------------- PSIS k̂ of the guide
def test_khat_is_good_for_the_exact_posterior_and_every_ratio_is_the_evidence(exact):
    bnn, x, y, log_evidence = exact
    result = psis_khat(bnn, x, y, num_samples=2000, seed=0)
    # q = p(W | y)  =>  log p(W, y) - log q(W) = log p(y) for every draw (float64 round-off)
    np.testing.assert_allclose(result.log_ratios, log_evidence, rtol=0, atol=1e-9)
    assert result.khat < 0.5 and result.reading == "good"  # -inf: equal weights, no tail
    assert result.log_weights.shape == (2000,)
    assert logsumexp(result.log_weights) == pytest.approx(0.0, abs=1e-9)


def test_khat_is_good_for_a_guide_slightly_narrower_than_the_posterior():
    bnn, x, y, _ = exact_bnn(shrink=1 / 0.9)
    result = psis_khat(bnn, x, y, num_samples=2000, seed=0)
    assert result.khat < 0.5 and result.reading == "good", result  # measured: 0.20


def test_khat_is_unreliable_for_a_guide_five_times_too_narrow():
    bnn, x, y, _ = exact_bnn(shrink=5.0)
    result = psis_khat(bnn, x, y, num_samples=2000, seed=0)
    assert result.khat > 0.7 and result.reading == "unreliable", result  # measured: 0.86


def test_log_ratios_and_khat_match_pyro_psis_diagnostic():
    bnn, x, y, _ = exact_bnn(shrink=2.0)
    pyro.set_rng_seed(5)
    theirs, *_ = vectorized_importance_weights(
        bnn.model, bnn.guide, x, y, num_samples=1000, max_plate_nesting=1, dataset_size=N
    )
    pyro.set_rng_seed(5)
    ours = psis_khat(bnn, x, y, num_samples=1000, chunk_size=1000)  # same draws, same order
    np.testing.assert_allclose(ours.log_ratios, theirs.detach().numpy(), rtol=1e-12, atol=1e-9)
    pyro.set_rng_seed(5)
    k = psis_diagnostic(
        bnn.model, bnn.guide, x, y, num_particles=1000, max_plate_nesting=1, dataset_size=N
    )
    # ArviZ 0.x and Pyro fit the same generalised Pareto (Zhang & Stephens); 1.x differs slightly
    assert ours.khat == pytest.approx(k, abs=1e-8 if ARVIZ0 else 0.1)


def test_psis_seed_reproduces_the_draws_and_any_chunk_size_works():
    bnn, x, y, _ = exact_bnn(shrink=2.0)
    a = psis_khat(bnn, x, y, num_samples=300, seed=1, chunk_size=300)
    b = psis_khat(bnn, x, y, num_samples=300, seed=1, chunk_size=300)
    c = psis_khat(bnn, x, y, num_samples=300, seed=1, chunk_size=7)
    np.testing.assert_array_equal(a.log_ratios, b.log_ratios)  # the seed is honoured
    assert c.log_ratios.shape == (300,) and np.isfinite(c.log_ratios).all()


@pytest.mark.parametrize(
    "guide, match",
    [(BernoulliDropout(p=0.2, estimator="per_particle"), "dropout factor"), (AutoDelta, "point")],
)
def test_khat_refuses_guides_without_a_density(guide, match):
    x, y, *_ = conjugate_problem()
    net = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=SIGMA), guide=guide)
    with pytest.raises(ValueError, match=f"density over the weights.*{match}"):
        psis_khat(bnn, x, y, num_samples=100)


def test_psislw_uses_the_sign_convention_of_arviz0_on_either_version():
    r = np.random.default_rng(0).normal(size=2000)
    lw, k = psislw(r)
    # heavier weight on larger ratios, normalised; N(0,1) log ratios have light tails
    assert np.corrcoef(lw, r)[0, 1] > 0.99 and logsumexp(lw) == pytest.approx(0.0, abs=1e-9)
    assert k < 0.5
    assert psislw(3.0 * r)[1] > 0.7  # lognormal ratios with sigma = 3: heavy tail


# --------------------------------------------------------------------------- LOO and WAIC
def test_pointwise_loglik_gives_the_elpd_of_a_direct_float64_computation(idata, exact):
    bnn, x, y, _ = exact
    weights = idata.posterior["weight"].values  # (1, 1000, 1, D)
    assert weights.shape == (1, 1000, 1, D)
    ll = direct_loglik(weights, x, y)
    np.testing.assert_allclose(idata.log_likelihood["obs"].values[0], ll, rtol=1e-12, atol=1e-12)
    # WAIC by its formula, and PSIS-LOO point by point, from the direct log-likelihood
    s = ll.shape[0]
    waic = (logsumexp(ll, axis=0) - math.log(s) - ll.var(axis=0)).sum()  # ArviZ: ddof=0
    loo = sum(logsumexp(psislw(-ll[:, n])[0] + ll[:, n]) for n in range(N))
    if hasattr(az, "waic"):  # ArviZ 1.x has no WAIC
        assert elpd(az.waic(idata)) == pytest.approx(waic, abs=1e-6)
    assert elpd(az.loo(idata)) == pytest.approx(loo, abs=1e-6)


def test_loo_on_a_well_specified_model_runs_without_warnings(idata):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every warning fails, whatever the ini says
        result = az.loo(idata, pointwise=True)
    assert (np.asarray(result.pareto_k) < 0.5).all()


@only_arviz0
# ArviZ 0.23's compare sorts with pandas' deprecated inplace=True: nothing we can act on
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.sort_values")
def test_summary_and_compare(idata, exact):
    summary = az.summary(idata, var_names=["weight"])
    assert list(summary.index) == [f"weight[0, {i}]" for i in range(D)]
    bnn, x, y, _ = exact
    noisy = exact_bnn(sigma=3 * SIGMA)[0]  # exact posterior of a model with too much noise
    other = to_inference_data(noisy, x, y, num_samples=1000, seed=1)
    table = az.compare({"exact": idata, "too noisy": other})
    assert list(table.index) == ["exact", "too noisy"]
    assert table.loc["too noisy", "elpd_diff"] > 10


# --------------------------------------------------------------------------- structure
def test_groups_dims_and_coords(idata):
    assert group_names(idata) == {
        "posterior",
        "posterior_predictive",
        "log_likelihood",
        "observed_data",
        "constant_data",
        VARIATIONAL,
    }
    post = idata.posterior
    assert post["weight"].dims == ("chain", "draw", "weight_dim_0", "weight_dim_1")
    assert post[OBS_MEAN].dims == ("chain", "draw", OBS_ID)
    assert idata.posterior_predictive["obs"].shape == (1, 1000, N)
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", OBS_ID)
    assert idata.observed_data["obs"].dims == (OBS_ID,)
    assert idata.constant_data["x"].dims == (OBS_ID, "x_dim_0")
    np.testing.assert_array_equal(post[OBS_ID].values, np.arange(N))
    variational = idata[VARIATIONAL]
    assert variational["weight_loc"].dims == ("weight_dim_0", "weight_dim_1")
    assert post.attrs["inference_library"] == "pyro"
    for group in group_names(idata):
        for var in idata[group].data_vars.values():
            if var.dtype.kind == "f":
                assert var.dtype == np.float64


def test_default_exports_no_weights_and_matches_predict():
    bnn, x, y, _ = exact_bnn()
    data = to_inference_data(bnn, x, y, num_samples=50, seed=3, chunk_size=50)
    assert list(data.posterior.data_vars) == [OBS_MEAN]
    assert VARIATIONAL not in group_names(data)
    pred = bnn.predict(x, 50, seed=3, chunk_size=50)
    np.testing.assert_allclose(data.posterior[OBS_MEAN].values[0], pred.samples.numpy())


def test_classifier_has_class_coords_integer_draws_and_consistent_loglik(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 2, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    bnn = BNN(nn.Sequential(nn.Linear(2, 3)), dist.Normal(0.0, 1.0), Categorical())
    fit = bnn.fit(x, y, epochs=20, lr=0.05, progress=False, seed=0)
    labels = ["a", "b", "c"]
    data = to_inference_data(
        bnn,
        x,
        y,
        num_samples=40,
        var_names=[OBS_MEAN, "0.weight"],
        class_labels=labels,
        seed=0,
        fit_result=fit,
    )
    assert data.posterior["0.weight"].dims == ("chain", "draw", "0.weight_dim_0", "0.weight_dim_1")
    probs = data.posterior[OBS_MEAN]
    assert probs.dims == ("chain", "draw", OBS_ID, "class")
    assert list(probs["class"].values) == ["a", "b", "c"]
    assert data.posterior_predictive["obs"].dtype.kind == "i"
    expected = np.log(np.take_along_axis(probs.values, y.numpy()[None, None, :, None], -1)[..., 0])
    np.testing.assert_allclose(data.log_likelihood["obs"].values, expected, rtol=1e-10)
    elbo = data[VARIATIONAL]["elbo"]
    assert elbo.dims == ("epoch",) and len(elbo) == 20
    np.testing.assert_allclose(elbo.values, fit.elbo)
    # string class labels and dotted names ("0.weight", "0.weight_dim_0") survive netCDF
    assert_netcdf_round_trip(data, tmp_path / "classifier.nc")


def test_without_targets_there_are_predictive_draws_but_no_loglik(exact):
    bnn, x, _, _ = exact
    data = to_inference_data(bnn, x, num_samples=10, seed=0)
    assert "log_likelihood" not in group_names(data) and "observed_data" not in group_names(data)
    assert data.posterior_predictive["obs"].shape == (1, 10, N)


def test_dropout_guide_exports_masked_weight_draws_and_drop_probabilities():
    x, y, *_ = conjugate_problem()
    net = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 1))
    bnn = BNN(
        net,
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(scale=SIGMA),
        guide=BernoulliDropout(p=0.5),
    )
    data = to_inference_data(bnn, x, y, num_samples=20, var_names=["0.weight"], seed=0)
    w = data.posterior["0.weight"].values[0]  # (20, 8, D): whole input columns are dropped
    dropped = (w == 0).all(axis=1)
    assert dropped.any() and not dropped.all()
    assert float(data[VARIATIONAL]["0.weight_p"]) == pytest.approx(0.5)
    assert data[VARIATIONAL]["0.weight_median"].dims == ("0.weight_dim_0", "0.weight_dim_1")


# --------------------------------------------------------------------------- ArviZ round trips
def assert_netcdf_round_trip(data, path) -> None:
    """Write with ``to_netcdf``, read back (``az.from_netcdf`` / ``xr.open_datatree``), compare."""
    data.to_netcdf(str(path))
    if isinstance(data, xr.DataTree):
        back = xr.open_datatree(path)
        read = {g: back[g].to_dataset().load() for g in back.children}
        written = {g: data[g].to_dataset() for g in data.children}
    else:
        back = az.from_netcdf(str(path))
        read = {g: back[g].load() for g in back.groups()}
        written = {g: data[g] for g in data.groups()}
    assert set(read) == set(written)
    for group, dataset in written.items():
        xr.testing.assert_identical(read[group], dataset)


def test_netcdf_round_trip(idata, tmp_path):
    assert_netcdf_round_trip(idata, tmp_path / "bnn.nc")


@only_arviz0
# ArviZ 0.23 calls a matplotlib helper that matplotlib 3.11 deprecated: nothing we can act on
@pytest.mark.filterwarnings(
    "ignore:Passing a dict or None as alias_mapping:matplotlib.MatplotlibDeprecationWarning"
)
def test_plot_ppc_and_plot_posterior(idata, tmp_path):
    axes = az.plot_ppc(idata, num_pp_samples=20, random_seed=0)
    plt.gcf().savefig(tmp_path / "ppc.png")
    assert np.size(axes) == 1
    axes = az.plot_posterior(idata, var_names=["weight"])
    assert np.size(axes) == D
    plt.close("all")


@pytest.mark.skipif(
    arviz_major_version() < 1,
    reason="ArviZ 1.x is not installed (it needs Python >= 3.12; see pyro_bdl.arviz's docstring)",
)
def test_arviz1_datatree_with_loo_summary_compare_and_khat(idata, exact, tmp_path):
    bnn, x, y, log_evidence = exact
    assert isinstance(idata, xr.DataTree)
    assert {"posterior", "log_likelihood", VARIATIONAL} <= set(idata.children)
    ll = direct_loglik(idata["posterior"]["weight"].values, x, y)
    loo = sum(logsumexp(psislw(-ll[:, n])[0] + ll[:, n]) for n in range(N))
    assert elpd(az.loo(idata)) == pytest.approx(loo, abs=1e-6)
    assert len(az.summary(idata, var_names=["weight"])) == D
    other = to_inference_data(bnn, x, y, num_samples=500, seed=1)
    assert len(az.compare({"a": idata, "b": other})) == 2
    assert psis_khat(bnn, x, y, num_samples=2000, seed=0).khat < 0.5
    assert psis_khat(exact_bnn(5.0)[0], x, y, num_samples=2000, seed=0).khat > 0.7
    idata.to_netcdf(tmp_path / "bnn.nc")
    back = xr.open_datatree(tmp_path / "bnn.nc")
    xr.testing.assert_allclose(
        back["log_likelihood"].to_dataset(), idata["log_likelihood"].to_dataset()
    )


@only_arviz0
def test_arviz0_result_is_inference_data(idata):
    assert isinstance(idata, az.InferenceData)


# --------------------------------------------------------------------------- MCMC
def _sequential_chains(monkeypatch):
    """Make Pyro draw MCMC chains in this process, one after the other, on any machine."""
    monkeypatch.setattr(pyro.infer.mcmc.api.mp, "cpu_count", lambda: 1)


def test_mcmc_keeps_its_chains_and_matches_the_direct_loglik(monkeypatch):
    bnn, x, y, _ = exact_bnn()
    _sequential_chains(monkeypatch)
    with pytest.warns(UserWarning, match="drawn sequentially"):
        mcmc = MCMC(
            NUTS(bnn.model), num_samples=30, warmup_steps=30, num_chains=2, disable_progbar=True
        )
    mcmc.run(x, y)
    data = to_inference_data(mcmc, x, y, var_names=["weight", OBS_MEAN])
    assert data.posterior["weight"].shape == (2, 30, 1, D)
    assert data.sample_stats["diverging"].shape == (2, 30)
    assert data.posterior.attrs["inference"] == "mcmc"
    ll = direct_loglik(data.posterior["weight"].values, x, y).reshape(2, 30, N)
    np.testing.assert_allclose(data.log_likelihood["obs"].values, ll, rtol=1e-12, atol=1e-12)
    # thinning keeps both chains, evenly spaced draws
    thin = to_inference_data(mcmc, x, y, num_samples=10, var_names=["weight"], bnn=bnn)
    keep = np.unique(np.linspace(0, 29, 10).round().astype(int))
    weights = data.posterior["weight"].values
    np.testing.assert_array_equal(thin.posterior["weight"].values, weights[:, keep])
    # the same draws as a Prediction
    pred = prediction_from_samples(bnn, mcmc, x)
    np.testing.assert_allclose(
        pred.samples.numpy(), data.posterior[OBS_MEAN].values.reshape(60, N), rtol=1e-12
    )


def test_samples_grouped_by_chain_are_accepted_with_bnn():
    bnn, x, y, _ = exact_bnn()
    grouped = {"weight": torch.randn(3, 5, 1, D)}
    data = to_inference_data(grouped, x, y, bnn=bnn, var_names=["weight"])
    np.testing.assert_array_equal(data.posterior["weight"].values, grouped["weight"].numpy())
    with pytest.raises(ValueError, match="grouped by chain"):
        to_inference_data({"weight": torch.randn(5, 1, D)[:, 0, 0]}, x, y, bnn=bnn)
    with pytest.raises(ValueError, match="bnn="):
        to_inference_data(grouped, x, y)


@pytest.mark.slow
def test_nuts_on_a_1_16_1_bnn_has_converged_predictive_means(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = 2 * torch.rand(20, 1, generator=g) - 1
    y = torch.sin(3 * x[:, 0]) + 0.3 * torch.randn(20, generator=g)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.3))
    bnn.fit(x, y, epochs=500, lr=2e-2, progress=False, seed=0)
    with torch.no_grad(), pyro.plate("chains", 4, dim=-2):  # 4 starts drawn from the fitted guide
        init = {k: v[:, 0] for k, v in bnn.guide(x, None).items()}
    _sequential_chains(monkeypatch)
    with pytest.warns(UserWarning, match="drawn sequentially"):
        mcmc = MCMC(
            NUTS(bnn.model, max_tree_depth=5),
            num_samples=200,
            warmup_steps=100,
            num_chains=4,
            initial_params=init,
            disable_progbar=True,
        )
    with pyro.validation_enabled(False):  # argument checks cost ~20 % of each gradient here
        mcmc.run(x, y)
    x_test = torch.tensor([[-0.8], [-0.4], [0.0], [0.4], [0.8]])
    data = to_inference_data(mcmc, x_test)
    assert data.posterior[OBS_MEAN].shape == (4, 200, 5)
    rhat = az.rhat(data.posterior)[OBS_MEAN].values
    assert (rhat < 1.05).all(), rhat  # measured: 1.002-1.015 (100 draws per chain: up to 1.06)
    pred = prediction_from_samples(bnn, mcmc, x_test)
    assert pred.samples.shape == (800, 5)


# --------------------------------------------------------------------------- memory
MEMORY_SCRIPT = textwrap.dedent(
    """
    import torch, pyro.distributions as dist
    from torch import nn
    from pyro_bdl import BNN, HomoskedasticGaussian
    from pyro_bdl.arviz import to_inference_data

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

    net = nn.Sequential(nn.Linear(1000, 1000), nn.Tanh(), nn.Linear(1000, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
    x, y = torch.randn(100, 1000), torch.randn(100)
    to_inference_data(bnn, x[:2], y[:2], num_samples=2)  # builds the guide, warms up imports
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    data = to_inference_data(bnn, x, y, num_samples=20)
    weights = sum(p.numel() for p in net.parameters())
    print(weights, status("VmHWM") - before, data.posterior.nbytes)
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_exporting_a_million_weight_network_adds_less_than_200_mb():
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, check=True
    )
    weights, extra, posterior_bytes = map(int, out.stdout.split())
    assert weights > 1_000_000
    assert extra < 200 * 2**20, f"peak RSS grew by {extra / 2**20:.0f} MB"
    assert posterior_bytes < 100_000  # obs_mean only: 20 draws x 100 points


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_rejected_with_clear_messages(exact):
    bnn, x, y, _ = exact
    with pytest.raises(ValueError, match="num_samples to be a positive int, but got 0"):
        to_inference_data(bnn, x, y, num_samples=0)
    with pytest.raises(ValueError, match="num_samples to be a positive int, but got -5"):
        psis_khat(bnn, x, y, num_samples=-5)
    with pytest.raises(ValueError, match="Expected num_samples"):
        to_inference_data(bnn, x, y)
    with pytest.raises(ValueError, match="same number of rows.*40 and 39"):
        to_inference_data(bnn, x, y[:-1], num_samples=10)
    with pytest.raises(ValueError, match="same number of rows.*40 and 39"):
        psis_khat(bnn, x, y[:-1], num_samples=10)
    with pytest.raises(ValueError, match=r"got \['0.weight'\], which is not a site"):
        to_inference_data(bnn, x, y, num_samples=10, var_names=["0.weight"])
    with pytest.raises(TypeError, match="Expected fitted to be a BNN"):
        to_inference_data(nn.Linear(D, 1), x, y, num_samples=10)
    with pytest.raises(ValueError, match="fit_result only with a BNN"):
        to_inference_data({"weight": torch.zeros(1, 2, 1, D)}, x, y, bnn=bnn, fit_result=object())
