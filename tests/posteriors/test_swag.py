"""SWAG (Maddox et al. 2019): moments of the SGD iterates, the paper's sampling formula, the
SGD stationary mean on a quadratic loss, and every path of the posterior protocol (predict,
decompose, teacher targets, the ArviZ export of a posterior that draws afresh, save/load)."""

import json
import math

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.inference import SamplesPosterior
from pyro_bdl.inference.callbacks import Callback
from pyro_bdl.posteriors import SWAG, SWAGCollector

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # ArviZ 0.x's 1.x notice


def linear_data(n=32, sigma=0.5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + sigma * torch.randn(n, generator=g)
    return x, y


def linear_bnn(sigma=0.5, prior_scale=1.0):
    torch.manual_seed(0)
    return BNN(nn.Linear(2, 1), dist.Normal(0.0, prior_scale), HomoskedasticGaussian(sigma))


def map_estimate(x, y, sigma=0.5, prior_scale=1.0):
    """Closed-form minimiser of -log p(y | w, b) - log p(w, b): [weight (2), bias]."""
    X = torch.cat([x, torch.ones(len(x), 1)], 1)
    A = X.T @ X / sigma**2 + torch.eye(3) / prior_scale**2
    return torch.linalg.solve(A, X.T @ y / sigma**2)


class Recorder(Callback):
    """Records every iterate on SWAG's cadence, read through SWAG's own reader."""

    def __init__(self, swag, start, every):
        self.swag, self.start, self.every, self.iterates = swag, start, every, []

    def on_step(self, state, loglik, kl):
        c = state.step
        if c > self.start and (c - self.start) % self.every == 0:
            values = self.swag.collector.read()
            self.iterates.append(torch.cat([values["weight"].reshape(-1), values["bias"]]))


def synthetic_swag(rank, covariance, n=12, d_offset=100.0):
    """A SWAG of a Linear(2, 1) BNN fed n known iterates (no fit)."""
    bnn = linear_bnn()
    swag = SWAG(bnn, rank=rank, covariance=covariance)
    g = torch.Generator().manual_seed(1)
    iterates = d_offset + torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.3, 2.0])
    for t in iterates:
        swag.collector.collect({"weight": t[:2].reshape(1, 2), "bias": t[2:]})
    swag.collector.transforms = {"weight": "identity", "bias": "identity"}
    return bnn, swag, iterates


