"""Hierarchical priors (issue #20, items 1-2): hyper-sites, centred/non-centred, guides, NUTS.

Ground truth: the centred and non-centred parameterisations have the same log joint density up
to the Jacobian of ``z -> W = z * s(h)`` (exact, 1e-10); the trace-free ELBO equals Pyro's
traced estimate from the same random numbers (1e-10); on a sparse linear regression
(20 inputs, 3 relevant, N = 100, noise 0.5 known) the horseshoe shrinks the 17 irrelevant
posterior means below 0.05 with the relevant ones within 2 posterior sd of the truth, and ARD
shrinks them to at most 0.75x IID N(0, 1)'s mean with a smaller maximum; non-centred NUTS on a
small hierarchical BNN has no divergences (r-hat < 1.05) where the centred one has some.
"""

from __future__ import annotations

import copy
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS
from torch import nn

from pyro_bdl import (
    BNN,
    BernoulliDropout,
    ConcreteDropout,
    HomoskedasticGaussian,
    IIDPrior,
    MeanFieldNormal,
)
from pyro_bdl.hierarchical import (
    ARDPrior,
    HierarchicalPrior,
    HorseshoePrior,
    LayerScalePrior,
    noncentred_site,
)
from pyro_bdl.inference.elbo import TracedELBO, TraceFreeELBO, make_objective
from pyro_bdl.inference.posterior import GuidePosterior
from pyro_bdl.registry import from_config, to_config


