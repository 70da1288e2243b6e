"""BNN: closed-form ground truth, minibatch scaling, vectorisation, Pyro interop and bad input."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoNormal
from torch import nn
from torch.func import functional_call

from pyro_bdl import (
    BNN,
    Categorical,
    HomoskedasticGaussian,
    IIDPrior,
    MeanFieldNormal,
)
from pyro_bdl.bnn import UnfittedGuideWarning
from pyro_bdl.guides import BernoulliDropout, ConcreteDropout
from pyro_bdl.infer import elbo_terms
from pyro_bdl.inference import DRAWS_PLATE, default_chunk
from pyro_bdl.inference.elbo import TracedELBO, TraceFreeELBO
from pyro_bdl.inference.predict import SkipObservation, concatenate

# --------------------------------------------------------------------------- conjugate model
N, D, SIGMA, ALPHA = 40, 3, 0.5, 1.0


def conjugate_problem():
    """Bayesian linear regression, known noise, orthogonal design: mean-field is exact."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(N, D, generator=g))
    x = q * torch.tensor([4.0, 2.0, 1.0])  # X^T X = diag(16, 4, 1)
    y = x @ torch.tensor([1.0, -0.5, 0.3]) + SIGMA * torch.randn(N, generator=g)
    cov = torch.linalg.inv(x.T @ x / SIGMA**2 + torch.eye(D) / ALPHA**2)
    mean = cov @ x.T @ y / SIGMA**2
    log_evidence = dist.MultivariateNormal(
        torch.zeros(N), SIGMA**2 * torch.eye(N) + ALPHA**2 * x @ x.T
    ).log_prob(y)
    return x, y, mean, cov.diag().sqrt(), log_evidence


def linear_bnn(guide=None, **kw):
    return BNN(
        nn.Linear(D, 1, bias=False),
        dist.Normal(0.0, ALPHA),
        HomoskedasticGaussian(scale=SIGMA),
        guide=guide or MeanFieldNormal(init_scale=0.1),
        **kw,
    )


def exact_elbo(x, y, loc, scale):
    """Closed-form ELBO of a Gaussian guide N(loc, diag(scale^2)) in the conjugate model."""
    resid = y - x @ loc
    loglik = (
        -0.5 * N * math.log(2 * math.pi * SIGMA**2)
        - (resid**2).sum() / (2 * SIGMA**2)
        - (x**2 @ scale**2).sum() / (2 * SIGMA**2)
    )
    kl = torch.distributions.kl_divergence(
        dist.Normal(loc, scale), dist.Normal(torch.zeros(D), ALPHA)
    ).sum()
    return loglik - kl


def test_mean_field_matches_the_closed_form_posterior_and_evidence():
    x, y, mean, std, log_evidence = conjugate_problem()
    bnn = linear_bnn()
    result = bnn.fit(
        x,
        y,
        epochs=3000,
        optim=pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.9985}),
        num_particles=32,
        progress=False,
        seed=1,
    )
    loc, scale = (t.squeeze(0) for t in bnn.guide.loc_scale()["weight"])
    # tolerance: 5 % of the posterior std for the mean, 5 % relative for the std
    assert ((loc - mean).abs() / std).max() < 0.05, (loc, mean)
    torch.testing.assert_close(scale, std, rtol=0.05, atol=0.0)
    # the ELBO at the optimum equals log evidence (mean-field is exact here): 0.05 nats in total
    assert abs(exact_elbo(x, y, loc, scale) - log_evidence) < 0.05
    # the reported per-datum history is the ELBO in nats / N, and both terms are reported
    assert len(result.elbo) == 3000 and result.dataset_size == N
    tail = sum(result.elbo[-200:]) / 200 * N
    assert abs(tail - log_evidence) < 0.5
    assert result.elbo[-1] == pytest.approx(result.loglik[-1] - result.kl[-1])


