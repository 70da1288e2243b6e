"""``pyro_bdl.inference.predict``: the chunked draws loop, the chunk policy, the model run under
the draws plate, and that the functional path equals the Pyro path on the same draws."""

import math

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, BernoulliDropout, Categorical, HomoskedasticGaussian
from pyro_bdl.inference import SamplesPosterior
from pyro_bdl.inference.posterior import Draws
from pyro_bdl.inference.predict import (
    CHAIN_CHUNK_BYTES,
    CHUNK_BYTES,
    concatenate,
    default_chunk,
    is_functional,
    iter_draw_chunks,
    predict,
    run_model,
)
from pyro_bdl.likelihoods import OBS
from pyro_bdl.model import BayesianModel
from pyro_bdl.priors import IIDPrior
from pyro_bdl.uncertainty import Prediction


def chain_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def model_of(net, likelihood):
    return BayesianModel(net, IIDPrior(dist.Normal(0.0, 1.0)), likelihood)


def draws_of(model, num, seed=1, extra=None):
    g = torch.Generator().manual_seed(seed)
    sites = {
        model.site_name(n): torch.randn((num, *model.shapes[n]), generator=g)
        for n in model.random_names
    }
    return sites | (extra or {})


def test_iter_draw_chunks_yields_kept_chunks_in_order_with_their_offsets():
    post = SamplesPosterior({"w": torch.arange(7.0).unsqueeze(-1)})
    got = [(s, d.sites["w"][:, 0].tolist()) for s, d in iter_draw_chunks(post, 7, chunk=3)]
    assert got == [(0, [0.0, 1.0, 2.0]), (3, [3.0, 4.0, 5.0]), (6, [6.0])]
    kept = [(s, d.num) for s, d in iter_draw_chunks(post, 7, chunk=3, keep=lambda j: j != 1)]
    assert kept == [(0, 3), (6, 1)]
    assert [s for s, _ in iter_draw_chunks(post, 5, chunk=2)] == [0, 2, 4]  # num < num_draws


def test_iter_draw_chunks_draws_every_chunk_whichever_are_kept():
    torch.manual_seed(0)
    x = torch.randn(4, 3)
    bnn = BNN(chain_net(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5))
    post = bnn.posterior(x)  # fresh draws on every call
    torch.manual_seed(3)
    every = [d.sites["2.bias"] for _, d in iter_draw_chunks(post, 6, chunk=2)]
    torch.manual_seed(3)
    last = [d.sites["2.bias"] for _, d in iter_draw_chunks(post, 6, chunk=2, keep=lambda j: j == 2)]
    assert len(last) == 1 and torch.equal(last[0], every[2])
    assert not torch.equal(every[0], every[2])


def test_default_chunk_for_a_linear_chain_and_for_vmap():
    chain = model_of(chain_net(), HomoskedasticGaussian(0.5))
    width = 5 + 2  # the chain's activations per example
    assert chain.forward.activation_width() == width
    assert default_chunk(chain, 10, torch.float64) == CHAIN_CHUNK_BYTES // (8 * 10 * width)
    assert default_chunk(chain, 10, torch.float32) == CHAIN_CHUNK_BYTES // (4 * 10 * width)
    assert default_chunk(chain, 10**9, torch.float64) == 1  # never 0
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))  # not a chain
    other = model_of(net, HomoskedasticGaussian(0.5))
    assert other.forward.activation_width() is None
    weights = 3 * 4 + 4 + 4 + 4 + 4 + 1
    assert default_chunk(other, 10, torch.float64) == CHUNK_BYTES // (8 * (4 * weights + 10240))
    shapes = {"0.weight": torch.Size([4, 3]), "precision": torch.Size([])}
    expected = CHUNK_BYTES // (8 * (4 * (12 + 1) + 1024 * 10))
    assert default_chunk(other, 10, torch.float64, shapes) == expected
    assert default_chunk(other, 10**9, torch.float64) == 1


def test_run_model_refuses_draws_with_per_example_noise():
    model = model_of(chain_net(), HomoskedasticGaussian(0.5))
    draws = Draws(draws_of(model, 2), input_fns={model.net[0]: lambda m, x: x})
    with pytest.raises(ValueError, match="without per-example noise.*through predict"):
        run_model(model, draws, torch.randn(3, 3))


