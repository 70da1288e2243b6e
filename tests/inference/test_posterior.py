"""The posterior protocol: fixed sets of draws (MCMC, a stack of K point fits) go through the
same paths as the guide: predict, decompose, the ArviZ export and teacher targets."""

import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.func import functional_call

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.inference import Draws, GuidePosterior, Posterior, SamplesPosterior
from pyro_bdl.inference.predict import iter_draw_chunks

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # ArviZ 0.x's 1.x notice


def classifier(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 3))


def data(n=20):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def point_fits(k: int):
    """K maximum-likelihood fits of the same net from independent initialisations."""
    x, y = data()
    members = []
    for seed in range(k):
        net = classifier(seed)
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        for _ in range(30):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        members.append({n: p.detach().clone() for n, p in net.named_parameters()})
    return members


def test_samples_posterior_reads_its_draws_in_order_and_refuses_bad_input():
    post = SamplesPosterior({"w": torch.arange(10.0).reshape(5, 2)})
    assert isinstance(post, Posterior) and post.num_draws == 5
    chunks = [(s, d.sites["w"][:, 0].tolist()) for s, d in iter_draw_chunks(post, 5, chunk=2)]
    assert chunks == [(0, [0.0, 2.0]), (2, [4.0, 6.0]), (4, [8.0])]
    kept = [s for s, _ in iter_draw_chunks(post, 5, chunk=2, keep=lambda j: j == 1)]
    assert kept == [2]
    with pytest.raises(ValueError, match="within the 5 stored"):
        post.sample(3, offset=4)
    with pytest.raises(ValueError, match="same number of draws"):
        SamplesPosterior({"a": torch.zeros(2, 1), "b": torch.zeros(3, 1)})
    with pytest.raises(ValueError, match="finite draws"):
        SamplesPosterior({"a": torch.tensor([[float("nan")]])})
    with pytest.raises(TypeError, match="non-empty dict"):
        SamplesPosterior({})
    with pytest.raises(ValueError, match="every member to have the sites"):
        SamplesPosterior.stack([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])


def test_an_ensemble_of_point_fits_predicts_as_the_mixture_of_its_members():
    """A stack of K point estimates is a posterior of K draws: prediction is the uniform mixture
    of the members' predictive distributions (checked against a loop over the members)."""
    x, y = data()
    members = point_fits(4)
    bnn = BNN(classifier(0), dist.Normal(0.0, 1.0), Categorical())
    ensemble = SamplesPosterior.stack(members)
    pred = bnn.predict(x, 4, posterior=ensemble, chunk_size=3)
    loop = torch.stack([torch.softmax(functional_call(bnn.net, m, (x,)), -1) for m in members])
    torch.testing.assert_close(pred.samples, loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pred.mean, loop.mean(0), rtol=1e-12, atol=1e-12)
    parts = pred.decompose()  # total = aleatoric + epistemic, epistemic = mutual information
    torch.testing.assert_close(parts.total, parts.aleatoric + parts.epistemic)
    mix = loop.mean(0)
    entropy = -(mix * mix.log()).sum(-1)
    torch.testing.assert_close(parts.total, entropy, rtol=1e-12, atol=1e-12)
    assert (parts.epistemic > 0).all()  # the members disagree
    # the same draws through predict_from_samples (MCMC's entry point)
    again = bnn.predict_from_samples(x, ensemble.samples)
    torch.testing.assert_close(again.samples, pred.samples, rtol=1e-12, atol=1e-12)


def test_a_samples_posterior_goes_to_arviz_like_mcmc_draws():
    az_mod = pytest.importorskip("pyro_bdl.arviz")
    x, y = data()
    members = point_fits(3)
    bnn = BNN(classifier(0), dist.Normal(0.0, 1.0), Categorical())
    ensemble = SamplesPosterior.stack(members)
    out = az_mod.to_inference_data(ensemble, x, y, bnn=bnn, var_names=["obs_mean", "2.bias"])
    grouped = {k: v.unsqueeze(0) for k, v in ensemble.samples.items()}  # one chain
    ref = az_mod.to_inference_data(grouped, x, y, bnn=bnn, var_names=["obs_mean", "2.bias"])
    for group in ("log_likelihood", "posterior"):
        a, b = out[group], ref[group]
        for name in b.data_vars:
            assert (a[name].values == b[name].values).all(), (group, name)
    ll = out["log_likelihood"]["obs"].values  # (1, 3, N)
    probs = torch.stack([torch.softmax(functional_call(bnn.net, m, (x,)), -1) for m in members])
    expected = probs.gather(-1, y.expand(3, -1).unsqueeze(-1)).squeeze(-1).log()
    assert ll.shape == (1, 3, len(x))
    assert abs(ll[0] - expected.numpy()).max() < 1e-12
    with pytest.raises(ValueError, match="num_samples <= 3"):
        az_mod.to_inference_data(ensemble, x, y, bnn=bnn, num_samples=4)


def test_guide_posterior_draws_what_the_guide_draws():
    x, y = data()
    lik = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), lik)
    post = bnn.posterior(x)
    assert post.sampler is None  # a constrained site: the traced guide
    shapes = bnn.bayesian_model.latent_shapes(x)
    assert set(shapes) == {"0.weight", "0.bias", "2.weight", "2.bias", "precision"}
    full = GuidePosterior(bnn.guide, bnn.bayesian_model, args=(x,), shapes=shapes)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        draws = full.sample(5)
    assert isinstance(draws, Draws) and draws.num == 5
    assert draws.sites["precision"].shape == (5,) and (draws.sites["precision"] > 0).all()
    assert draws.sites["0.weight"].shape == (5, 4, 2)
    pred = bnn.predict(x, 5, posterior=SamplesPosterior(draws.sites))
    manual = torch.stack(
        [
            functional_call(bnn.net, {k: v[s] for k, v in draws.sites.items() if k != "precision"},
                            (x,)).squeeze(-1)
            for s in range(5)
        ]
    )  # fmt: skip
    torch.testing.assert_close(pred.samples, manual, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        pred.scale, draws.sites["precision"].rsqrt()[:, None].expand(5, len(x)), rtol=1e-12,
        atol=1e-12,
    )  # fmt: skip


def test_an_ensemble_posterior_is_a_distillation_teacher():
    """teacher_targets from a BNN teacher with a fixed set of draws: the average over the
    members of their tempered probabilities (never the softmax of averaged logits)."""
    from pyro_bdl.distill import teacher_targets

    x, _ = data()
    members = point_fits(3)
    bnn = BNN(classifier(0), dist.Normal(0.0, 1.0), Categorical())
    ensemble = SamplesPosterior.stack(members)
    soft = teacher_targets(bnn, x, 4.0, posterior=ensemble, batch_size=7)
    logits = torch.stack([functional_call(bnn.net, m, (x,)) for m in members])
    torch.testing.assert_close(soft, torch.softmax(logits / 4.0, -1).mean(0), rtol=1e-12, atol=0)
    assert not torch.allclose(soft, torch.softmax(logits.mean(0) / 4.0, -1))
    with pytest.raises(ValueError, match="posterior= with one BNN teacher"):
        teacher_targets([bnn, bnn], x, 4.0, posterior=ensemble)
