"""Empirical Bayes (learned prior scales) and tempered posteriors, against closed forms.

The ground truth is Bayesian linear regression ``y = X w + b + noise`` with a known noise scale
(0.5) and an **orthogonal design**: the columns of ``Phi = [X, 1]`` are orthogonal, so
``Phi^T Phi`` is diagonal, the exact posterior of ``(w, b)`` under an i.i.d. Normal prior is a
product of independent Normals, and the mean-field guide can represent it exactly. Hence

* the mean-field ELBO, maximised over the guide, *is* the log evidence ``log p(y | alpha)``
  (the KL to the exact posterior is zero), and the prior variance maximising the ELBO is the
  type-II maximum-likelihood optimum ``alpha*`` of the closed-form evidence
  ``N(y; 0, alpha Phi Phi^T + sigma^2 I)`` (found with ``scipy.optimize``);
* the tempered posterior ``p(W | y)^(1/T)`` is Gaussian with the Bayes posterior's mean and
  ``T`` times its covariance (precision ``(Phi^T Phi / sigma^2 + I / alpha) / T``), and the
  mean-field guide maximising the tempered ELBO is exactly that Gaussian.

Every test runs in float64 with fixed seeds; the tolerances are stated in each test.
"""

from __future__ import annotations

import math
import tempfile

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy.optimize import minimize_scalar
from torch import nn

from pyro_bdl import BNN, BernoulliDropout, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.inference.elbo import TracedELBO, TraceFreeELBO, make_objective
from pyro_bdl.inference.tempering import tempered_priors
from pyro_bdl.likelihoods import OBS
from pyro_bdl.model import check_temperature
from pyro_bdl.priors import IIDPrior, LearnedNormalPrior

N, D, SIGMA = 64, 4, 0.5


def orthogonal_design() -> tuple[torch.Tensor, torch.Tensor]:
    """``x (N, D)`` whose columns are orthogonal to each other and to the ones vector (column
    norms sqrt(N) * (1, 0.5, 2, 0.3)), and ``y (N,)`` from ``w = (0.8, -0.6, 0.4, 1.0)``,
    ``b = 0.3`` and noise 0.5."""
    g = torch.Generator().manual_seed(1)
    a = torch.cat([torch.ones(N, 1), torch.randn(N, D, generator=g)], 1)
    q, _ = torch.linalg.qr(a)
    x = q[:, 1:] * math.sqrt(N) * torch.tensor([1.0, 0.5, 2.0, 0.3])
    y = x @ torch.tensor([0.8, -0.6, 0.4, 1.0]) + 0.3 + SIGMA * torch.randn(N, generator=g)
    return x, y


def features(x: torch.Tensor) -> torch.Tensor:
    """``Phi = [x, 1]`` in the order of the flat guide parameters (weight then bias)."""
    return torch.cat([x, torch.ones(len(x), 1)], 1)


def log_evidence(alpha: float, x: torch.Tensor, y: torch.Tensor) -> float:
    """``log N(y; 0, alpha Phi Phi^T + sigma^2 I)``: the exact marginal likelihood."""
    phi = features(x)
    cov = alpha * phi @ phi.T + SIGMA**2 * torch.eye(len(y))
    return float(dist.MultivariateNormal(torch.zeros(len(y)), cov).log_prob(y))


