"""SG-MCMC (SGLD, SGHMC, cyclical step sizes) against the exact posterior of Bayesian linear
regression, the counting of burn-in and thinning, seeds, and the paths every fixed set of draws
goes through: predict and its decomposition, the ArviZ export, teacher targets; NUTS draws too."""

import math

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.func import functional_call

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.inference import FixedParameterWarning, SamplesPosterior
from pyro_bdl.posteriors import SGHMC, SGLD, Cyclical

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # ArviZ 0.x's 1.x notice

N, NOISE, PRIOR_STD = 20, 0.5, 1.0


def regression():
    """A design whose columns [x, 1] are orthogonal with norm sqrt(N): the exact posterior has
    the same precision N / NOISE**2 + 1 / PRIOR_STD**2 = 81 in every direction."""
    g = torch.Generator().manual_seed(0)
    a = torch.cat([torch.ones(N, 1), torch.randn(N, 2, generator=g)], 1)
    q = torch.linalg.qr(a)[0] * math.sqrt(N)
    x = q[:, 1:]
    y = x @ torch.tensor([1.0, -2.0]) + 0.5 + NOISE * torch.randn(N, generator=g)
    return x, y


def exact_posterior(x, y):
    """Closed-form mean and covariance of (weight_0, weight_1, bias)."""
    design = torch.cat([x, torch.ones(len(x), 1)], 1)
    precision = design.T @ design / NOISE**2 + torch.eye(3) / PRIOR_STD**2
    cov = torch.linalg.inv(precision)
    return cov @ design.T @ y / NOISE**2, cov


def linear_bnn():
    torch.manual_seed(1)
    return BNN(nn.Linear(2, 1), dist.Normal(0.0, PRIOR_STD), HomoskedasticGaussian(scale=NOISE))


def flat(post):
    return torch.cat([post.samples["weight"].reshape(-1, 2), post.samples["bias"]], 1)


LAM = 81.0  # the posterior precision of regression()


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, batch_size, std_tol",
    [
        (lambda b: SGLD(b, lr=0.1 / LAM), None, 0.10),
        (lambda b: SGHMC(b, lr=0.02 / LAM, alpha=0.3), None, 0.10),
        # minibatch gradients (B = 5 of 20) add uncorrected noise (beta_hat = 0): 15 %
        (lambda b: SGLD(b, lr=0.1 / LAM), 5, 0.15),
        (lambda b: SGHMC(b, lr=0.02 / LAM, alpha=0.3), 5, 0.15),
    ],
    ids=["sgld", "sghmc", "sgld-minibatch", "sghmc-minibatch"],
)
def test_sgmcmc_matches_the_exact_linear_regression_posterior(make, batch_size, std_tol):
    """Mean within 4 Monte-Carlo standard errors (ArviZ's ESS over the 4 chains), std within
    10 % (full batch; 15 % with minibatches) of the closed form, for every coefficient."""
    x, y = regression()
    mean, cov = exact_posterior(x, y)
    chains, draws = 4, 1500
    post = make(linear_bnn()).run(
        x, y, num_samples=draws, burn_in=100, batch_size=batch_size, num_chains=chains, seed=1
    )
    w = flat(post)
    assert post.chains == chains and w.shape == (chains * draws, 3)
    by_chain = w.reshape(chains, draws, 3).numpy()
    ess = np.array([az.ess(by_chain[..., i]) for i in range(3)])
    assert (ess > 100).all(), ess
    mcse = w.std(0) / torch.as_tensor(ess).sqrt()
    assert ((w.mean(0) - mean).abs() < 4 * mcse).all(), (w.mean(0) - mean) / mcse
    ratio = w.std(0) / cov.diag().sqrt()
    assert ((ratio - 1).abs() < std_tol).all(), ratio


@pytest.mark.parametrize("sampler", [SGLD, SGHMC])
def test_burn_in_and_thinning_keep_exactly_the_counted_iterates(sampler):
    """burn_in=3, thin=4, 5 draws: the iterates after steps 3 + 4j (j = 1..5) of the same
    chain run unthinned, for every chain; 3 + 4 * 5 steps per chain."""
    x, y = regression()
    s = sampler(linear_bnn(), lr=1e-3)
    full = s.run(x, y, num_samples=23, batch_size=7, num_chains=2, seed=5)
    assert s.num_steps == [23, 23]
    thinned = s.run(x, y, num_samples=5, burn_in=3, thin=4, batch_size=7, num_chains=2, seed=5)
    assert s.num_steps == [23, 23] and thinned.num_draws == 10 and thinned.chains == 2
    keep = [c * 23 + 3 + 4 * j - 1 for c in range(2) for j in range(1, 6)]
    for site in ("weight", "bias"):
        assert torch.equal(thinned.samples[site], full.samples[site][keep])