def test_elbo_estimator_is_unbiased_for_the_closed_form_elbo():
    x, y, *_ = conjugate_problem()
    bnn = linear_bnn()
    bnn.guide(x, y)  # build the guide at its initial values
    loc, scale = (t.squeeze(0) for t in bnn.guide.loc_scale()["weight"])
    with torch.no_grad():
        terms = elbo_terms(bnn.model, bnn.guide, x, y, num_particles=40000)
    # Monte-Carlo tolerance: per-particle sd of the loglik is below 10 nats here -> se < 0.05
    assert abs(terms.elbo - exact_elbo(x, y, loc, scale)) < 0.25


def test_matches_pyro_trace_mean_field_elbo_value_and_gradients():
    x, y, *_ = conjugate_problem()
    bnn = linear_bnn()
    bnn.guide(x, y)
    params = [p for p in bnn.guide.parameters()]
    pyro.set_rng_seed(3)
    ours = elbo_terms(bnn.model, bnn.guide, x, y, num_particles=8).loss
    g_ours = torch.autograd.grad(ours, params)
    pyro.set_rng_seed(3)
    theirs = pyro.infer.TraceMeanField_ELBO(
        num_particles=8, vectorize_particles=True, max_plate_nesting=1
    ).differentiable_loss(bnn.model, bnn.guide, x, y)
    g_theirs = torch.autograd.grad(theirs, params)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-10)
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_nuts_on_bnn_model_matches_the_closed_form():
    x, y, mean, std, _ = conjugate_problem()
    bnn = linear_bnn()
    mcmc = MCMC(NUTS(bnn.model), num_samples=1500, warmup_steps=500, disable_progbar=True)
    mcmc.run(x, y)
    w = mcmc.get_samples()["weight"].squeeze(-2)
    # tolerance: 4 Monte-Carlo standard errors (ESS ~ number of draws for this easy posterior)
    se = std / math.sqrt(1500)
    assert ((w.mean(0) - mean).abs() < 4 * se + 1e-3).all()
    torch.testing.assert_close(w.std(0), std, rtol=0.1, atol=0.0)


# --------------------------------------------------------------------------- minibatch scaling
def test_minibatch_loglik_partition_averages_to_the_full_data_loglik_exactly():
    x, y, *_ = conjugate_problem()
    bnn = linear_bnn(guide=AutoDelta)
    full = elbo_terms(bnn.model, bnn.guide, x, y).loglik
    parts = [
        elbo_terms(bnn.model, bnn.guide, x[i : i + 8], y[i : i + 8], dataset_size=N).loglik
        for i in range(0, N, 8)
    ]
    torch.testing.assert_close(sum(parts) / len(parts), full, rtol=1e-12, atol=1e-12)


def test_random_minibatch_elbo_is_unbiased():
    x, y, *_ = conjugate_problem()
    bnn = linear_bnn(guide=MeanFieldNormal(init_scale=0.3))
    bnn.guide(x, y)
    loc, scale = (t.squeeze(0) for t in bnn.guide.loc_scale()["weight"])
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        estimates = torch.stack(
            [
                elbo_terms(bnn.model, bnn.guide, x[idx], y[idx], dataset_size=N).elbo
                for idx in (torch.randperm(N, generator=g)[:10] for _ in range(4000))
            ]
        )
    se = estimates.std() / math.sqrt(len(estimates))
    # tolerance: 4 standard errors of the mean of 4000 minibatch estimates
    assert abs(estimates.mean() - exact_elbo(x, y, loc, scale)) < 4 * se


# --------------------------------------------------------------------------- vectorisation
def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 3))


