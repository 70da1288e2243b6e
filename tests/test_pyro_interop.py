"""Pyro's own tools on ``bnn.model`` (issue #15, items 3, 5 and 12).

* the draws ``MCMC``, ``mcmc.get_samples()``, ``get_samples(group_by_chain=True)`` and
  ``Predictive`` produce are read by one rule (``group_samples``): chains and draws are never
  confused, mis-shaped draws are refused naming the layouts, and ``to_inference_data`` and
  ``predict_from_samples`` agree with the same draws taken by hand;
* NUTS on a model with a learned noise scale (a ``pyro.param``) warns, naming the fix; with a
  prior on the noise it samples it;
* ``bnn.model`` records the noise-free mean E[y | x, W] as the deterministic site ``obs_mean``,
  which adds nothing to the log density.
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, Predictive
from torch import nn
from torch.func import functional_call

from pyro_bdl import BNN, Bernoulli, Categorical, HeteroskedasticGaussian, HomoskedasticGaussian
from pyro_bdl.arviz import OBS_MEAN, OBS_SCALE, prediction_from_samples, to_inference_data
from pyro_bdl.inference import Draws, SamplesPosterior, run_model
from pyro_bdl.inference.posterior import FixedParameterWarning, group_samples
from pyro_bdl.likelihoods.distillation import Distillation, GaussianDistillation
from pyro_bdl.model import OBS_MEAN as MODEL_OBS_MEAN

az = pytest.importorskip("arviz")

N = 12
SITES = ["0.weight", "0.bias", "2.weight", "2.bias"]


def data(n: int = N):
    g = torch.Generator().manual_seed(1)
    x = torch.linspace(-1, 1, n).unsqueeze(-1)
    return x, torch.sin(3 * x[:, 0]) + 0.1 * torch.randn(n, generator=g)


def regression_bnn(likelihood=None) -> BNN:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
    return BNN(net, dist.Normal(0.0, 1.0), likelihood or HomoskedasticGaussian(scale=0.1))


def fitted_bnn() -> tuple[BNN, torch.Tensor, torch.Tensor]:
    x, y = data()
    bnn = regression_bnn()
    bnn.fit(x, y, epochs=20, lr=1e-2, progress=False, seed=0)
    return bnn, x, y


def loop_means(bnn: BNN, flat: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """E[y | x, W_s] draw by draw, with the network called directly: ``(S, N)``."""
    num = len(flat["0.weight"])
    return torch.stack(
        [functional_call(bnn.net, {k: flat[k][s] for k in SITES}, (x,))[:, 0] for s in range(num)]
    )


def two_chains(monkeypatch, bnn: BNN, x, y, draws: int = 15) -> MCMC:
    monkeypatch.setattr(pyro.infer.mcmc.api.mp, "cpu_count", lambda: 1)  # chains in this process
    with pytest.warns(UserWarning, match="drawn sequentially"):
        mcmc = MCMC(
            NUTS(bnn.model, max_tree_depth=3),
            num_samples=draws,
            warmup_steps=draws,
            num_chains=2,
            disable_progbar=True,
        )
    mcmc.run(x, y)
    return mcmc


# ------------------------------------------------------------------ item 3: samples layouts
def test_a_predictive_dict_is_one_chain_of_s_draws_with_finite_ess():
    bnn, x, y = fitted_bnn()
    out = Predictive(bnn.model, guide=bnn.guide, num_samples=100, return_sites=SITES + ["obs"])(x)
    assert out["2.bias"].shape == (100, 1, 1)  # Predictive's layout: (S, 1, *site shape)
    idata = to_inference_data(out, x, y, bnn=bnn, var_names=[OBS_MEAN, "2.bias"])
    bias = idata.posterior["2.bias"].values
    assert bias.shape == (1, 100, 1)  # not 100 chains of one draw
    np.testing.assert_array_equal(bias[0], out["2.bias"][:, 0].numpy())
    assert idata.log_likelihood["obs"].shape == (1, 100, N)
    flat = {k: out[k][:, 0] for k in SITES}
    np.testing.assert_allclose(
        idata.posterior[OBS_MEAN].values[0], loop_means(bnn, flat, x).numpy(), rtol=1e-12
    )
    ess = az.summary(idata, var_names=["2.bias"], kind="diagnostics")["ess_bulk"]
    assert np.isfinite(ess.values).all() and (ess.values > 10).all()


def test_mcmc_object_flat_and_grouped_draws_keep_or_merge_the_chains(monkeypatch):
    x, y = data()
    bnn = regression_bnn()
    mcmc = two_chains(monkeypatch, bnn, x, y)
    grouped = mcmc.get_samples(group_by_chain=True)
    assert grouped["2.bias"].shape == (2, 15, 1)
    flat = mcmc.get_samples()
    expected = grouped["0.weight"].numpy()
    for source in (mcmc, grouped):
        idata = to_inference_data(source, x, y, bnn=bnn, var_names=["0.weight", OBS_MEAN])
        np.testing.assert_array_equal(idata.posterior["0.weight"].values, expected)
        assert idata.log_likelihood["obs"].shape == (2, 15, N)
    merged = to_inference_data(flat, x, y, bnn=bnn, var_names=["0.weight"])
    np.testing.assert_array_equal(
        merged.posterior["0.weight"].values, expected.reshape(1, 30, 4, 1)
    )
    # a SamplesPosterior keeps the chains it was read with
    posterior = SamplesPosterior.from_samples(mcmc, bnn.bayesian_model.latent_shapes(x))
    assert posterior.chains == 2 and posterior.num_draws == 30
    kept = to_inference_data(posterior, x, y, bnn=bnn, var_names=["0.weight"])
    np.testing.assert_array_equal(kept.posterior["0.weight"].values, expected)
    # thinning keeps both chains
    keep = np.unique(np.linspace(0, 14, 5).round().astype(int))
    for source in (grouped, posterior):
        thin = to_inference_data(source, x, y, bnn=bnn, num_samples=5, var_names=["0.weight"])
        np.testing.assert_array_equal(thin.posterior["0.weight"].values, expected[:, keep])
    # the same 30 draws as a Prediction, whichever layout they come in
    reference = loop_means(bnn, flat, x)
    predictive_layout = {k: v.unsqueeze(1) for k, v in flat.items()}
    for source in (mcmc, flat, grouped, predictive_layout):
        pred = bnn.predict_from_samples(x, source)
        torch.testing.assert_close(pred.samples, reference, rtol=1e-12, atol=1e-12)
        again = prediction_from_samples(bnn, source, x)
        torch.testing.assert_close(again.samples, reference, rtol=1e-12, atol=1e-12)


def test_predict_from_samples_on_a_predictive_dict_equals_predict_on_its_draws():
    bnn, x, _ = fitted_bnn()
    out = Predictive(bnn.model, guide=bnn.guide, num_samples=40, parallel=True)(x)
    assert set(out) == set(SITES) | {"obs", OBS_MEAN}  # the extra keys are ignored
    pred = bnn.predict_from_samples(x, out)
    draws = SamplesPosterior({k: out[k][:, 0] for k in SITES})
    direct = bnn.predict(x, 40, posterior=draws)
    torch.testing.assert_close(pred.samples, direct.samples, rtol=0, atol=0)
    torch.testing.assert_close(pred.scale, direct.scale, rtol=0, atol=0)
    torch.testing.assert_close(pred.samples, out[OBS_MEAN], rtol=1e-12, atol=1e-12)


def test_mis_shaped_or_inconsistent_draws_are_refused_naming_the_layouts():
    bnn, x, y = fitted_bnn()
    shapes = bnn.bayesian_model.latent_shapes(x)
    good = {k: torch.zeros((6,) + shapes[k]) for k in SITES}

    def refused(samples, match, **kw):
        with pytest.raises(ValueError, match=match):
            bnn.predict_from_samples(x, samples, **kw)
        with pytest.raises(ValueError, match=match):
            to_inference_data(samples, x, y, bnn=bnn, **kw)

    layouts = r"Predictive's output.*grouped by chain"
    refused({**good, "0.weight": torch.zeros(6, 4)}, layouts)  # the site's shape is (4, 1)
    refused(
        {**good, "0.bias": torch.zeros(3, 2, 2, 4)}, layouts
    )  # 3 leading dims, not Predictive's
    refused(
        {k: v.expand(3, 6, *v.shape[1:]) for k, v in good.items()},
        "group_by_chain=False",
        group_by_chain=False,
    )
    refused(good, r"grouped by chain, \(chains, draws", group_by_chain=True)
    refused({**good, "2.bias": torch.zeros(5, 1)}, r"same number of draws")
    refused({**good, "2.bias": torch.zeros(2, 3, 1)}, r"same number of draws")  # 1x6 vs 2x3
    refused({k: v for k, v in good.items() if k != "2.bias"}, r"none for \['2.bias'\]")
    with pytest.raises(TypeError, match="None, True or False"):
        group_samples(good, shapes, group_by_chain="yes")


def test_group_by_chain_forces_chains_of_one_draw():
    """(C, 1, *shape) reads as Predictive's C draws of one chain unless group_by_chain=True."""
    bnn, x, y = fitted_bnn()
    shapes = bnn.bayesian_model.latent_shapes(x)
    draws = {k: torch.randn((4, 1) + shapes[k]) for k in SITES}
    assert group_samples(draws, shapes)["0.bias"].shape == (1, 4, 4)
    assert group_samples(draws, shapes, group_by_chain=True)["0.bias"].shape == (4, 1, 4)
    idata = to_inference_data(draws, x, y, bnn=bnn, var_names=["0.bias"], group_by_chain=True)
    assert idata.posterior["0.bias"].shape == (4, 1, 4)