def test_a_seed_reproduces_the_draws_and_leaves_the_global_stream_alone():
    x, y = regression()
    torch.manual_seed(0)
    a = SGHMC(linear_bnn(), lr=1e-3).run(x, y, num_samples=20, batch_size=5, seed=3)
    after = torch.rand(1)
    torch.manual_seed(0)
    b = SGHMC(linear_bnn(), lr=1e-3).run(x, y, num_samples=20, batch_size=5, seed=3)
    assert torch.equal(torch.rand(1), after)
    c = SGHMC(linear_bnn(), lr=1e-3).run(x, y, num_samples=20, batch_size=5, seed=4)
    assert torch.equal(flat(a), flat(b)) and not torch.equal(flat(a), flat(c))
    torch.manual_seed(7)  # no seed: drawn from the global stream, so set_rng_seed reproduces
    d = SGLD(linear_bnn(), lr=1e-3, init="prior").run(x, y, num_samples=5, num_chains=2)
    torch.manual_seed(7)
    e = SGLD(linear_bnn(), lr=1e-3, init="prior").run(x, y, num_samples=5, num_chains=2)
    assert torch.equal(flat(d), flat(e))
    assert not torch.equal(flat(d)[:5], flat(d)[5:])  # chains start from their own prior draws


def test_cyclical_step_size_follows_zhang_et_al_and_keeps_sampling_stage_iterates_only():
    sched = Cyclical(0.2, cycle_length=10, exploration=0.3)
    for k in range(25):
        r = (k % 10) / 10
        lr, sampling = sched(k)
        assert lr == pytest.approx(0.1 * (math.cos(math.pi * r) + 1), abs=1e-15)
        assert sampling == (r >= 0.3)
    x, y = regression()
    s = SGLD(linear_bnn(), lr=Cyclical(1e-3, cycle_length=10, exploration=0.3))
    post = s.run(x, y, num_samples=8, burn_in=5, thin=2, seed=0)
    # 7 sampling steps per cycle: 5 burn-in + 16 counted = 21 sampling steps -> 3 cycles (30
    # steps, the third cycle's 3 exploration steps included, ending on its 7th sampling step)
    assert post.num_draws == 8 and s.num_steps == [30]
    with pytest.raises(ValueError, match=r"exploration.*\[0, 1\)"):
        Cyclical(0.1, 10, exploration=1.0)


def test_exploration_steps_inject_no_noise():
    """A cycle of 99 exploration steps and one sampling step: gradient descent reaches the MAP
    (= the posterior mean here, to ~1e-11), then one step of step size 1/81 * 2.5e-4 adds noise
    of std 1.8e-3. Noise in the exploration stage would leave the chain a posterior-sized
    (std 0.11) distance away."""
    x, y = regression()
    mean, _ = exact_posterior(x, y)
    post = SGLD(linear_bnn(), lr=Cyclical(1.0 / LAM, cycle_length=100, exploration=0.99)).run(
        x, y, num_samples=1, seed=0
    )
    torch.testing.assert_close(flat(post)[0], mean, rtol=0, atol=1e-2)
    with pytest.raises(ValueError, match="at least one sampling step"):
        Cyclical(0.1, 100, exploration=0.995)


def test_draws_predict_decompose_and_export_with_chains_and_draws():
    x, y = regression()
    bnn = linear_bnn()
    post = SGLD(bnn, lr=1e-3).run(x, y, num_samples=6, burn_in=10, num_chains=3, seed=0)
    assert isinstance(post, SamplesPosterior) and post.chains == 3
    pred = bnn.predict(x, 18, posterior=post)
    outputs = torch.stack(
        [
            functional_call(bnn.net, {"weight": w, "bias": b}, (x,))[:, 0]
            for w, b in zip(post.samples["weight"], post.samples["bias"], strict=True)
        ]
    )
    torch.testing.assert_close(pred.samples, outputs, rtol=1e-12, atol=1e-12)
    parts = pred.decompose()
    torch.testing.assert_close(parts.total, parts.aleatoric + parts.epistemic, rtol=1e-12, atol=0)
    from pyro_bdl.arviz import to_inference_data

    idata = to_inference_data(post, x, y, bnn=bnn, var_names=["bias", "obs_mean"])
    assert idata.posterior.sizes["chain"] == 3 and idata.posterior.sizes["draw"] == 6
    np.testing.assert_array_equal(
        idata.posterior["bias"].values.reshape(18, 1), post.samples["bias"].numpy()
    )
    assert idata.log_likelihood["obs"].shape == (3, 6, N)