def classification_data(n=30):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def test_predict_equals_a_python_loop_over_the_same_draws():
    x, _ = classification_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), guide=MeanFieldNormal(init_scale=0.2))
    with pytest.warns(UnfittedGuideWarning):  # the initial guide: no fit needed for the check
        pred = bnn.predict(x, num_samples=25, chunk_size=25, seed=7)
    assert pred.samples.shape == (25, 30, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pyro.plate(DRAWS_PLATE, 25, dim=-2):
            draws = poutine.trace(bnn.guide).get_trace(x, None)
    for s in range(25):
        w = {n: draws.nodes[n]["value"][s, 0] for n in bnn.random_names}
        probs = torch.softmax(functional_call(bnn.net, w, (x,)), -1)
        torch.testing.assert_close(pred.samples[s], probs, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    "guide", [MeanFieldNormal(), BernoulliDropout(0.2), ConcreteDropout(0.2)], ids=str
)
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_trace_free_predict_equals_the_traced_predict(guide, chunk_size):
    """predict without Pyro's tracing (guide's sampler, Linear-chain forward) draws exactly what
    the traced guide/model replay draws: same seed, same predictive samples and scales."""
    x, y, *_ = conjugate_problem()
    torch.manual_seed(0)
    bnn = BNN(mlp_regressor(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=guide)
    bnn.fit(x, y, epochs=5, batch_size=10, lr=0.01, progress=False, seed=0)
    assert bnn.posterior(x).sampler is not None  # predict takes the trace-free path
    assert bnn.bayesian_model.forward.activation_width() is not None  # ... and the Linear chain
    fast = bnn.predict(x, 10, seed=3, chunk_size=chunk_size)
    model = bnn.bayesian_model
    chunk = chunk_size or default_chunk(model, len(x), x.dtype, model.latent_shapes(x))
    slow = traced_predict(bnn, x, 10, seed=3, chunk=chunk)
    torch.testing.assert_close(fast.samples, slow.samples, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.scale, slow.scale, rtol=1e-12, atol=1e-12)


def traced_predict(bnn, x, num, *, seed, chunk):
    """The traced reference of predict: the guide traced under the draws plate and the guide's
    own estimator handler (per-example masks for the dropout guides), the model replayed."""
    parts = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with bnn.estimator(training=False):
            for start in range(0, num, chunk):
                c = min(chunk, num - start)
                with pyro.plate(DRAWS_PLATE, c, dim=-2), SkipObservation():
                    guide_trace = poutine.trace(bnn.guide).get_trace(x, None)
                    model = poutine.replay(bnn.model, trace=guide_trace)
                    model_trace = poutine.trace(model).get_trace(x, None)
                parts.append(bnn.likelihood.prediction(model_trace.nodes["obs"]["fn"]))
    return concatenate(parts)


def test_predict_chunking_and_seed_reproducibility():
    x, y = classification_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), guide=MeanFieldNormal(init_scale=0.2))
    bnn.fit(x, y, epochs=1, progress=False)
    a = bnn.predict(x, num_samples=10, seed=3, chunk_size=10)
    b = bnn.predict(x, num_samples=10, seed=3, chunk_size=10)
    assert torch.equal(a.samples, b.samples)
    c = bnn.predict(x, num_samples=10, seed=3, chunk_size=3)
    assert c.samples.shape == a.samples.shape and torch.isfinite(c.samples).all()
    state = torch.get_rng_state()
    bnn.predict(x, num_samples=4, seed=1)
    assert torch.equal(state, torch.get_rng_state())  # a seeded predict leaves the global RNG


def test_pyro_predictive_parallel_works():
    x, y = classification_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical())
    bnn.fit(x, y, epochs=1, progress=False)  # autoguides are built on data before Predictive
    out = Predictive(bnn.model, guide=bnn.guide, num_samples=12, parallel=True)(x)
    assert out["obs"].shape == (12, 30)
    assert out["0.weight"].shape == (12, 1, 16, 2)


