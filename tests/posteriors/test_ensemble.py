"""Deep ensembles and guide mixtures: members fitted by the one fit loop reach the closed-form
MAP / maximum-likelihood point, identical members have exactly zero epistemic uncertainty,
different seeds give different members, and the ensemble goes through predict, decompose,
teacher targets, the ArviZ export and save/load."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.func import functional_call

from pyro_bdl import BNN, Categorical, HeteroskedasticGaussian, HomoskedasticGaussian
from pyro_bdl.inference import Draws, SamplesPosterior
from pyro_bdl.posteriors import DeepEnsemble, GuideMixture
from pyro_bdl.posteriors.ensemble import reinitialised

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # ArviZ 0.x's 1.x notice


def regression_data(n=24):
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, n).unsqueeze(-1)
    return x, torch.sin(2 * x[:, 0]) + 0.1 * torch.randn(n, generator=g)


def mlp(out=1):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, out))


def class_data(n=20):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def member_outputs(bnn, ens, x):
    """Each member's network output, by a plain loop (the ground truth of the mixture)."""
    post = ens.posterior
    k = post.num_draws
    return torch.stack(
        [
            functional_call(bnn.net, {n: v[i] for n, v in post.samples.items()}, (x,))
            for i in range(k)
        ]
    )


@pytest.mark.parametrize(
    "objective,prior_scale", [("map", 0.5), ("ml", 0.5)], ids=["map", "maximum-likelihood"]
)
def test_members_reach_the_closed_form_point_estimate(objective, prior_scale):
    """Linear regression: a MAP member is the ridge solution under the BNN's Normal prior, a
    maximum-likelihood member the least-squares solution (prior ignored), to 1e-6."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 2, generator=g)
    y = x @ torch.tensor([1.0, -2.0]) + 0.5 + 0.3 * torch.randn(30, generator=g)
    sigma = 0.3
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, prior_scale), HomoskedasticGaussian(sigma))
    ens = DeepEnsemble(bnn, 1, objective=objective)  # full-batch SGD: a deterministic descent
    ens.fit(x, y, epochs=300, optim=pyro.optim.SGD({"lr": 1e-3, "momentum": 0.9}))
    X = torch.cat([x, torch.ones(30, 1)], 1)
    A = X.T @ X / sigma**2 + (torch.eye(3) / prior_scale**2 if objective == "map" else 0)
    exact = torch.linalg.solve(A, X.T @ y / sigma**2)
    s = ens.posterior.samples
    got = torch.cat([s["weight"].reshape(1, 2), s["bias"]], 1)
    torch.testing.assert_close(got, exact.expand(1, 3), rtol=0, atol=1e-6)
    kl = ens.histories[0].kl[-1]  # -log p(W) / N for MAP, exactly 0 for maximum likelihood
    assert (kl == 0.0) == (objective == "ml")


def test_identical_members_have_exactly_zero_epistemic_uncertainty():
    """K = 4 members with the same seed are the same fit (bitwise), so the mixture's epistemic
    part -- the population variance of the members' means -- is exactly 0 (K a power of two:
    the mean of equal floats is exact), and total = aleatoric exactly."""
    x, y = regression_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    ens = DeepEnsemble(bnn, 4, seeds=[7, 7, 7, 7])
    ens.fit(x, y, epochs=20, batch_size=8, lr=0.01)
    for v in ens.posterior.samples.values():
        assert all(torch.equal(v[0], v[i]) for i in range(4))
    parts = bnn.predict(x, 4, posterior=ens).decompose()
    assert torch.equal(parts.epistemic, torch.zeros_like(parts.epistemic))
    assert torch.equal(parts.total, parts.aleatoric)


def test_different_seeds_give_different_members_and_leave_the_user_state_alone():
    x, y = regression_data()
    net = mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    a, b = reinitialised(net, 0), reinitialised(net, 0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = reinitialised(net, 1)
    assert not torch.equal(a[0].weight, c[0].weight)
    rng = torch.get_rng_state()
    ens = DeepEnsemble(bnn, 3)
    ens.fit(x, y, epochs=20, batch_size=8, lr=0.01)
    assert torch.equal(torch.get_rng_state(), rng)  # the global stream is untouched
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    w = ens.posterior.samples["0.weight"]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert (bnn.predict(x, 3, posterior=ens).decompose().epistemic > 0).all()
    # each fit had a param store of its own: no member's parameter is left in the user's
    assert not [k for k in pyro.get_param_store().keys() if "AutoDelta" in k]
    made = DeepEnsemble(bnn, 2, make_net=lambda: nn.Sequential(nn.Linear(1, 8), nn.Tanh(),
                                                               nn.Linear(8, 1)))  # fmt: skip
    assert not torch.equal(made.member_net(0)[0].weight, made.member_net(1)[0].weight)


def test_heteroskedastic_members_predict_the_gaussian_mixture():
    """Lakshminarayanan et al.: each member a mean and a variance; the mixture's mean is the
    average of the means, its variance avg(σ_k² + μ_k²) - mean²; aleatoric + epistemic = total."""
    x, y = regression_data()
    bnn = BNN(mlp(out=2), dist.Normal(0.0, 1.0), HeteroskedasticGaussian())
    ens = DeepEnsemble(bnn, 3, objective="ml")
    ens.fit(x, y, epochs=30, batch_size=8, lr=0.01)
    f = member_outputs(bnn, ens, x)  # (K, N, 2)
    mu, sd = f[..., 0], nn.functional.softplus(f[..., 1]) + 1e-6
    pred = bnn.predict(x, 3, posterior=ens)
    torch.testing.assert_close(pred.samples, mu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pred.mean, mu.mean(0), rtol=1e-12, atol=1e-12)
    parts = pred.decompose()
    mixture_var = (sd**2 + mu**2).mean(0) - mu.mean(0) ** 2
    torch.testing.assert_close(parts.total, mixture_var, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(parts.total, parts.aleatoric + parts.epistemic, rtol=0, atol=0)


def test_a_classifier_ensemble_is_a_teacher_and_exports_to_arviz():
    from pyro_bdl.arviz import to_inference_data
    from pyro_bdl.distill import teacher_targets

    x, y = class_data()
    torch.manual_seed(0)
    bnn = BNN(nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 3)), dist.Normal(0.0, 1.0),
              Categorical())  # fmt: skip
    ens = DeepEnsemble(bnn, 3)
    ens.fit(x, y, epochs=15, batch_size=5, lr=0.05)
    logits = member_outputs(bnn, ens, x)
    soft = teacher_targets(bnn, x, 4.0, posterior=ens)
    torch.testing.assert_close(soft, torch.softmax(logits / 4.0, -1).mean(0), rtol=1e-12, atol=0)
    out = to_inference_data(ens, x, y, bnn=bnn)  # a fixed set of 3: all of it, in order
    ll = out["log_likelihood"]["obs"].values
    expected = torch.log_softmax(logits, -1).gather(-1, y.expand(3, -1).unsqueeze(-1))[..., 0]
    assert ll.shape == (1, 3, len(x)) and abs(ll[0] - expected.numpy()).max() < 1e-12
    assert out["posterior"].attrs["posterior_type"] == "DeepEnsemble"
    assert out["posterior"].attrs["independent_draws"] == 0
    ref = to_inference_data(ens.posterior, x, y, bnn=bnn)  # the SamplesPosterior path
    assert (ref["log_likelihood"]["obs"].values == ll).all()


def test_to_state_and_from_state_round_trip_bitwise():
    x, y = regression_data()
    bnn = BNN(mlp(out=2), dist.Normal(0.0, 1.0), HeteroskedasticGaussian())
    ens = DeepEnsemble(bnn, 2, objective="ml", seeds=[3, 9])
    ens.fit(x, y, epochs=5, lr=0.01)
    config, tensors = ens.to_state()
    config = json.loads(json.dumps(config))  # plain data
    assert config["type"] == "DeepEnsemble" and config["seeds"] == [3, 9]
    again = DeepEnsemble.from_state(config, {k: v.clone() for k, v in tensors.items()}, bnn)
    a, b = bnn.predict(x, 2, posterior=ens, seed=1), bnn.predict(x, 2, posterior=again, seed=1)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.scale, b.scale)
    with pytest.raises(ValueError, match="type 'DeepEnsemble'"):
        DeepEnsemble.from_state(dict(config, type="SWAG"), tensors, bnn)


def test_refusals():
    x, y = regression_data()
    learned = BNN(mlp(), dist.Normal(0.0, 1.0), HomoskedasticGaussian())
    with pytest.raises(ValueError, match="learned point estimates"):
        DeepEnsemble(learned, 2).fit(x, y)
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    with pytest.raises(RuntimeError, match="DeepEnsemble.fit has not run"):
        bnn.predict(x, 2, posterior=DeepEnsemble(bnn, 2))
    with pytest.raises(ValueError, match="3 seeds"):
        DeepEnsemble(bnn, 3, seeds=[1])
    with pytest.raises(ValueError, match="objective in"):
        DeepEnsemble(bnn, 3, objective="mle")
    with pytest.raises(TypeError, match="draw afresh"):
        GuideMixture([SamplesPosterior({"w": torch.zeros(2, 1)})])


def fitted_guides(x, y, k=2):
    """K mean-field BNNs of one architecture fitted from different seeds."""
    bnns = []
    for seed in range(k):
        torch.manual_seed(seed)
        b = BNN(mlp(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
        b.fit(x, y, epochs=10, batch_size=8, lr=0.02, seed=seed, progress=False)
        bnns.append(b)
    return bnns


def test_a_guide_mixture_draws_its_members_round_robin():
    """Draw i is member i mod K's next draw: the same values as drawing the members in turn
    with the same random stream, whatever the chunking (offset counts across chunks)."""
    from pyro_bdl.arviz import to_inference_data

    x, y = regression_data()
    b0, b1 = fitted_guides(x, y)
    mix = GuideMixture([b0.posterior(x), b1.posterior(x)])
    torch.manual_seed(2)
    d = mix.sample(5).sites["0.weight"]
    torch.manual_seed(2)
    m0 = b0.posterior(x).sample(3).sites["0.weight"]
    m1 = b1.posterior(x).sample(2).sites["0.weight"]
    assert torch.equal(d[[0, 2, 4]], m0) and torch.equal(d[[1, 3]], m1)
    torch.manual_seed(2)  # draws 1, 2, 3: members 1, 0, 1; within a chunk, member 0 first
    d = mix.sample(3, offset=1).sites["0.weight"]
    torch.manual_seed(2)
    assert torch.equal(d[[1]], b0.posterior(x).sample(1).sites["0.weight"])
    assert torch.equal(d[[0, 2]], b1.posterior(x).sample(2).sites["0.weight"])
    pred = b0.predict(x, 40, posterior=mix, seed=0, chunk_size=7)
    parts = pred.decompose()
    torch.testing.assert_close(parts.total, parts.aleatoric + parts.epistemic, rtol=0, atol=0)
    assert pred.samples.shape == (40, len(x)) and (parts.epistemic > 0).all()
    # the ArviZ export of a posterior that draws afresh: one chain, what it is in attrs
    out = to_inference_data(mix, x, y, bnn=b0, num_samples=12, seed=3, chunk_size=12)
    assert out["log_likelihood"]["obs"].shape == (1, 12, len(x))
    assert out["posterior"].attrs["posterior_type"] == "GuideMixture"
    assert out["posterior"].attrs["independent_draws"] == 1
    torch.manual_seed(3)
    ref = to_inference_data(SamplesPosterior(mix.sample(12).sites), x, y, bnn=b0)
    assert (ref["log_likelihood"]["obs"].values == out["log_likelihood"]["obs"].values).all()


def test_a_guide_mixture_refuses_per_example_noise():
    class Masked:
        num_draws = None

        def sample(self, num, *, offset=0):
            return Draws({"w": torch.zeros(num, 1)}, {nn.Linear(1, 1): lambda m, i: i})

    with pytest.raises(ValueError, match="per-example noise"):
        GuideMixture([Masked()]).sample(2)


def test_members_fit_from_a_dataloader_as_from_tensors():
    """A DataLoader of one full batch gives the same members as the tensors (same steps)."""
    x, y = regression_data()
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    a, b = DeepEnsemble(bnn, 2), DeepEnsemble(bnn, 2)
    a.fit(x, y, epochs=5, lr=0.01)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=len(x))
    b.fit(loader, epochs=5, lr=0.01)
    for k, v in a.posterior.samples.items():
        assert torch.equal(v, b.posterior.samples[k])
