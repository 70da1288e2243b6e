"""``pyro_bdl.inference.elbo``: which estimator ``make_objective`` picks, that the trace-free
estimate equals the traced one from the same random numbers, ``estimator_handler``, ``leaf_tensor``.
"""

import contextlib

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoNormal
from torch import nn

from pyro_bdl import BNN, BernoulliDropout, HomoskedasticGaussian
from pyro_bdl.inference.elbo import (
    TracedELBO,
    TraceFreeELBO,
    estimator_handler,
    leaf_tensor,
    make_objective,
)

N = 10


def problem(guide=None, likelihood=None):
    torch.manual_seed(0)
    x, y = torch.randn(N, 2), torch.randn(N)
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    likelihood = HomoskedasticGaussian(0.5) if likelihood is None else likelihood
    bnn = BNN(net, dist.Normal(0.0, 1.0), likelihood, guide=guide)
    bnn.ensure_guide(x)
    return bnn, x, y


def objective(bnn, x, y, **kwargs):
    model = bnn.bayesian_model
    return make_objective(
        model,
        bnn.guide,
        (x[:2], y[:2]),
        N,
        handler=lambda: estimator_handler(bnn.guide, model),
        **kwargs,
    )


PRECISION = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))


@pytest.mark.parametrize(
    "guide, likelihood, expected",
    [
        (None, None, TraceFreeELBO),  # mean-field + Gaussian prior, fixed noise
        (AutoNormal, None, TracedELBO),  # no trace_free_sampler
        (None, PRECISION, TracedELBO),  # a sampled precision: the sampler does not apply
    ],
    ids=["mean-field", "AutoNormal", "precision-prior"],
)
def test_make_objective_chooses_the_estimator_without_touching_the_rng(guide, likelihood, expected):
    bnn, x, y = problem(guide, likelihood)
    rng = torch.get_rng_state()
    made = objective(bnn, x, y)
    assert torch.equal(torch.get_rng_state(), rng)
    assert type(made) is expected
    assert type(objective(bnn, x, y, estimator="traced")) is TracedELBO


def test_make_objective_collects_every_parameter_sorted_by_name():
    bnn, x, y = problem()
    made = objective(bnn, x, y)
    store = dict(pyro.get_param_store().named_parameters())  # unconstrained leaves
    assert len(made.params) == len(store) == 8  # loc and scale of 4 weight tensors
    by_id = {id(v): k for k, v in store.items()}
    assert [by_id[id(p)] for p in made.params] == sorted(by_id[id(p)] for p in made.params)
    assert set(map(id, made.params)) == set(map(id, store.values()))


@pytest.mark.parametrize(
    "guide, likelihood, kwargs, why",
    [
        (AutoNormal, None, {}, "the guide has no trace_free_sampler"),
        (None, PRECISION, {}, "the guide's sampler does not apply to this prior, likelihood"),
        (
            None,
            None,
            {"num_particles": 2, "vectorize_particles": False},
            "particles are not vectorised",
        ),
    ],
    ids=["AutoNormal", "precision-prior", "unvectorised-particles"],
)
def test_trace_free_is_refused_with_the_reason_where_it_cannot_apply(
    guide, likelihood, kwargs, why
):
    bnn, x, y = problem(guide, likelihood)
    with pytest.raises(ValueError, match=f"trace-free ELBO, but {why}.*estimator='auto' or"):
        objective(bnn, x, y, estimator="trace_free", **kwargs)
    assert type(objective(bnn, x, y, **kwargs)) is TracedELBO  # "auto" falls back


def test_an_unknown_estimator_is_refused():
    bnn, x, y = problem()
    with pytest.raises(
        ValueError, match=r"estimator in \('auto', 'traced', 'trace_free'\).*'exact'"
    ):
        objective(bnn, x, y, estimator="exact")


@pytest.mark.parametrize("num_particles", [1, 3])
def test_trace_free_estimate_and_gradient_equal_the_traced_ones_from_the_same_seed(num_particles):
    bnn, x, y = problem()
    free = objective(bnn, x, y)
    traced = objective(bnn, x, y, estimator="traced")
    assert isinstance(free, TraceFreeELBO) and isinstance(traced, TracedELBO)
    results = []
    for obj in (free, traced):
        torch.manual_seed(7)
        terms, params = obj(x[:6], y[:6], N, num_particles)
        grads = torch.autograd.grad(terms.loss, free.params)
        results.append((terms, params, grads))
    (a, pa, ga), (b, pb, gb) = results
    assert set(map(id, pa)) == set(map(id, pb))
    torch.testing.assert_close(a.loglik, b.loglik, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.kl, b.kl, rtol=0, atol=1e-12)
    for g1, g2 in zip(ga, gb, strict=True):
        torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)
    assert torch.equal(a.elbo, a.loglik - a.kl) and torch.equal(a.loss, a.kl - a.loglik)
    # a different seed is a different estimate: the comparison above is not vacuous
    torch.manual_seed(8)
    other, _ = free(x[:6], y[:6], N, num_particles)
    assert abs((other.loglik - a.loglik).item()) > 1e-6


def test_estimator_handler_is_a_nullcontext_for_plain_guides_and_asks_the_others():
    bnn, _, _ = problem()
    assert isinstance(estimator_handler(bnn.guide, bnn.bayesian_model), contextlib.nullcontext)
    assert isinstance(estimator_handler(lambda *a: None, None), contextlib.nullcontext)
    calls = []

    class Asks:
        def estimator_context(self, model, training):
            calls.append((model, training))
            return "the guide's handler"

    assert estimator_handler(Asks(), "model", False) == "the guide's handler"
    assert calls == [("model", False)]
    dropout, x, _ = problem(BernoulliDropout(0.2))
    handler = estimator_handler(dropout.guide, dropout.bayesian_model)
    assert not isinstance(handler, contextlib.nullcontext)  # per-example masks


def test_leaf_tensor_is_the_unconstrained_parameter_the_optimiser_steps():
    with pyro.poutine.trace(param_only=True) as tr:
        pyro.param("positive", torch.tensor([1.0, 2.0]), constraint=constraints.positive)
    value = tr.trace.nodes["positive"]["value"]
    leaf = leaf_tensor(value)
    assert leaf is dict(pyro.get_param_store().named_parameters())["positive"]
    assert leaf.is_leaf and leaf.requires_grad
    torch.testing.assert_close(leaf, torch.log(torch.tensor([1.0, 2.0])), rtol=0, atol=1e-15)
    with pytest.raises(RuntimeError, match="parameter value in the captured trace, but got None"):
        leaf_tensor(None)