def test_classifier_draws_are_a_distillation_teacher():
    from pyro_bdl.distill import teacher_targets

    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 2, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    torch.manual_seed(0)
    bnn = BNN(nn.Linear(2, 3), dist.Normal(0.0, 1.0), Categorical())
    post = SGHMC(bnn, lr=1e-3, alpha=0.2).run(x, y, num_samples=5, batch_size=10, seed=0)
    soft = teacher_targets(bnn, x, 2.0, posterior=post)
    logits = torch.stack(
        [
            functional_call(bnn.net, {"weight": w, "bias": b}, (x,))
            for w, b in zip(post.samples["weight"], post.samples["bias"], strict=True)
        ]
    )
    torch.testing.assert_close(soft, torch.softmax(logits / 2.0, -1).mean(0), rtol=1e-12, atol=0)


def test_a_noise_precision_is_sampled_in_unconstrained_space():
    """A Gamma precision prior adds the positive "precision" site: it is sampled through
    log, reported positive, and the chain starts at the prior mean with init='net'."""
    x, y = regression()
    torch.manual_seed(1)
    bnn = BNN(
        nn.Linear(2, 1),
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(precision_prior=dist.Gamma(4.0, 1.0)),
    )
    post = SGLD(bnn, lr=1e-4).run(x, y, num_samples=3, num_chains=2, seed=0)
    assert set(post.samples) == {"weight", "bias", "precision"}
    assert (post.samples["precision"] > 0).all()
    assert bnn.predict(x, 6, posterior=post).samples.shape == (6, N)


def test_a_learned_noise_scale_is_left_fixed_with_a_warning():
    x, y = regression()
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian())
    with pytest.warns(FixedParameterWarning, match="learned point estimates fixed"):
        post = SGLD(bnn, lr=1e-3).run(x, y, num_samples=2, seed=0)
    assert set(post.samples) == {"weight", "bias"}


def test_bad_arguments_are_refused_with_what_was_expected():
    x, y = regression()
    bnn = linear_bnn()
    with pytest.raises(TypeError, match="Expected a pyro_bdl.BNN"):
        SGLD(object(), lr=1e-3)
    with pytest.raises(ValueError, match="lr"):
        SGLD(bnn, lr=-1.0)
    with pytest.raises(ValueError, match="friction alpha"):
        SGHMC(bnn, lr=1e-3, alpha=2.0)
    with pytest.raises(ValueError, match="burn_in to be a non-negative int"):
        SGLD(bnn, lr=1e-3).run(x, y, num_samples=2, burn_in=-1)
    with pytest.raises(ValueError, match="targets y"):
        SGLD(bnn, lr=1e-3).run(x, num_samples=2)
    with pytest.raises(ValueError, match="init='net'"):
        SGLD(bnn, lr=1e-3, init="map").run(x, y, num_samples=2)
    with pytest.raises(FloatingPointError, match="diverged.*Lower lr"):
        SGLD(bnn, lr=10.0).run(x, y, num_samples=200, seed=0)


def test_nuts_draws_take_the_same_path():
    """pyro.infer.MCMC draws go through SamplesPosterior.from_samples into the same predict."""
    x, y = regression()
    bnn = linear_bnn()
    pyro.set_rng_seed(0)
    mcmc = pyro.infer.MCMC(
        pyro.infer.NUTS(bnn.bayesian_model),
        num_samples=20,
        warmup_steps=20,
        num_chains=1,
        disable_progbar=True,
    )
    mcmc.run(x, y)
    post = SamplesPosterior.from_samples(mcmc, bnn.bayesian_model.latent_shapes(x))
    pred = bnn.predict(x, 20, posterior=post)
    w = post.samples["weight"]
    torch.testing.assert_close(
        pred.samples, (w @ x.T)[:, 0] + post.samples["bias"], rtol=1e-12, atol=1e-12
    )