# ------------------------------------------------------------------ item 5: NUTS and the noise
def line_data():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 40).unsqueeze(-1)
    return x, 2 * x[:, 0] - 0.5 + 0.1 * torch.randn(40, generator=g)  # true noise 0.1


def line_bnn(likelihood) -> BNN:
    torch.manual_seed(0)
    return BNN(nn.Linear(1, 1), dist.Normal(0.0, 1.0), likelihood)


def test_nuts_leaves_a_learned_noise_scale_fixed_and_says_so():
    x, y = line_data()
    bnn = line_bnn(HomoskedasticGaussian())  # scale=None: a pyro.param, initially 1.0
    mcmc = MCMC(
        NUTS(bnn.model, max_tree_depth=3), num_samples=20, warmup_steps=20, disable_progbar=True
    )
    mcmc.run(x, y)
    assert set(mcmc.get_samples()) == {"weight", "bias"}  # the scale was never sampled
    fix = r"'BNN\d+\.likelihood\.scale' \(= 1\).*precision_prior=dist\.Gamma"
    with pytest.warns(FixedParameterWarning, match=fix):
        idata = to_inference_data(mcmc, x, y, var_names=[OBS_SCALE])
    np.testing.assert_array_equal(idata.posterior[OBS_SCALE].values, 1.0)  # its initial value
    with pytest.warns(FixedParameterWarning, match=fix):
        bnn.predict_from_samples(x, mcmc.get_samples())
    with pytest.warns(FixedParameterWarning, match=fix):
        prediction_from_samples(bnn, mcmc, x)