def _net(d_in: int = 3, hidden: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def _data(n: int = 12, d_in: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g)
    return x, torch.sin(x[:, 0]) + 0.1 * torch.randn(n, generator=g)


def _bnn(prior, net=None, guide=None) -> BNN:
    pyro.clear_param_store()
    torch.manual_seed(0)
    return BNN(net or _net(), prior, HomoskedasticGaussian(0.1), guide=guide or MeanFieldNormal())


PRIORS = {
    "layer": LayerScalePrior(),
    "layer_unit_halfnormal": LayerScalePrior("half_normal", 2.0, per="unit"),
    "layer_invgamma": LayerScalePrior("inverse_gamma", concentration=2.0, rate=3.0),
    "ard": ARDPrior(),
    "horseshoe": HorseshoePrior(0.1),
    "horseshoe_input_plain": HorseshoePrior(0.5, local="input", regularised=False),
}


# ------------------------------------------------------------------------- names and shapes
def test_hyper_site_names_and_shapes_are_stable():
    x, _ = _data()
    expected = {
        "layer": {"0.scale": (), "2.scale": ()},
        "layer_unit_halfnormal": {"0.scale": (4,), "2.scale": (1,)},
        "layer_invgamma": {"0.variance": (), "2.variance": ()},
        "ard": {"0.input_scale": (3,)},
        "horseshoe": {
            "global_scale": (),
            "0.local_scale": (4, 3),
            "2.local_scale": (1, 4),
            "slab_variance": (),
        },
        "horseshoe_input_plain": {"global_scale": (), "0.local_scale": (3,), "2.local_scale": (4,)},
    }
    weights = {"0.weight": (4, 3), "0.bias": (4,), "2.weight": (1, 4), "2.bias": (1,)}
    for key, prior in PRIORS.items():
        model = _bnn(prior).bayesian_model
        assert model.hyper_site_names == list(expected[key]), key
        latent = {k: tuple(v) for k, v in model.latent_shapes(x).items()}
        want = {**expected[key], **{noncentred_site(k): v for k, v in weights.items()}}
        assert latent == want, key
        assert model.latent_site_names == list(want), key


def test_centred_sites_are_the_weights_and_prefix_applies():
    x, _ = _data()
    pyro.clear_param_store()
    model = BNN(_net(), LayerScalePrior(centred=True), HomoskedasticGaussian(0.1)).bayesian_model
    assert list(model.latent_shapes(x)) == ["0.scale", "2.scale", *model.site_names]
    from pyro_bdl.model import BayesianModel

    prefixed = BayesianModel(_net(), ARDPrior(), HomoskedasticGaussian(0.1), prefix="f.")
    assert prefixed.hyper_site_names == ["f.0.input_scale"]
    assert "f.0.weight_z" in prefixed.latent_shapes(x)


def test_weights_are_z_times_scale_and_recorded():
    x, y = _data()
    model = _bnn(HorseshoePrior(0.3)).bayesian_model
    pyro.set_rng_seed(1)
    trace = poutine.trace(model).get_trace(x, y)
    tau = trace.nodes["global_scale"]["value"]
    lam = trace.nodes["0.local_scale"]["value"]
    c2 = trace.nodes["slab_variance"]["value"]
    z = trace.nodes["0.weight_z"]["value"]
    scale = tau * lam * c2.sqrt() / (c2 + tau**2 * lam**2).sqrt()
    torch.testing.assert_close(trace.nodes["0.weight"]["value"], z * scale, rtol=1e-12, atol=0)
    # biases keep the fixed N(0, other_scale^2): W = z
    torch.testing.assert_close(trace.nodes["0.bias"]["value"], trace.nodes["0.bias_z"]["value"])


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LayerScalePrior("cauchy"), r"hyperprior in .*'half_cauchy'.*got 'cauchy'"),
        (lambda: LayerScalePrior(scale=-1.0), r"scale to be a positive number, but got -1.0"),
        (lambda: LayerScalePrior(per="row"), r"per in \('layer', 'unit'\), but got 'row'"),
        (lambda: ARDPrior(concentration=0.0), r"concentration to be a positive number"),
        (lambda: HorseshoePrior(0.0), r"global_scale to be a positive number, but got 0.0"),
        (lambda: HorseshoePrior(local="output"), r"local in \('weight', 'input'\).*per-output"),
        (lambda: HorseshoePrior(slab_df=float("inf")), r"slab_df to be finite"),
    ],
)
def test_bad_arguments_name_expected_and_received(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types_and_structures():
    with pytest.raises(TypeError, match="centred to be True or False, but got 'yes'"):
        LayerScalePrior(centred="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"param to name a random weight matrix.*'nope'"):
        _bnn(ARDPrior(param="nope"))
    biases_only = lambda n, p: n.endswith("bias")  # noqa: E731
    with pytest.raises(ValueError, match="random weight matrix .* for ARD.*LayerScalePrior"):
        _bnn(ARDPrior(include=biases_only))
    with pytest.raises(ValueError, match="random weight matrix .* for the horseshoe"):
        _bnn(HorseshoePrior(include=biases_only))
    with pytest.raises(TypeError, match=r"fixed distribution for '0.weight'.*hierarchical"):
        _bnn(LayerScalePrior()).bayesian_model.prior_dists()  # Laplace / SG-MCMC need one


def test_config_round_trip_and_save_load(tmp_path):
    for prior in [*PRIORS.values(), LayerScalePrior(centred=True), ARDPrior(other_scale=2.0)]:
        data = to_config(prior)
        assert data is not None
        rebuilt = from_config(data, "prior")
        assert type(rebuilt) is type(prior) and rebuilt.config() == prior.config()
        assert repr(rebuilt) == repr(prior)
    x, y = _data()
    bnn = _bnn(HorseshoePrior(0.2, local="input"))
    bnn.fit(x, y, epochs=3, progress=False, seed=0)
    path = bnn.save(tmp_path / "hs.pt")
    loaded = BNN.load(path, _net())
    assert loaded.bayesian_model.prior.config() == bnn.bayesian_model.prior.config()
    a = bnn.predict(x, 20, seed=3).samples
    b = loaded.predict(x, 20, seed=3).samples
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# ------------------------------------------------------------------------- the same model
@pytest.mark.parametrize("key", list(PRIORS))
def test_centred_and_noncentred_log_joint_differ_by_the_jacobian(key):
    """log p_c(h, W, y) = log p_nc(h, z, y) - sum log s(h) at W = z * s(h), exactly."""
    x, y = _data()
    prior = PRIORS[key]
    nc = _bnn(prior).bayesian_model
    centred = copy.copy(prior)
    centred.centred = True
    c = _bnn(centred).bayesian_model
    assert isinstance(c.prior, HierarchicalPrior) and c.prior.centred
    pyro.set_rng_seed(2)
    tr_nc = poutine.trace(nc).get_trace(x, y)
    data = {s: tr_nc.nodes[s]["value"] for s in nc.hyper_site_names + nc.site_names}
    tr_c = poutine.trace(poutine.condition(c, data=data)).get_trace(x, y)
    params = dict(nc.net.named_parameters())
    hypers = {h: tr_nc.nodes[h]["value"] for h in nc.hyper_site_names}
    log_jac = sum(
        torch.as_tensor(prior.weight_scale(n, params[n], hypers))
        .log()
        .expand(params[n].shape)
        .sum()
        for n in nc.random_names
    )
    torch.testing.assert_close(
        tr_c.log_prob_sum(), tr_nc.log_prob_sum() - log_jac, rtol=1e-12, atol=1e-10
    )


def test_noncentred_marginal_of_w_matches_the_centred_one():
    """Prior draws of one weight: same distribution (moments of log|W| and a KS statistic)."""
    x, _ = _data()
    draws = {}
    for centred in (False, True):
        model = _bnn(LayerScalePrior("half_normal", centred=centred)).bayesian_model
        pyro.set_rng_seed(4)
        with pyro.plate("s", 20000, dim=-2):
            tr = poutine.trace(model).get_trace(x[:2])
        draws[centred] = tr.nodes["0.weight"]["value"][:, 0, 0, 0]
    a, b = draws[False].sort().values, draws[True].sort().values
    # W = s z, s ~ HalfNormal(1), z ~ N(0, 1): E|W| = 2/pi, E W^2 = 1
    for w in (a, b):
        assert abs(float(w.abs().mean()) - 2 / math.pi) < 0.02
        assert abs(float(w.square().mean()) - 1.0) < 0.05
    grid = torch.linspace(-3, 3, 61)
    ks = (torch.searchsorted(a, grid) - torch.searchsorted(b, grid)).abs().max() / len(a)
    assert float(ks) < 0.02  # two-sample KS at n = 20000: 1% critical value 0.016


# ------------------------------------------------------------------------- guides / estimators
@pytest.mark.parametrize("key", list(PRIORS))
def test_trace_free_equals_traced_on_hyper_sites(key):
    x, y = _data()
    bnn = _bnn(PRIORS[key])
    bnn.ensure_guide(x)
    model = bnn.bayesian_model
    free = make_objective(model, bnn.guide, (x, y), len(x))
    assert isinstance(free, TraceFreeELBO)
    traced = make_objective(model, bnn.guide, (x, y), len(x), estimator="traced")
    for particles in (1, 3):
        pyro.set_rng_seed(5)
        a, pa = free(x, y, len(x), particles)
        pyro.set_rng_seed(5)
        b, pb = traced(x, y, len(x), particles)
        torch.testing.assert_close(a.loglik, b.loglik, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(a.kl, b.kl, rtol=1e-12, atol=1e-10)
    # every guide parameter of the hyper-sites is trained
    assert {id(p) for p in pa} == {id(p) for p in pb}


def test_centred_routes_to_the_traced_estimator():
    x, y = _data()
    bnn = _bnn(LayerScalePrior(centred=True))
    bnn.ensure_guide(x)
    model = bnn.bayesian_model
    assert isinstance(make_objective(model, bnn.guide, (x, y), len(x)), TracedELBO)
    with pytest.raises(ValueError, match="trace-free ELBO.*Use estimator='auto' or 'traced'"):
        make_objective(model, bnn.guide, (x, y), len(x), estimator="trace_free")
    result = bnn.fit(x, y, epochs=3, progress=False, seed=0)
    assert all(math.isfinite(e) for e in result.elbo)


def test_guide_on_hyper_sites_is_log_normal():
    x, y = _data()
    bnn = _bnn(LayerScalePrior())
    bnn.ensure_guide(x)
    q = bnn.guide.get_site_dist("0.scale")
    h = q.sample((5000,))
    assert bool((h > 0).all())
    loc, scale = bnn.guide.loc_scale()["0.scale"]
    se = float(scale) / math.sqrt(len(h))
    torch.testing.assert_close(h.log().mean(), loc, atol=5 * se, rtol=0)
    torch.testing.assert_close(h.log().std(), scale, atol=0.05 * float(scale), rtol=0)


@pytest.mark.parametrize("builder", [BernoulliDropout(0.1), ConcreteDropout()])
def test_dropout_guides_refuse_hierarchical_priors(builder):
    x, y = _data()
    bnn = _bnn(LayerScalePrior(), guide=builder)
    with pytest.raises(ValueError, match=r"without hyper-sites.*\['0.scale', '2.scale'\].*Mean"):
        bnn.fit(x, y, epochs=1, progress=False)


@pytest.mark.parametrize("estimator", ["local_reparameterization", "flipout"])
def test_output_noise_estimators_refuse_hierarchical_priors(estimator):
    x, y = _data()
    bnn = _bnn(ARDPrior(), guide=MeanFieldNormal(estimator=estimator))
    with pytest.raises(ValueError, match=r"without hyper-sites.*estimator='sample'"):
        bnn.fit(x, y, epochs=1, progress=False)


def test_fit_predict_and_arviz_export():
    from pyro_bdl.arviz import to_inference_data

    x, y = _data()
    bnn = _bnn(HorseshoePrior(0.2))
    result = bnn.fit(x, y, epochs=20, lr=0.02, progress=False, seed=0)
    assert result.elbo[-1] > result.elbo[0]
    pred = bnn.predict(x, 30, seed=1)
    assert pred.samples.shape == (30, len(x))
    idata = to_inference_data(bnn, x, y, num_samples=10, var_names=["global_scale", "obs_mean"])
    assert idata.posterior["global_scale"].shape == (1, 10)
    assert bool((idata.posterior["global_scale"] > 0).all())
    assert idata.log_likelihood["obs"].shape == (1, 10, len(x))
    # guide draws of the latent sites give the prediction's weights through z * s(h)
    model = bnn.bayesian_model
    post = GuidePosterior(bnn.guide, model, args=(x,), shapes=model.latent_shapes(x))
    sites = post.sample(7).sites
    f = model.outputs(sites, x, by_site=True)
    assert f.shape == (7, len(x), 1)


def test_nuts_runs_and_its_draws_predict():
    from pyro_bdl.arviz import to_inference_data

    x, y = _data(n=6)
    bnn = _bnn(LayerScalePrior(), net=_net(hidden=2))
    mcmc = MCMC(NUTS(bnn.model), num_samples=8, warmup_steps=8, disable_progbar=True)
    mcmc.run(x, y)
    samples = mcmc.get_samples()
    assert set(samples) == set(bnn.bayesian_model.latent_site_names)
    pred = bnn.predict_from_samples(x, samples)
    assert pred.samples.shape == (8, len(x))
    idata = to_inference_data(mcmc, x, y, bnn=bnn, var_names=["0.scale"])
    assert idata.posterior["0.scale"].shape == (1, 8)


# ------------------------------------------------------------------------- ground truth
def _sparse_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 20, generator=g)
    w = torch.zeros(20)
    w[:3] = torch.tensor([1.5, -1.0, 0.8])
    return x, x @ w + 0.5 * torch.randn(100, generator=g), w


def _sparse_fit(prior, epochs: int, lr: float, particles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and sd of the 20 weights under a mean-field fit (4000 guide draws)."""
    x, y, _ = _sparse_data()
    pyro.clear_param_store()
    torch.manual_seed(0)
    bnn = BNN(nn.Linear(20, 1), prior, HomoskedasticGaussian(0.5), guide=MeanFieldNormal())
    bnn.fit(x, y, epochs=epochs, lr=lr, num_particles=particles, progress=False, seed=0)
    model = bnn.bayesian_model
    post = GuidePosterior(bnn.guide, model, args=(x,), shapes=model.latent_shapes(x))
    with torch.no_grad():
        w = model.weights_from_sites(post.sample(4000).sites)["weight"][:, 0, :]
    return w.mean(0), w.std(0)


@pytest.mark.slow
def test_sparse_regression_horseshoe_and_ard_shrink_irrelevant_weights():
    _, _, truth = _sparse_data()
    tau0 = 3 / 17 * 0.5 / math.sqrt(100)  # Piironen & Vehtari's tau0 for p0 = 3 of D = 20
    iid_mean, _ = _sparse_fit(IIDPrior(dist.Normal(0.0, 1.0)), 1500, 0.03, 2)
    ard_mean, _ = _sparse_fit(ARDPrior(), 1500, 0.03, 2)
    hs_mean, hs_sd = _sparse_fit(HorseshoePrior(tau0), 1500, 0.03, 2)
    iid_irr, ard_irr, hs_irr = iid_mean[3:].abs(), ard_mean[3:].abs(), hs_mean[3:].abs()
    assert float(hs_irr.max()) < 0.05
    assert bool(((hs_mean[:3] - truth[:3]).abs() < 2 * hs_sd[:3]).all())
    assert float(ard_irr.mean()) <= 0.75 * float(iid_irr.mean())
    assert float(ard_irr.max()) < float(iid_irr.max())


def _nuts_stats(centred: bool) -> tuple[int, float]:
    """Divergences and the largest split r-hat of one NUTS chain (150 warm-up, 300 draws)."""
    x = torch.linspace(-2, 2, 5).unsqueeze(-1)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    prior = LayerScalePrior("half_normal", centred=centred)
    bnn = BNN(_net(1, 8), prior, HomoskedasticGaussian(1.0))
    kernel = NUTS(bnn.model, max_tree_depth=5)
    mcmc = MCMC(kernel, num_samples=300, warmup_steps=150, disable_progbar=True)
    mcmc.run(x, torch.sin(x[:, 0]))
    diag = mcmc.diagnostics()
    divergences = sum(len(v) for v in diag["divergences"].values())
    rhat = max(
        float(v["r_hat"].max()) for v in diag.values() if isinstance(v, dict) and "r_hat" in v
    )
    return divergences, rhat


@pytest.mark.slow
def test_noncentred_nuts_mixes_where_centred_does_not():
    """1-8-1 tanh net, layer scales ~ half-normal(1), 5 points with noise 1 (a funnel)."""
    nc_div, nc_rhat = _nuts_stats(centred=False)
    c_div, c_rhat = _nuts_stats(centred=True)
    assert nc_div == 0 and nc_rhat < 1.05, (nc_div, nc_rhat)
    assert c_div > 0 or c_rhat > 1.1, (c_div, c_rhat)  # the centred funnel: stuck or diverging


def test_assigning_a_hierarchical_prior_after_construction():
    x, y = _data()
    bnn = _bnn(IIDPrior(dist.Normal(0.0, 1.0)))
    assert bnn.bayesian_model.hyper_site_names == []
    bnn.prior = LayerScalePrior()
    assert bnn.bayesian_model.hyper_site_names == ["0.scale", "2.scale"]
    trace = poutine.trace(bnn.model).get_trace(x, y)
    assert trace.nodes["0.scale"]["type"] == "sample" and "0.weight_z" in trace.nodes