def test_collected_moments_are_the_empirical_moments_of_the_iterates():
    """Σ_diag is the population variance of all n iterates, D the last K minus their mean:
    exactly torch's var/cov of the stored iterates (Welford's update, stable at offset 100)."""
    _, swag, it = synthetic_swag(rank=5, covariance="lowrank")
    c = swag.collector
    assert c.num_collected == 12
    torch.testing.assert_close(c.mean, it.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(c.variance, it.var(0, unbiased=False), rtol=1e-10, atol=0)
    torch.testing.assert_close(c.deviations, it[-5:] - it.mean(0), rtol=0, atol=1e-12)
    # K = n: D D^T / (K - 1) is the sample covariance of the iterates
    _, swag_all, it = synthetic_swag(rank=12, covariance="lowrank")
    d = swag_all.collector.deviations
    torch.testing.assert_close(d.T @ d / 11, torch.cov(it.T), rtol=1e-10, atol=1e-12)
    # the draws' covariance is the paper's: Σ_diag / 2 + D D^T / (2 (K - 1))
    paper = torch.diag(it.var(0, unbiased=False)) / 2 + torch.cov(it.T) / 2
    torch.testing.assert_close(swag_all.covariance_matrix(), paper, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance", ["diag", "lowrank"])
def test_draws_have_the_swag_mean_and_covariance(covariance):
    """S = 20000 draws: every mean within 4 standard errors of θ_SWA, every covariance entry
    within 4 standard errors (Gaussian: Var(s_ij) = (Σ_ii Σ_jj + Σ_ij^2) / S) of the paper's
    covariance, ½ Σ_diag + ½ D D^T / (K - 1) (lowrank) or Σ_diag (diag), from the iterates."""
    _, swag, it = synthetic_swag(rank=6, covariance=covariance)
    var, dev = it.var(0, unbiased=False), it[-6:] - it.mean(0)
    sigma = torch.diag(var) if covariance == "diag" else torch.diag(var) / 2 + dev.T @ dev / 10
    num = 20000
    torch.manual_seed(5)
    draws = swag.sample(num).sites
    theta = torch.cat([draws["weight"].reshape(num, 2), draws["bias"]], 1)
    se_mean = (sigma.diag() / num).sqrt()
    assert ((theta.mean(0) - it.mean(0)).abs() < 4 * se_mean).all()
    se_cov = ((sigma.diag()[:, None] * sigma.diag()[None, :] + sigma**2) / num).sqrt()
    assert ((torch.cov(theta.T) - sigma).abs() < 4 * se_cov).all()


def test_swag_fit_collects_the_sgd_iterates_and_finds_the_stationary_mean():
    """Linear regression, Gaussian likelihood and prior: the loss is quadratic, so the mean of
    constant-step SGD's stationary distribution is the MAP minimiser (closed form). The SWA
    mean is within 4 batch-means standard errors of it (the iterates are autocorrelated:
    20 batches of 40), and SWAG's moments are exactly those of the recorded iterates."""
    x, y = linear_data()
    bnn = linear_bnn()
    before = {k: v.clone() for k, v in bnn.net.state_dict().items()}
    swag = SWAG(bnn, rank=10, per="step", start=200, every=1)
    rec = Recorder(swag, 200, 1)
    swag.fit(x, y, epochs=125, batch_size=4, lr=2e-3, seed=0, callbacks=[rec])
    it = torch.stack(rec.iterates)  # (800, 3)
    assert swag.collector.num_collected == len(it) == 800
    c = swag.collector
    torch.testing.assert_close(c.mean, it.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(c.variance, it.var(0, unbiased=False), rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(c.deviations, it[-10:] - it.mean(0), rtol=0, atol=1e-12)
    batch_means = it.reshape(20, 40, 3).mean(1)
    se = batch_means.std(0) / math.sqrt(20)
    err = (c.mean - map_estimate(x, y)).abs()
    assert (err < 4 * se).all(), (err, se)
    assert (c.variance.sqrt() > 10 * se).all()  # the SGD noise is resolved, not zero
    assert all(torch.equal(v, bnn.net.state_dict()[k]) for k, v in before.items())


def test_per_epoch_collection_with_start_and_every():
    x, y = linear_data()
    swag = SWAG(linear_bnn(), rank=3, per="epoch", start=2, every=3)
    swag.fit(x, y, epochs=12, batch_size=8, lr=1e-3, seed=0)
    assert swag.collector.num_collected == 3  # epochs 5, 8, 11
    assert swag.collector.deviations.shape == (3, 3)
    with pytest.raises(ValueError, match="rank >= 2"):
        SWAG(linear_bnn(), rank=1)
    with pytest.raises(RuntimeError, match="none were collected"):
        SWAG(linear_bnn()).sample(3)


def test_predict_decompose_and_arviz_export_of_swag():
    az_mod = pytest.importorskip("pyro_bdl.arviz")
    x, y = linear_data()
    bnn = linear_bnn()
    swag = SWAG(bnn, rank=5, per="step", start=20)
    swag.fit(x, y, epochs=20, batch_size=8, lr=2e-3, seed=0)
    pred = bnn.predict(x, 50, posterior=swag, seed=3)
    parts = pred.decompose()
    torch.testing.assert_close(parts.total, parts.aleatoric + parts.epistemic, rtol=0, atol=0)
    assert (parts.epistemic > 0).all()
    torch.manual_seed(3)
    draws = swag.sample(50).sites
    manual = (draws["weight"] @ x.T).squeeze(1) + draws["bias"]
    torch.testing.assert_close(pred.samples, manual, rtol=1e-12, atol=1e-12)
    # the export: one chain of fresh draws, what they are in attrs, reproducible with a seed
    out = az_mod.to_inference_data(swag, x, y, bnn=bnn, num_samples=30, seed=4, chunk_size=30)
    ll = out["log_likelihood"]["obs"]
    assert ll.shape == (1, 30, len(x))
    assert out["posterior"].attrs["posterior_type"] == "SWAG"
    assert out["posterior"].attrs["independent_draws"] == 1
    assert out["log_likelihood"].attrs["inference"] == "draws"
    torch.manual_seed(4)
    same = SamplesPosterior(swag.sample(30).sites)  # the same draws as a fixed set
    ref = az_mod.to_inference_data(same, x, y, bnn=bnn)
    assert (ll.values == ref["log_likelihood"]["obs"].values).all()
    assert "posterior_type" not in ref["posterior"].attrs  # a SamplesPosterior as before
    with pytest.raises(ValueError, match="Expected num_samples"):
        az_mod.to_inference_data(swag, x, y, bnn=bnn)
    with pytest.raises(ValueError, match="Expected bnn="):
        az_mod.to_inference_data(swag, x, y, num_samples=3)


def test_swag_with_a_precision_site_and_as_a_distillation_teacher():
    from pyro_bdl.distill import teacher_targets

    x, y = linear_data()
    lik = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))
    torch.manual_seed(0)
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), lik)
    swag = SWAG(bnn, rank=4, per="step", start=10)
    swag.fit(x, y, epochs=10, batch_size=8, lr=1e-3, seed=0)
    assert swag.collector.transforms["precision"] == "exp"
    draws = swag.sample(200).sites
    assert (draws["precision"] > 0).all()
    pred = bnn.predict(x, 20, posterior=swag, seed=0)
    torch.testing.assert_close(pred.decompose().total, pred.decompose().aleatoric +
                               pred.decompose().epistemic, rtol=0, atol=0)  # fmt: skip
    # a classifier's SWAG as a teacher: the average of per-draw tempered probabilities
    xc = torch.randn(16, 2)
    yc = (xc[:, 0] > 0).long()
    clf = BNN(nn.Linear(2, 2), dist.Normal(0.0, 1.0), Categorical())
    swag_c = SWAG(clf, rank=3, per="step", start=5)
    swag_c.fit(xc, yc, epochs=10, batch_size=4, lr=1e-2, seed=0)
    soft = teacher_targets(clf, xc, 2.0, posterior=swag_c, num_samples=16, seed=1)
    torch.manual_seed(1)
    d = swag_c.sample(16).sites
    logits = d["weight"] @ xc.T + d["bias"][:, :, None]  # (S, C, N)
    expected = torch.softmax(logits.transpose(1, 2) / 2.0, -1).mean(0)
    torch.testing.assert_close(soft, expected, rtol=1e-12, atol=1e-12)