@pytest.mark.slow
def test_nuts_with_a_prior_on_the_noise_samples_it():
    """The documented fix: a prior on the precision makes the noise a latent site that NUTS
    samples; its posterior mean lands near the true 0.1 (posterior sd about 0.1 / sqrt(2 * 40)
    = 0.011; the tolerance is 3 of them)."""
    x, y = line_data()
    bnn = line_bnn(HomoskedasticGaussian(precision_prior=dist.Gamma(1.0, 0.01)))
    mcmc = MCMC(NUTS(bnn.model), num_samples=150, warmup_steps=150, disable_progbar=True)
    mcmc.run(x, y)
    assert set(mcmc.get_samples()) == {"weight", "bias", "precision"}
    idata = to_inference_data(mcmc, x, y, var_names=[OBS_SCALE, "weight"])  # no warning
    scale = idata.posterior[OBS_SCALE].values
    assert abs(scale.mean() - 0.1) < 0.033, scale.mean()
    torch.testing.assert_close(
        torch.as_tensor(scale[0, :, 0]),
        mcmc.get_samples()["precision"].rsqrt(),
        rtol=1e-12,
        atol=0,
    )
    assert abs(float(idata.posterior["weight"].mean()) - 2.0) < 0.05


def test_learned_network_parameters_outside_the_prior_warn_and_frozen_ones_do_not():
    x, y = line_data()
    bnn = BNN(
        nn.Linear(1, 1),
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(scale=0.1),
        include=lambda name, p: name == "weight",
    )
    draws = {"weight": torch.randn(5, 1, 1)}
    with pytest.warns(FixedParameterWarning, match=r"\.net\.bias' \(= .*requires_grad_\(False\)"):
        bnn.predict_from_samples(x, draws)
    bnn.net.bias.requires_grad_(False)  # fixed on purpose: no pyro.param, no warning
    bnn.predict_from_samples(x, draws)
    to_inference_data(draws, x, y, bnn=bnn)