@pytest.mark.slow
def test_a_noise_precision_matches_its_conjugate_posterior():
    """With x = 0 the network's output is 0 whatever the weight, so the posterior factorises:
    weight ~ its prior N(0, 0.5^2) and precision ~ Gamma(a + n/2, b + sum(y^2)/2) exactly
    (n = 6, shape 4). SGLD samples log(precision) with the log-det-Jacobian; leaving it out
    samples Gamma(shape - 1, rate), whose mean is 1/rate = half a posterior std lower (measured:
    -5.4 MCSE, against -0.3 with it)."""
    n = 6
    g = torch.Generator().manual_seed(2)
    x, y = torch.zeros(n, 1), 0.7 * torch.randn(n, generator=g)
    torch.manual_seed(0)
    a, b = 1.0, 1.0
    bnn = BNN(
        nn.Linear(1, 1, bias=False),
        dist.Normal(0.0, 0.5),
        HomoskedasticGaussian(precision_prior=dist.Gamma(a, b)),
    )
    shape, rate = a + n / 2, b + (y**2).sum().item() / 2
    post = SGLD(bnn, lr=0.025).run(x, y, num_samples=1500, burn_in=100, num_chains=4, seed=0)
    for site, mean, std in [
        ("precision", shape / rate, math.sqrt(shape) / rate),
        ("weight", 0.0, 0.5),
    ]:
        draws = post.samples[site].reshape(4, 1500)
        ess = az.ess(draws.numpy())
        assert ess > 80, (site, ess)  # 110 and 160 here
        mcse = draws.std() / math.sqrt(ess)
        assert abs(draws.mean() - mean) < 4 * mcse, (site, (draws.mean() - mean) / mcse)
        assert abs(draws.std() / std - 1) < 0.10, (site, draws.std() / std)


def test_the_traced_potential_equals_the_functional_one():
    """The Pyro-program potential (used when the model has latents beyond the weights) and the
    functional one agree on a model without them, minibatch scaling N/B included."""
    x, y = regression()
    s = SGLD(linear_bnn(), lr=1e-3)
    w = {"weight": torch.tensor([[0.3, -1.2]]), "bias": torch.tensor([0.4])}
    traced = s._potential(w, x[:7], y[:7], N, traced=True)
    functional = s._potential(w, x[:7], y[:7], N, traced=False)
    design = torch.cat([x[:7], torch.ones(7, 1)], 1)
    theta = torch.tensor([0.3, -1.2, 0.4])
    exact = -(
        dist.Normal(0.0, PRIOR_STD).log_prob(theta).sum()
        + N / 7 * dist.Normal(design @ theta, NOISE).log_prob(y[:7]).sum()
    )
    torch.testing.assert_close(traced, exact, rtol=1e-12, atol=0)
    torch.testing.assert_close(functional, exact, rtol=1e-12, atol=0)


def test_a_dataloader_gives_the_draws_of_the_same_batches_as_tensors():
    """Full-batch tensors are never shuffled, so a DataLoader yielding the whole data set in
    order sees the same batches and the same noise stream: the same draws, bitwise."""
    x, y = regression()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=N)
    a = SGHMC(linear_bnn(), lr=1e-3).run(x, y, num_samples=10, num_chains=2, seed=0)
    b = SGHMC(linear_bnn(), lr=1e-3).run(loader, num_samples=10, num_chains=2, seed=0)
    assert torch.equal(flat(a), flat(b))
    with pytest.raises(ValueError, match="y=None when x is a DataLoader"):
        SGHMC(linear_bnn(), lr=1e-3).run(loader, y, num_samples=2)


def test_init_dicts_start_each_chain_and_are_left_unchanged():
    x, y = regression()
    starts = [
        {"weight": [[1.0, -2.0]], "bias": [0.5]},  # lists: converted to the network's dtype
        {"weight": torch.zeros(1, 2), "bias": torch.zeros(1)},
    ]
    post = SGLD(linear_bnn(), lr=1e-6, init=starts).run(x, y, num_samples=1, num_chains=2, seed=0)
    torch.testing.assert_close(
        flat(post), torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]]), rtol=0, atol=1e-2
    )
    assert torch.equal(starts[1]["weight"], torch.zeros(1, 2))  # the steps are not in place
    with pytest.raises(ValueError, match=r"lacks \['bias'\]"):
        SGLD(linear_bnn(), lr=1e-3, init={"weight": torch.zeros(1, 2)}).run(x, y, num_samples=1)