def test_vectorised_particles_equal_sequential_particles_with_the_same_draws():
    x, y = classification_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), guide=MeanFieldNormal(init_scale=0.2))
    pyro.set_rng_seed(11)
    vec = elbo_terms(bnn.model, bnn.guide, x, y, num_particles=8)
    pyro.set_rng_seed(11)
    with pyro.plate("num_particles_vectorized", 8, dim=-2):
        draws = poutine.trace(bnn.guide).get_trace(x, y)
    seq_loglik, seq_kl = [], []
    for p in range(8):
        fixed = {n: draws.nodes[n]["value"][p, 0] for n in bnn.random_names}
        tr = poutine.trace(poutine.condition(bnn.model, fixed)).get_trace(x, y)
        seq_loglik.append(tr.log_prob_sum(lambda name, site: name == "obs"))
        seq_kl.append(
            sum(
                torch.distributions.kl_divergence(bnn.guide.get_site_dist(n), tr.nodes[n]["fn"])
                for n in bnn.random_names
            )
        )
    torch.testing.assert_close(vec.loglik, torch.stack(seq_loglik).mean(), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(vec.kl, torch.stack(seq_kl).mean(), rtol=1e-12, atol=1e-10)


# --------------------------------------------------------------------------- Pyro interop
def test_hand_written_guide_with_pyro_svi_on_bnn_model():
    x, y, mean, std, _ = conjugate_problem()
    bnn = linear_bnn()

    def my_guide(x, y=None):
        loc = pyro.param("my_loc", torch.zeros(1, D))
        scale = pyro.param("my_scale", 0.1 * torch.ones(1, D), constraint=dist.constraints.positive)
        pyro.sample("weight", dist.Normal(loc, scale).to_event(2))

    svi = SVI(
        bnn.model,
        my_guide,
        pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.999}),
        Trace_ELBO(num_particles=8, vectorize_particles=True),
    )
    for _ in range(2000):
        svi.step(x, y)
    loc = pyro.param("my_loc").detach().squeeze(0)
    # tolerance: 10 % of the posterior std (plain Trace_ELBO is noisier than the analytic KL)
    assert ((loc - mean).abs() / std).max() < 0.1


def test_pyro_autoguide_classes_are_accepted():
    x, y = classification_data()
    for cls in (AutoDelta, AutoNormal, AutoLowRankMultivariateNormal):
        bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), guide=cls)
        assert isinstance(bnn.guide, cls)
        bnn.fit(x, y, epochs=3, progress=False)
        assert bnn.predict(x, num_samples=4).samples.shape == (4, 30, 3)
    # AutoDelta starts at the network's weights (init_to_net)
    net = mlp()
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical(), guide=AutoDelta)
    with pytest.warns(UnfittedGuideWarning):  # (deliberately: the initial guide)
        pred = bnn.predict(x, num_samples=2)
    torch.testing.assert_close(pred.samples[0], torch.softmax(net(x), -1))


# --------------------------------------------------------------------------- the network side
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.head = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


class SmallGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(2, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])


@pytest.mark.parametrize(
    "make, shape", [(lambda: SmallCNN().eval(), (12, 1, 6, 6)), (SmallGRU, (12, 5, 2))]
)
def test_cnn_with_batchnorm_and_gru(make, shape):
    net = make()
    x, y = torch.randn(shape), torch.randint(0, 2, (12,))
    bnn = BNN(
        net, dist.Normal(0.0, 1.0), Categorical(), include=lambda n, p: not n.startswith("bn")
    )
    if isinstance(net, SmallCNN):
        assert "bn.weight" in bnn.deterministic_names
    bnn.fit(x, y, epochs=2, batch_size=6, num_particles=3, progress=False)
    pred = bnn.predict(x, num_samples=5, seed=0)
    assert pred.samples.shape == (5, 12, 2) and torch.isfinite(pred.samples).all()


def test_deterministic_parameters_are_learned_as_point_estimates():
    x, y = classification_data()
    net = mlp()
    before_first = net[0].weight.detach().clone()
    before_last = net[2].weight.detach().clone()
    bnn = BNN(
        net, IIDPrior(dist.Normal(0.0, 1.0)), Categorical(), include=lambda n, p: n.startswith("2.")
    )
    assert bnn.random_names == ["2.weight", "2.bias"]
    bnn.fit(x, y, epochs=20, lr=0.05, progress=False)
    assert not torch.equal(net[0].weight, before_first)  # point estimate moved
    assert torch.equal(net[2].weight, before_last)  # random: the guide moved, not the net