def test_run_model_places_the_draws_under_the_draws_plate():
    model = model_of(chain_net(), Categorical())
    x = torch.randn(4, 3)
    sites = draws_of(model, 3)
    trace = run_model(model, Draws(sites), x)
    fn = trace.nodes[OBS]["fn"]
    assert fn.batch_shape == (3, 4)
    assert trace.nodes[OBS]["value"].shape == (3, 4)  # not sampled: zeros of the batch shape
    assert not trace.nodes[OBS]["value"].any()
    torch.testing.assert_close(fn.logits.exp().sum(-1), torch.ones(3, 4), rtol=0, atol=1e-12)


def test_predict_functional_path_equals_the_run_model_path_on_the_same_draws():
    model = model_of(chain_net(), Categorical())
    x = torch.randn(6, 3)
    sites = draws_of(model, 5)
    post = SamplesPosterior(sites)
    shapes = model.latent_shapes(x)
    assert is_functional(model, post.sample(5), shapes)
    functional = predict(model, post, x, 5, chunk=2)
    pyro_path = model.likelihood.prediction(run_model(model, Draws(sites), x).nodes[OBS]["fn"])
    assert functional is not None and functional.samples.shape == (5, 6, 2)
    torch.testing.assert_close(functional.samples, pyro_path.samples, rtol=0, atol=1e-12)
    # ground truth: softmax of the network under each draw
    for s in range(5):
        weights = {n: sites[n][s] for n in model.random_names}
        probs = torch.softmax(torch.func.functional_call(model.net, weights, (x,)), -1)
        torch.testing.assert_close(functional.samples[s], probs, rtol=0, atol=1e-12)
    kept = predict(model, post, x, 5, chunk=2, keep=lambda j: j != 1)  # draws 0, 1, 4
    torch.testing.assert_close(kept.samples, functional.samples[[0, 1, 4]], rtol=0, atol=0)
    assert predict(model, post, x, 5, chunk=2, keep=lambda j: False) is None


def test_predict_with_a_precision_site_runs_the_model_and_concatenates_the_chunks():
    lik = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))
    torch.manual_seed(0)
    net1 = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    model = model_of(net1, lik)
    x = torch.randn(4, 3)
    precision = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0])
    sites = draws_of(model, 5, extra={"precision": precision})
    post = SamplesPosterior(sites)
    assert not is_functional(model, post.sample(5), model.latent_shapes(x))
    whole = predict(model, post, x, 5)
    chunks = predict(model, post, x, 5, chunk=2)  # three parts joined by concatenate
    assert whole is not None and chunks is not None
    torch.testing.assert_close(chunks.samples, whole.samples, rtol=0, atol=1e-12)
    torch.testing.assert_close(chunks.scale, whole.scale, rtol=0, atol=1e-12)
    f = model.outputs(sites, x, by_site=True)[..., 0]  # (S, N)
    torch.testing.assert_close(whole.samples, f, rtol=0, atol=1e-12)
    scale = precision.rsqrt().unsqueeze(-1).expand(5, 4)
    torch.testing.assert_close(whole.scale, scale, rtol=0, atol=1e-12)


def test_concatenate_joins_chunks_in_order():
    a = Prediction("gaussian", samples=torch.zeros(2, 3), scale=torch.ones(2, 3))
    b = Prediction("gaussian", samples=torch.ones(1, 3), scale=2 * torch.ones(1, 3))
    assert concatenate([a]) is a
    both = concatenate([a, b])
    assert both.num_samples == 3
    assert both.samples[:, 0].tolist() == [0.0, 0.0, 1.0]
    assert both.scale[:, 0].tolist() == [1.0, 1.0, 2.0]
    assert math.isclose(float(both.mean[0]), 1 / 3, rel_tol=0, abs_tol=1e-15)


def test_predict_with_per_example_masks_is_functional_and_fresh_per_row():
    torch.manual_seed(0)
    x = torch.randn(1, 3).expand(50, 3)  # the same input 50 times
    bnn = BNN(chain_net(), dist.Normal(0.0, 1.0), Categorical(), guide=BernoulliDropout(0.5))
    post = bnn.posterior(x)
    draws = post.sample(1)
    assert draws.input_fns  # per-example masks
    pred = predict(bnn.bayesian_model, post, x, 1)
    assert pred is not None
    # different masks per row: identical inputs get different outputs (p = 0.5 over 3+5 units)
    assert len(torch.unique(pred.samples[0, :, 0])) > 1