def test_a_learned_noise_scale_is_refused():
    x, y = linear_data()
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian())
    with pytest.raises(ValueError, match="learned point estimates"):
        SWAG(bnn).fit(x, y, epochs=1)


def test_to_state_and_from_state_round_trip_bitwise():
    x, y = linear_data()
    bnn = linear_bnn()
    swag = SWAG(bnn, rank=4, per="step", start=5)
    swag.fit(x, y, epochs=5, batch_size=8, lr=1e-3, seed=0)
    config, tensors = swag.to_state()
    assert config["type"] == "SWAG"
    config = json.loads(json.dumps(config))  # plain data
    again = SWAG.from_state(config, {k: v.clone() for k, v in tensors.items()}, bnn)
    a = bnn.predict(x, 40, posterior=swag, seed=7)
    b = bnn.predict(x, 40, posterior=again, seed=7)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.scale, b.scale)
    with pytest.raises(ValueError, match="type 'SWAG'"):
        SWAG.from_state(dict(config, type="Laplace"), tensors, bnn)


def test_a_collector_works_in_bnn_fit_with_an_autodelta_guide():
    """The collector is a plain fit-loop callback: SWAG over a user's own bnn.fit."""
    from pyro.infer.autoguide import AutoDelta

    x, y = linear_data()
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5), AutoDelta)
    collector = SWAGCollector(lambda: bnn.guide.median(), rank=3, per="step", start=2)
    bnn.fit(x, y, epochs=2, batch_size=8, lr=1e-3, seed=0, progress=False, callbacks=[collector])
    assert collector.num_collected == 6
    torch.testing.assert_close(
        collector.mean[:2], bnn.guide.median()["weight"].reshape(-1), rtol=0, atol=1e-2
    )