def test_frozen_parameters_stay_frozen():
    x, y = classification_data()
    net = mlp()
    net[0].weight.requires_grad_(False)
    before = net[0].weight.clone()
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical(), include=lambda n, p: n.startswith("2."))
    bnn.fit(x, y, epochs=5, lr=0.05, progress=False)
    assert torch.equal(net[0].weight, before) and not net[0].weight.requires_grad


def test_two_bnns_never_share_parameters():
    x, y = classification_data()
    a = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical())
    b = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical())
    a.fit(x, y, epochs=10, lr=0.1, progress=False)
    b_before = (
        {k: v.detach().clone() for k, v in b.guide.named_parameters()}
        if b.guide.prototype_trace
        else None
    )
    assert b_before is None
    b.guide(x, y)
    b_init = {k: v.detach().clone() for k, v in b.guide.named_parameters()}
    a.fit(x, y, epochs=5, lr=0.1, progress=False)
    for k, v in b.guide.named_parameters():
        assert torch.equal(v, b_init[k])
    names = list(pyro.get_param_store().keys())
    assert len(names) == len(set(names)) and any(n.startswith(a.name) for n in names)


def test_dataloader_fit_and_learned_noise_scale():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, generator=g)
    y = 2 * x.squeeze(-1) + 0.3 * torch.randn(200, generator=g)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=50, shuffle=True
    )
    bnn = BNN(
        nn.Linear(1, 1),
        dist.Normal(0.0, 10.0),
        HomoskedasticGaussian(),
        guide=MeanFieldNormal(1e-3),
    )
    result = bnn.fit(loader, epochs=150, lr=0.05, progress=False)
    assert result.dataset_size == 200 and result.num_steps == 600
    assert bnn.likelihood.scale.item() == pytest.approx(0.3, rel=0.15)


def test_precision_prior_site_is_fitted_by_the_guide():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 1, generator=g)
    y = -x.squeeze(-1) + 0.5 * torch.randn(300, generator=g)
    lik = HomoskedasticGaussian(precision_prior=dist.Gamma(1.0, 1.0))
    bnn = BNN(nn.Linear(1, 1), dist.Normal(0.0, 10.0), lik, guide=MeanFieldNormal(1e-2))
    bnn.fit(x, y, epochs=800, lr=0.03, num_particles=4, progress=False, seed=0)
    precision = bnn.guide.median()["precision"]
    assert precision.item() == pytest.approx(4.0, rel=0.2)  # 1 / 0.5^2
    pred = bnn.predict(x[:5], num_samples=50)
    assert pred.scale.shape == (50, 5)


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def fitted_classifier():
    x, y = classification_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical())
    bnn.fit(x, y, epochs=2, progress=False)
    return bnn, x, y


def _snapshot(bnn):
    return {k: v.detach().clone() for k, v in bnn.named_parameters()}