# ------------------------------------------------------------------ item 12: the obs_mean site
LIKELIHOODS = {
    "categorical": (Categorical, 3),
    "bernoulli": (Bernoulli, 1),
    "gaussian": (lambda: HomoskedasticGaussian(0.3), 1),
    "learned_gaussian": (HomoskedasticGaussian, 1),
    "precision_gaussian": (lambda: HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 2.0)), 1),
    "heteroskedastic": (HeteroskedasticGaussian, 2),
    "distillation": (lambda: Distillation(2.0), 3),
    "gaussian_distillation": (GaussianDistillation, 2),
}


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_the_model_records_the_noise_free_mean_as_the_likelihood_reads_it(name):
    make, out = LIKELIHOODS[name]
    torch.manual_seed(0)
    bnn = BNN(
        nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, out)), dist.Normal(0.0, 1.0), make()
    )
    x = torch.randn(7, 2)
    shapes = bnn.bayesian_model.latent_shapes(x)
    assert MODEL_OBS_MEAN == OBS_MEAN == "obs_mean" and OBS_MEAN not in shapes  # not a latent
    draws = {k: torch.randn((4,) + s) for k, s in shapes.items()}
    if "precision" in draws:
        draws["precision"] = draws["precision"].exp()
    trace = run_model(bnn.model, Draws(draws), x)
    site = trace.nodes[OBS_MEAN]
    expected = bnn.likelihood.prediction(trace.nodes["obs"]["fn"]).samples  # what ArviZ exports
    assert site["infer"].get("_deterministic") and site["is_observed"]
    torch.testing.assert_close(site["value"], expected, rtol=0, atol=0)
    assert site["value"].shape[:2] == (4, 7)
    assert site["cond_indep_stack"] == trace.nodes["obs"]["cond_indep_stack"]  # the data plate


def test_predictive_returns_the_noise_free_function():
    bnn, x, _ = fitted_bnn()
    for parallel in (False, True):
        out = Predictive(bnn.model, guide=bnn.guide, num_samples=25, parallel=parallel)(x)
        assert out[OBS_MEAN].shape == out["obs"].shape == (25, N)
        flat = {k: out[k][:, 0] for k in SITES}
        torch.testing.assert_close(out[OBS_MEAN], loop_means(bnn, flat, x), rtol=1e-12, atol=1e-12)
        noise = (out["obs"] - out[OBS_MEAN]).std()
        assert 0.07 < float(noise) < 0.13  # "obs" holds the noisy draws: scale 0.1


def test_the_mean_site_adds_nothing_to_the_log_density():
    """log p(W, y) of a model trace is the priors' and the observations' log densities only."""
    bnn, x, y = fitted_bnn()
    trace = poutine.trace(bnn.model).get_trace(x, y)
    trace.compute_log_prob()
    assert float(trace.nodes[OBS_MEAN]["log_prob_sum"]) == 0.0
    weights = {k: trace.nodes[k]["value"] for k in SITES}
    by_hand = sum(dist.Normal(0.0, 1.0).log_prob(w).sum() for w in weights.values())
    f = functional_call(bnn.net, weights, (x,))[:, 0]
    by_hand = by_hand + dist.Normal(f, 0.1).log_prob(y).sum()
    assert math.isclose(float(trace.log_prob_sum()), float(by_hand), rel_tol=1e-12)