def type2_ml_variance(x: torch.Tensor, y: torch.Tensor) -> float:
    """The prior variance maximising the exact log evidence (bounded Brent search in log alpha,
    to 1e-10)."""
    res = minimize_scalar(
        lambda t: -log_evidence(math.exp(t), x, y),
        bounds=(-8.0, 5.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return math.exp(res.x)


def posterior(
    x: torch.Tensor, y: torch.Tensor, alpha: float, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variances ``(D + 1,)`` of the exact (tempered) posterior, diagonal here."""
    phi = features(x)
    gram = phi.T @ phi
    assert (gram - torch.diag(torch.diag(gram))).abs().max() < 1e-10  # orthogonal design
    precision = torch.diag(gram) / SIGMA**2 + 1.0 / alpha
    return (phi.T @ y / SIGMA**2) / precision, temperature / precision


def guide_moments(bnn: BNN) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variances ``(D + 1,)`` of the fitted mean-field guide (weight, then bias)."""
    ls = bnn.guide.loc_scale()
    loc = torch.cat([ls["weight"][0].reshape(-1), ls["bias"][0]])
    scale = torch.cat([ls["weight"][1].reshape(-1), ls["bias"][1]])
    return loc, scale**2


def decaying_adam(steps: int, lr: float = 0.05, final: float = 5e-4) -> pyro.optim.ClippedAdam:
    """Adam whose learning rate decays geometrically from ``lr`` to ``final`` over ``steps``."""
    return pyro.optim.ClippedAdam({"lr": lr, "lrd": (final / lr) ** (1.0 / steps)})


def blr(prior, temperature: float = 1.0, name: str | None = None) -> BNN:
    return BNN(
        nn.Linear(D, 1),
        prior,
        HomoskedasticGaussian(SIGMA),
        guide=MeanFieldNormal(init_scale=0.1),
        temperature=temperature,
        name=name,
    )


# ============================================================================ empirical Bayes
def test_learned_prior_variance_reaches_the_type2_ml_optimum():
    """A network-wide learned prior scale, fitted with the mean-field guide by the default
    (trace-free) estimator, reaches the evidence-maximising prior variance alpha* of the closed
    form within 5 % (measured: 0.2 % after 1500 steps). The two optima coincide because the
    design is orthogonal: the mean-field family holds the exact posterior, so
    max_q ELBO(q, alpha) = log p(y | alpha) for every alpha."""
    x, y = orthogonal_design()
    alpha_star = type2_ml_variance(x, y)
    # the optimum is interior and differs from the initial variance 1
    assert 0.1 < alpha_star < 0.8
    bnn = blr(LearnedNormalPrior(init_scale=1.0))
    objective = make_objective(bnn.bayesian_model, bnn.guide, (x[:2], y[:2]), N)
    assert isinstance(objective, TraceFreeELBO)  # the default estimator learns it
    bnn.fit(x, y, epochs=1500, optim=decaying_adam(1500), num_particles=32, progress=False, seed=0)
    learned = bnn.prior.scale.item() ** 2
    assert abs(learned / alpha_star - 1) < 0.05, (learned, alpha_star)
    # and the guide is the exact posterior at alpha* (variances within 5 %)
    _, var = posterior(x, y, alpha_star)
    torch.testing.assert_close(guide_moments(bnn)[1], var, rtol=0.05, atol=0.0)


def test_learned_scales_train_identically_on_both_estimators():
    """The traced estimator (Pyro's trace, analytic KL) and the trace-free one take the same
    random numbers: 30 steps of each end with the same learned per-layer scales and guide
    parameters to 1e-10 -- so the traced path learns the scales too, and the trace-free KL sees
    every step's scale (a stale copy would diverge at the second step)."""
    x, y = orthogonal_design()
    results = []
    for elbo in ("trace_free", "traced"):
        pyro.clear_param_store()
        torch.manual_seed(0)  # the same initial network
        bnn = blr(LearnedNormalPrior(init_scale=1.0, per="parameter"))
        bnn.fit(x, y, epochs=30, lr=0.05, num_particles=4, elbo=elbo, progress=False, seed=3)
        results.append((bnn.prior.scale.detach().clone(), guide_moments(bnn)))
    (s1, (m1, v1)), (s2, (m2, v2)) = results
    assert (s1 - 1.0).abs().min() > 0.05  # the scales moved
    torch.testing.assert_close(s1, s2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m1, m2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(v1, v2, rtol=1e-10, atol=1e-12)


def test_the_trace_free_kl_sees_the_current_learned_scale():
    """Setting the learned scale in Pyro's param store changes the next trace-free estimate's KL
    to the closed form at the new scale (to 1e-12), with the gradient
    dKL/ds = sum(1/s - (sigma_q^2 + mu_q^2)/s^3)."""
    x, y = orthogonal_design()
    bnn = blr(LearnedNormalPrior(init_scale=1.0), name="eb")
    objective = make_objective(bnn.bayesian_model, bnn.guide, (x[:2], y[:2]), N)
    assert isinstance(objective, TraceFreeELBO)
    store = pyro.get_param_store()
    assert "eb.prior_params.scale" in store.keys()
    loc, var = guide_moments(bnn)
    for s in (1.0, 0.3, 2.5):
        with torch.no_grad():
            store.get_param("eb.prior_params.scale").unconstrained().fill_(math.log(s))
        terms, params = objective(x, y, N)
        exact = (math.log(s) - 0.5 * var.log() + (var + loc**2) / (2 * s**2) - 0.5).sum()
        torch.testing.assert_close(terms.kl, exact, rtol=1e-12, atol=1e-12)
        leaf = store.get_param("eb.prior_params.scale").unconstrained()
        assert any(p is leaf for p in params)
        (grad,) = torch.autograd.grad(terms.kl, [leaf])
        exact_grad = s * (1 / s - (var + loc**2) / s**3).sum()  # d/dlog s
        torch.testing.assert_close(grad.sum(), exact_grad, rtol=1e-10, atol=1e-12)


def test_learned_prior_names_groups_repr_and_save_load():
    """Stable param-store names ``"{bnn}.prior_params.scale"``, one scale per layer, printed in the
    repr, saved and loaded with the posterior (bitwise), the temperature too."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1))
    bnn = BNN(
        net,
        LearnedNormalPrior(init_scale=0.7, per="layer"),
        HomoskedasticGaussian(0.1),
        name="layered",
        temperature=0.5,
    )
    x = torch.randn(16, 2)
    y = torch.sin(x[:, 0])
    bnn.fit(x, y, epochs=20, lr=0.05, progress=False, seed=0)
    assert bnn.prior.groups == ["0", "2"]
    assert "layered.prior_params.scale" in pyro.get_param_store().keys()
    scales = bnn.prior.scales
    assert set(scales) == {"0", "2"} and all(abs(v - 0.7) > 1e-3 for v in scales.values())
    text = repr(bnn)
    assert "LearnedNormalPrior(per='layer', scales={'0': " in text and "temperature=0.5" in text
    assert "prior_params.scale_unconstrained" in bnn.state_dict()
    with tempfile.TemporaryDirectory() as folder:
        path = bnn.save(f"{folder}/eb.pt")
        again = BNN.load(path, net=nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)))
    assert again.temperature == 0.5
    assert isinstance(again.prior, LearnedNormalPrior)
    assert torch.equal(again.prior.scale, bnn.prior.scale)
    assert again.prior.scales == scales
    assert f"{again.name}.prior_params.scale" in pyro.get_param_store().keys()
    assert torch.equal(again.predict(x, 5, seed=0).samples, bnn.predict(x, 5, seed=0).samples)


def test_assigning_a_learned_prior_to_a_bnn_adopts_and_releases_it():
    """``bnn.prior = LearnedNormalPrior()`` after construction makes its scales the BNN's
    (state dict, param store after a fit); assigning a fixed prior again drops them."""
    x, y = orthogonal_design()
    bnn = blr(dist.Normal(0.0, 1.0), name="swap")
    assert "prior_params.scale_unconstrained" not in bnn.state_dict()
    bnn.prior = LearnedNormalPrior(init_scale=0.5)
    assert "prior_params.scale_unconstrained" in bnn.state_dict()
    bnn.fit(x, y, epochs=5, lr=0.05, progress=False, seed=0)
    assert "swap.prior_params.scale" in pyro.get_param_store().keys()
    assert abs(bnn.prior.scales["network"] - 0.5) > 1e-3
    bnn.prior = IIDPrior(dist.Normal(0.0, 1.0))
    assert "prior_params.scale_unconstrained" not in bnn.state_dict()
    assert bnn.bayesian_model.prior_parameters() == []


def test_a_resumed_fit_continues_the_learned_scales_exactly(tmp_path):
    """A tempered fit with learned scales checkpointed after 3 epochs and resumed to 6 ends with
    the uninterrupted fit's scales and guide, bitwise (the checkpoint holds the scales and their
    optimiser state)."""
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    y = x[:, 0] - x[:, 1]

    def make() -> BNN:
        pyro.clear_param_store()
        torch.manual_seed(0)
        prior = LearnedNormalPrior(per="parameter")
        return BNN(nn.Linear(2, 1), prior, HomoskedasticGaussian(0.3), temperature=0.5)

    whole = make()
    whole.fit(x, y, epochs=6, lr=0.05, seed=1, progress=False)
    expected = (whole.prior.scale.detach().clone(), guide_moments(whole))
    path = tmp_path / "fit.pt"
    make().fit(
        x, y, epochs=3, lr=0.05, seed=1, progress=False, checkpoint_every=3, checkpoint_path=path
    )
    resumed = make()
    resumed.fit(x, y, epochs=6, lr=0.05, seed=1, progress=False, resume_from=path)
    assert torch.equal(resumed.prior.scale, expected[0])
    assert (expected[0] - 1.0).abs().min() > 0.05  # the scales moved
    for got, want in zip(guide_moments(resumed), expected[1], strict=True):
        assert torch.equal(got, want)


def test_a_data_parallel_fit_learns_the_scales_as_one_process(one_rank):
    """``fit(distributed=True)`` on a one-process gloo group: the learned scales and the guide
    at T = 0.5 equal the single-process fit's bitwise (the scales are among the parameters the
    strategy broadcasts and all-reduces)."""
    x, y = orthogonal_design()
    results = []
    for distributed in (False, True):
        pyro.clear_param_store()
        torch.manual_seed(0)
        bnn = blr(LearnedNormalPrior(per="parameter"), temperature=0.5)
        bnn.fit(
            x, y, epochs=4, batch_size=16, lr=0.05, seed=2, distributed=distributed, progress=False
        )
        results.append((bnn.prior.scale.detach().clone(), *guide_moments(bnn)))
    assert (results[0][0] - 1.0).abs().min() > 0.05  # the scales moved
    for got, want in zip(*results, strict=True):
        assert torch.equal(got, want)


def test_learned_prior_argument_errors():
    with pytest.raises(ValueError, match=r"Expected init_scale > 0 .* but got -1"):
        LearnedNormalPrior(init_scale=-1.0)
    with pytest.raises(TypeError, match="Expected init_scale to be a positive float"):
        LearnedNormalPrior(init_scale="1")
    with pytest.raises(ValueError, match=r"Expected per in \('network', 'layer', 'parameter'\)"):
        LearnedNormalPrior(per="unit")
    prior = LearnedNormalPrior(per="layer")
    prior.random_parameters(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match="Use one LearnedNormalPrior per network"):
        prior.random_parameters(nn.Linear(2, 1))


def test_a_guide_whose_trace_free_kl_ignores_learned_scales_falls_back_to_tracing():
    """The dropout guide's trace-free KL keeps a copy of the prior: with learned scales,
    ``"auto"`` takes the traced estimator (which learns them) and ``"trace_free"`` refuses."""
    x, y = orthogonal_design()
    bnn = BNN(
        nn.Linear(D, 1),
        LearnedNormalPrior(),
        HomoskedasticGaussian(SIGMA),
        guide=BernoulliDropout(0.1),
    )
    bnn.ensure_guide(x)
    model = bnn.bayesian_model
    assert isinstance(make_objective(model, bnn.guide, (x[:2], y[:2]), N), TracedELBO)
    with pytest.raises(ValueError, match="does not follow the prior's learned scales"):
        make_objective(model, bnn.guide, (x[:2], y[:2]), N, estimator="trace_free")


# ============================================================================ tempering
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.1, 0.01])
def test_tempered_guide_has_t_times_the_posterior_variance(temperature):
    """Fitted at temperature T (default trace-free estimator), the mean-field guide's variances
    are T times the exact Bayes posterior's (ratio within 5 %; measured within 1.5 %) and its
    means the posterior mean (within 0.25 tempered posterior sd; measured <= 0.12): as T -> 0
    the variance shrinks as T."""
    x, y = orthogonal_design()
    bnn = blr(dist.Normal(0.0, 1.0), temperature=temperature)
    bnn.fit(x, y, epochs=1500, optim=decaying_adam(1500), num_particles=32, progress=False, seed=0)
    mean, var = posterior(x, y, 1.0)
    loc, q_var = guide_moments(bnn)
    ratio = q_var / var / temperature
    assert (ratio - 1).abs().max() < 0.05, ratio
    assert ((loc - mean).abs() / (temperature * var).sqrt()).max() < 0.25


def exact_tempered_elbo(bnn: BNN, x, y, temperature: float) -> torch.Tensor:
    """L_T = (E_q[log p(y | W)] - KL(q || p)) / T + (1 - 1/T) H[q] in closed form for the linear
    model with a N(0, 1) prior."""
    loc, var = guide_moments(bnn)
    phi = features(x)
    resid = y - phi @ loc
    loglik = dist.Normal(0.0, SIGMA).log_prob(resid).sum() - (phi**2 @ var).sum() / (2 * SIGMA**2)
    kl = (-0.5 * var.log() + (var + loc**2) / 2 - 0.5).sum()
    entropy = (0.5 * (2 * math.pi * math.e * var).log()).sum()
    return (loglik - kl) / temperature + (1 - 1 / temperature) * entropy


@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.2])
def test_both_estimators_compute_the_same_tempered_objective(temperature):
    """With the same seed (one draw W), the traced and the trace-free estimate agree exactly
    (value and every gradient, 1e-10), and equal the closed form of that draw:
    loglik(W) / T - KL / T - (1/T - 1) H[q] (1e-10). A learned prior scale is included."""
    x, y = orthogonal_design()
    bnn = blr(LearnedNormalPrior(init_scale=0.8), temperature=temperature, name="tt")
    bnn.ensure_guide(x)
    model = bnn.bayesian_model
    with torch.no_grad():  # a guide away from its initial values
        for param in bnn.guide.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=torch.Generator().manual_seed(7)))
    free = make_objective(model, bnn.guide, (x[:2], y[:2]), N)
    traced = make_objective(model, bnn.guide, (x[:2], y[:2]), N, estimator="traced")
    assert isinstance(free, TraceFreeELBO) and isinstance(traced, TracedELBO)
    values, grads = [], []
    for objective in (free, traced):
        pyro.set_rng_seed(11)
        terms, _ = objective(x, y, N)
        leaves = [p.unconstrained() for p in map(pyro.param, sorted(pyro.get_param_store()))]
        values.append((terms.loglik, terms.kl))
        grads.append(torch.autograd.grad(terms.elbo, leaves))
    torch.testing.assert_close(values[0], values[1], rtol=1e-10, atol=1e-10)
    for g1, g2 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-10)
    # the closed form of the draw W the seed gives
    pyro.set_rng_seed(11)
    draw = bnn.guide(x, y)
    w = torch.cat([draw["weight"].reshape(-1), draw["bias"]]).detach()
    loc, var = guide_moments(bnn)
    s = bnn.prior.scale.detach()
    loglik = dist.Normal(features(x) @ w, SIGMA).log_prob(y).sum()
    kl = (s.log() - 0.5 * var.log() + (var + loc**2) / (2 * s**2) - 0.5).sum()
    entropy = (0.5 * (2 * math.pi * math.e * var).log()).sum()
    expected_kl = kl / temperature + (1 / temperature - 1) * entropy
    torch.testing.assert_close(values[0][0].detach(), loglik / temperature, rtol=1e-10, atol=0)
    torch.testing.assert_close(values[0][1].detach(), expected_kl, rtol=1e-10, atol=1e-10)


def test_the_dropout_guide_is_tempered_alike_on_both_estimators():
    """MC dropout (its KL to a Gaussian prior is Gal's closed form) at T = 0.5: the traced and the
    trace-free estimates agree exactly (value and gradients, 1e-10) from the same seed, and equal
    (loglik / T, KL to the prior N(0, T) minus the constant of ``tempered_priors``) (1e-10)."""
    torch.manual_seed(0)
    x = torch.randn(16, 2)
    y = torch.sin(x[:, 0])
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    bnn = BNN(
        net,
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(0.3),
        guide=BernoulliDropout(0.2),
        temperature=0.5,
    )
    bnn.ensure_guide(x)
    args = (bnn.bayesian_model, bnn.guide, (x[:2], y[:2]), 16)
    free = make_objective(*args, handler=bnn.estimator)
    traced = make_objective(*args, handler=bnn.estimator, estimator="traced")
    assert isinstance(free, TraceFreeELBO) and isinstance(traced, TracedELBO)
    values, grads = [], []
    for objective in (free, traced):
        pyro.set_rng_seed(4)
        terms, _ = objective(x, y, 16)
        values.append(torch.stack([terms.loglik, terms.kl]))
        grads.append(torch.autograd.grad(terms.elbo, list(bnn.guide.parameters())))
    torch.testing.assert_close(values[0], values[1], rtol=1e-10, atol=1e-10)
    for g1, g2 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-10)
    # = the untempered KL to the prior N(0, T) minus the constant C, and the likelihood / T
    _, offset = tempered_priors(bnn.bayesian_model.site_priors(), 0.5)
    bnn.temperature = 1.0
    bnn.prior = IIDPrior(dist.Normal(0.0, math.sqrt(0.5)))
    plain = make_objective(*args, handler=bnn.estimator)
    pyro.set_rng_seed(4)
    terms, _ = plain(x, y, 16)
    expected = torch.stack([terms.loglik / 0.5, terms.kl - offset]).detach()
    torch.testing.assert_close(values[0].detach(), expected, rtol=1e-10, atol=1e-10)


def test_the_tempered_program_is_pyros_tempered_log_joint():
    """``bnn.model`` itself is the tempered program: every site is scaled by 1/T, and Pyro's own
    ``Trace_ELBO`` on it is unbiased for the closed-form tempered ELBO (20 batches of 2000
    particles: within 5 standard errors of the batch means)."""
    temperature = 0.25
    x, y = orthogonal_design()
    bnn = blr(dist.Normal(0.0, 1.0), temperature=temperature)
    bnn.ensure_guide(x)
    trace = poutine.trace(bnn.model).get_trace(x, y)
    for site in ("weight", "bias", OBS):
        assert trace.nodes[site]["scale"] == pytest.approx(1 / temperature)
    with torch.no_grad():
        for param in bnn.guide.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=torch.Generator().manual_seed(5)))
    exact = float(exact_tempered_elbo(bnn, x, y, temperature))
    elbo = pyro.infer.Trace_ELBO(num_particles=2000, vectorize_particles=True, max_plate_nesting=1)
    with torch.no_grad():
        batches = torch.tensor([-elbo.loss(bnn.model, bnn.guide, x, y) for _ in range(20)])
    se = float(batches.std() / math.sqrt(len(batches)))
    assert abs(float(batches.mean()) - exact) < 5 * se, (float(batches.mean()), exact, se)


def test_tempered_priors_shift_by_the_stated_constant():
    """(1/T) log N(w; m, s^2) = log N(w; m, T s^2) + c for every w (1e-12)."""
    loc, scale = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.5, 1.0, 3.0])
    priors = {"w": dist.Normal(loc, scale).to_event(1)}
    for t in (2.0, 0.3):
        tempered, c = tempered_priors(priors, t)
        w = torch.randn(10, 3)
        torch.testing.assert_close(
            priors["w"].log_prob(w) / t, tempered["w"].log_prob(w) + c, rtol=1e-12, atol=1e-12
        )
    assert tempered_priors({"w": dist.Laplace(0.0, 1.0).expand([3]).to_event(1)}, 0.5) is None


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf")])
def test_temperature_must_be_positive(bad):
    with pytest.raises(ValueError, match=r"Expected temperature T > 0 .* Pass e\.g\."):
        blr(dist.Normal(0.0, 1.0), temperature=bad)
    bnn = blr(dist.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="Expected temperature T > 0"):
        bnn.temperature = bad
    assert bnn.temperature == 1.0


def test_temperature_type_errors():
    with pytest.raises(TypeError, match="Expected temperature T to be a positive number"):
        check_temperature("0.5")
    with pytest.raises(TypeError, match="Expected temperature T to be a positive number"):
        check_temperature(True)
    assert check_temperature(torch.tensor(0.5)) == 0.5


def test_draws_from_mcmc_name_the_learned_prior_scale_they_leave_fixed():
    """NUTS samples pyro.sample sites only: a LearnedNormalPrior's scale stays at its value, and
    the warning says so, with the fixes that make it a latent site or a constant."""
    from pyro_bdl.inference.posterior import FixedParameterWarning, warn_fixed_parameters

    bnn = BNN(nn.Linear(2, 1), LearnedNormalPrior(init_scale=0.5), HomoskedasticGaussian(0.1))
    with pytest.warns(FixedParameterWarning) as record:
        warn_fixed_parameters(bnn.bayesian_model, torch.zeros(3, 2))
    message = str(record[0].message)
    assert "prior_params.scale" in message and "0.5" in message
    assert "LayerScalePrior" in message and "dist.Normal(0.0, s)" in message