@pytest.mark.parametrize(
    "make_bad, exc, match",
    [
        (lambda x, y: (x.masked_fill(x > 1, float("nan")), y), ValueError, "finite values in x"),
        (lambda x, y: (x.masked_fill(x > 1, float("inf")), y), ValueError, "finite values in x"),
        (lambda x, y: (x, y.double()), TypeError, "integer class labels"),
        (lambda x, y: (x, y + 5), ValueError, r"labels in \[0, 2\]"),
        (lambda x, y: (x, y[:-1]), ValueError, "same number of rows"),
        (lambda x, y: (x[:0], y[:0]), ValueError, "at least one row"),
        (lambda x, y: (x, y.unsqueeze(-1).expand(-1, 2)), ValueError, r"shape \(N,\)"),
        (lambda x, y: ({"x": x}, y), TypeError, "torch.Tensor"),  # (numpy is converted)
        (lambda x, y: (x.float(), y), TypeError, "network's dtype torch.float64"),
    ],
)
def test_bad_data_is_rejected_and_leaves_parameters_unchanged(
    fitted_classifier, make_bad, exc, match
):
    bnn, x, y = fitted_classifier
    before = _snapshot(bnn)
    with pytest.raises(exc, match=match):
        bnn.fit(*make_bad(x, y), epochs=1, progress=False)
    after = _snapshot(bnn)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_regression_target_shape_mismatch():
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0))
    with pytest.raises(ValueError, match=r"y of shape \(N, \*\(\)\) .* per-datum shape \(3,\)"):
        bnn.fit(torch.randn(5, 2), torch.randn(5, 3), progress=False)
    with pytest.raises(ValueError, match="finite values in y"):
        bnn.fit(torch.randn(5, 2), torch.tensor([1.0, float("nan"), 0, 0, 0]), progress=False)


def test_bad_arguments(fitted_classifier):
    bnn, x, y = fitted_classifier
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_samples to be a positive int"):
            bnn.predict(x, num_samples=bad)
    with pytest.raises(ValueError, match="finite values in x"):
        bnn.predict(torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="epochs"):
        bnn.fit(x, y, epochs=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        bnn.fit(x, y, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="lr > 0"):
        bnn.fit(x, y, lr=-1.0, progress=False)
    with pytest.raises(TypeError, match="pyro.optim"):
        bnn.fit(x, y, optim=torch.optim.Adam, progress=False)


def test_bad_construction():
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['3.weight'\]"):
        BNN(mlp(), {"3.weight": dist.Normal(0.0, 1.0)}, Categorical())
    with pytest.raises(ValueError, match="selected none"):
        BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), include=lambda n, p: False)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        BNN(lambda x: x, dist.Normal(0.0, 1.0), Categorical())
    with pytest.raises(TypeError, match="Likelihood"):
        BNN(mlp(), dist.Normal(0.0, 1.0), torch.nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match="AutoGuide instance"):
        BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), guide=AutoNormal(lambda: None))
    with pytest.raises(ValueError, match="init_scale > 0"):
        MeanFieldNormal(init_scale=-1)


@pytest.mark.parametrize(
    "prior_scale, y_scale, term",
    [(1.0, 1e200, "expected log-likelihood term is -inf"), (1e-200, 1.0, "KL term is (inf|nan)")],
)
def test_divergence_names_the_term_and_keeps_the_last_good_parameters(prior_scale, y_scale, term):
    x = torch.randn(20, 2)
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0))
    bnn.fit(x, torch.randn(20), epochs=2, progress=False)
    bnn.prior = IIDPrior(dist.Normal(0.0, prior_scale))  # a prior so narrow the KL overflows
    before = _snapshot(bnn)
    with pytest.raises(FloatingPointError, match=term + r" \(step 0\).*Lower the learning rate"):
        bnn.fit(x, y_scale * torch.randn(20), epochs=1, progress=False)
    after = _snapshot(bnn)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_predict_from_samples_equals_a_loop_and_checks_its_input():
    x, _ = classification_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical())
    draws = {
        n: p.detach() + 0.1 * torch.randn((6,) + p.shape) for n, p in bnn.net.named_parameters()
    }
    pred = bnn.predict_from_samples(x, draws, chunk_size=4)
    for s in range(6):
        probs = torch.softmax(
            functional_call(bnn.net, {n: v[s] for n, v in draws.items()}, (x,)), -1
        )
        torch.testing.assert_close(pred.samples[s], probs)
    with pytest.raises(ValueError, match=r"none for \['2.bias'\]"):
        bnn.predict_from_samples(x, {k: v for k, v in draws.items() if k != "2.bias"})
    with pytest.raises(ValueError, match="same number of draws"):
        bnn.predict_from_samples(x, {**draws, "2.bias": draws["2.bias"][:3]})


@pytest.mark.parametrize(
    "guide, num_particles",
    [
        (MeanFieldNormal(), 1),
        (MeanFieldNormal(), 4),
        (BernoulliDropout(0.2), 1),
        (BernoulliDropout(0.2), 3),
        (ConcreteDropout(0.2), 1),
        (ConcreteDropout(0.2), 3),
    ],
    ids=["mean-field", "mean-field-4", "dropout", "dropout-3", "concrete", "concrete-3"],
)
def test_trace_free_step_equals_the_traced_step(guide, num_particles):
    """The trace-free step (own draws, closed-form KL, one fused optimiser) equals Pyro's traced
    ELBO with per-tensor pyro.optim.Adam: same random numbers, same history, same parameters."""
    x, y, *_ = conjugate_problem()
    runs = []
    for fast in (True, False):
        bnn = BNN(mlp_regressor(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=guide)
        optim = pyro.optim.Adam({"lr": 0.01})
        result = bnn.fit(
            x,
            y,
            epochs=15,
            batch_size=10,
            optim=optim,
            progress=False,
            seed=0,
            num_particles=num_particles,
            elbo="auto" if fast else "traced",  # "traced": Pyro's traced ELBO every step
        )
        assert isinstance(bnn.fit_state.objective, TraceFreeELBO) is fast
        state = {k.split(".", 1)[1]: v for k, v in optim.get_state().items()}  # drop BNN<k>.
        runs.append((result, dict(bnn.named_parameters()), state))
    (r_fast, p_fast, o_fast), (r_slow, p_slow, o_slow) = runs
    np_ = pytest.importorskip("numpy")
    assert np_.allclose(r_fast.step_elbo, r_slow.step_elbo, rtol=1e-12, atol=1e-12)
    for k in p_fast:
        torch.testing.assert_close(p_fast[k], p_slow[k], rtol=1e-12, atol=1e-12)
    # the fused optimiser's state is the Pyro optimiser's state (checkpoints, later fits)
    assert o_fast.keys() == o_slow.keys()
    for k in o_fast:
        a, b = o_fast[k]["state"][0], o_slow[k]["state"][0]
        assert float(a["step"]) == float(b["step"]) == r_fast.num_steps
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=1e-10, atol=1e-14)


def test_fit_continues_the_optimiser_state_it_is_given():
    """A second fit with the same pyro.optim.Adam continues its moments and step count, on the
    trace-free path (fused optimiser) exactly as on the traced path (per-tensor optimisers)."""
    x, y, *_ = conjugate_problem()
    runs = []
    for fast in (True, False):
        bnn = BNN(mlp_regressor(), dist.Normal(0.0, 1.0), HomoskedasticGaussian())
        optim = pyro.optim.Adam({"lr": 0.01})
        kw = dict(batch_size=10, optim=optim, progress=False, elbo="auto" if fast else "traced")
        bnn.fit(x, y, epochs=3, seed=0, **kw)
        bnn.fit(x, y, epochs=3, seed=1, **kw)
        steps = {float(v["state"][0]["step"]) for v in optim.get_state().values()}
        assert steps == {6 * math.ceil(len(x) / 10)}
        runs.append(dict(bnn.named_parameters()))
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=1e-12, atol=1e-12)


def test_trace_free_step_falls_back_for_latent_likelihood_sites():
    x, y, *_ = conjugate_problem()
    lik = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))
    bnn = BNN(mlp_regressor(), dist.Normal(0.0, 1.0), lik, guide=MeanFieldNormal())
    bnn.fit(x, y, epochs=3, progress=False)
    assert isinstance(bnn.fit_state.objective, TracedELBO)
    with pytest.raises(ValueError, match="trace-free ELBO.*estimator='auto' or 'traced'"):
        bnn.fit(x, y, epochs=1, progress=False, elbo="trace_free")


def mlp_regressor():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 1))
