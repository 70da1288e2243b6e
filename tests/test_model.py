"""``pyro_bdl.model.BayesianModel``: names, outputs, latent shapes, side effects, input checks."""

import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.func import functional_call

from pyro_bdl.likelihoods import HomoskedasticGaussian
from pyro_bdl.model import BayesianModel
from pyro_bdl.priors import IIDPrior


class CountingLinear(nn.Linear):
    """A Linear layer that counts its calls in a buffer (works on a single row)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def gaussian_model(net=None, **kwargs):
    net = mlp() if net is None else net
    return BayesianModel(net, IIDPrior(dist.Normal(0.0, 1.0)), HomoskedasticGaussian(0.5), **kwargs)


def test_names_follow_the_network_order_and_the_include_predicate():
    net = mlp()
    prior = IIDPrior(dist.Normal(0.0, 1.0), include=lambda n, p: n.endswith("weight"))
    model = BayesianModel(net, prior, HomoskedasticGaussian(1.0), prefix="f.")
    assert model.random_names == ["0.weight", "2.weight"]
    assert model.deterministic_names == ["0.bias", "2.bias"]
    assert model.site_names == ["f.0.weight", "f.2.weight"]
    assert model.site_name("2.bias") == "f.2.bias"
    assert model.module_of("f.2.weight") is net[2]
    assert model.shapes == {n: p.shape for n, p in net.named_parameters()}
    top = gaussian_model(nn.Linear(2, 1))
    assert top.random_names == ["weight", "bias"] and top.deterministic_names == []
    assert top.module_of("weight") is top.net


def test_outputs_equal_a_functional_call_loop_over_the_draws():
    model = gaussian_model()
    net = model.net
    g = torch.Generator().manual_seed(1)
    draws = {n: torch.randn((4, *p.shape), generator=g) for n, p in net.named_parameters()}
    x = torch.randn(6, 3, generator=g)
    out = model.outputs(draws, x)
    assert out.shape == (4, 6, 2)
    for s in range(4):
        expected = functional_call(net, {n: v[s] for n, v in draws.items()}, (x,))
        torch.testing.assert_close(out[s], expected, rtol=0, atol=1e-12)
    # by_site: keyed by site name, other keys (a "precision") ignored
    prefixed = gaussian_model(mlp(), prefix="f.")
    by_site = {"f." + n: v for n, v in draws.items()} | {"precision": torch.ones(4)}
    torch.testing.assert_close(prefixed.outputs(by_site, x, by_site=True), out, rtol=0, atol=0)


def precision_model(net):
    return BayesianModel(
        net,
        IIDPrior(dist.Normal(0.0, 1.0)),
        HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0)),
    )


def test_latent_shapes_are_weights_and_precision_cached_and_side_effect_free():
    net = nn.Sequential(CountingLinear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    model = precision_model(net)
    x = torch.randn(5, 3)
    rng = torch.get_rng_state()
    shapes = model.latent_shapes(x)
    assert torch.equal(torch.get_rng_state(), rng)  # the prior draws used a forked stream
    assert float(net[0].calls) == 0.0  # the buffer the forward incremented is restored
    assert shapes == {
        "0.weight": torch.Size([4, 3]),
        "0.bias": torch.Size([4]),
        "2.weight": torch.Size([1, 4]),
        "2.bias": torch.Size([1]),
        "precision": torch.Size([]),
    }
    assert model.latent_shapes(torch.randn(9, 3)) is shapes  # cached: the sites are global


def test_latent_shapes_leaves_batchnorm_statistics_in_training_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1)).train()
    model = precision_model(net)
    stats = {k: v.clone() for k, v in net[1].state_dict().items()}
    x = torch.randn(5, 3)
    rng = torch.get_rng_state()
    shapes = model.latent_shapes(x)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(net[1].state_dict()[k], v) for k, v in stats.items())
    assert shapes["precision"] == torch.Size([])


def test_side_effect_free_restores_the_rng_and_batchnorm_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    model = gaussian_model(net)
    before = {k: v.clone() for k, v in net[1].state_dict().items()}
    rng = torch.get_rng_state()
    with model.side_effect_free(training=True):  # a probe in training mode
        net(torch.randn(6, 3))
        assert not torch.equal(net[1].running_mean, before["running_mean"])  # it did change
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in before.items():
        assert torch.equal(net[1].state_dict()[k], v), k
    # also when the body raises, the mode included
    net[1].eval()
    with pytest.raises(RuntimeError, match="boom"):
        with model.side_effect_free(training=True):
            assert net[1].training
            net(torch.randn(6, 3))
            raise RuntimeError("boom")
    assert torch.equal(net[1].num_batches_tracked, before["num_batches_tracked"])
    assert torch.equal(torch.get_rng_state(), rng)
    assert net.training and not net[1].training
    # by default a probe runs in evaluation mode: one row is enough, nothing moves
    with model.side_effect_free():
        assert not net.training and not net[1].training
        net(torch.randn(1, 3))
    assert net.training and not net[1].training
    assert torch.equal(net[1].num_batches_tracked, before["num_batches_tracked"])


def test_check_inputs_and_check_pair_messages():
    model = gaussian_model()
    with pytest.raises(TypeError, match=r"network's dtype torch.float64, but got torch.float32"):
        model.check_inputs(torch.zeros(2, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"finite values in x, but found 1 NaN/inf"):
        model.check_inputs(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(TypeError, match="x to be a torch.Tensor, but got list"):
        model.check_inputs([[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match=r"same number of rows, but got 3 and 2"):
        model.check_pair(torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"finite values in y"):
        model.check_pair(torch.zeros(2, 3), torch.tensor([0.0, float("inf")]))
    x, y = model.check_pair(torch.zeros(2, 3), torch.zeros(2))
    assert x.shape == (2, 3) and y.shape == (2,)


def test_check_data_probes_the_network_without_side_effects():
    model = gaussian_model(nn.Sequential(CountingLinear(3, 1)))
    rng = torch.get_rng_state()
    x, y = model.check_data(torch.zeros(4, 3), torch.zeros(4))
    assert y is not None and float(model.net[0].calls) == 0.0
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.check_data(torch.zeros(4, 3))[1] is None
    with pytest.raises(ValueError, match="number of features") as info:
        model.check_data(torch.zeros(4, 7), torch.zeros(4))
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError):  # 2 targets per row for a network with 1 output
        model.check_data(torch.zeros(4, 3), torch.zeros(4, 2))


def test_check_draws_names_the_site_and_what_was_expected():
    model = gaussian_model()
    good = {n: torch.zeros((3, *p.shape)) for n, p in model.net.named_parameters()}
    model.check_draws(good)
    model.check_draws({**good, "precision": torch.ones(3)})  # other sites may be present
    with pytest.raises(TypeError, match="Expected a dict"):
        model.check_draws(list(good.values()))
    with pytest.raises(ValueError, match=r"none for \['2.bias'\]"):
        model.check_draws({k: v for k, v in good.items() if k != "2.bias"})
    shape = r"'0.weight' of shape \(S, \*\(5, 3\)\), but got \(3, 3, 5\)"
    with pytest.raises(ValueError, match=shape):
        model.check_draws({**good, "0.weight": torch.zeros(3, 3, 5)})
    with pytest.raises(ValueError, match=r"'2.bias' as a tensor \(S, \*shape\) with S >= 1"):
        model.check_draws({**good, "2.bias": torch.zeros(0, 2)})
    with pytest.raises(TypeError, match=r"'0.bias' in the network's dtype torch.float64"):
        model.check_draws({**good, "0.bias": torch.zeros(3, 5, dtype=torch.float32)})


def test_prior_dists_are_cached_per_dtype():
    model = gaussian_model()
    first = model.prior_dists()
    assert model.prior_dists() is first
    assert first["0.weight"].event_shape == (5, 3) and first["0.weight"].mean.dtype == torch.float64
    assert set(model.site_priors()) == set(model.site_names)
    model.net.to(torch.float32)
    single = model.prior_dists()
    assert single is not first and single["2.bias"].mean.dtype == torch.float32
    model.net.to(torch.float64)
    again = model.prior_dists()
    assert again is not single and again["2.bias"].mean.dtype == torch.float64
    model.prior = IIDPrior(dist.Normal(0.0, 2.0))  # a new prior is a new cache key
    assert float(model.prior_dists()["2.bias"].base_dist.scale[0]) == 2.0


def test_a_prior_with_constrained_support_is_refused():
    with pytest.raises(ValueError, match=r"real support for network weight 'weight'.*Normal-like"):
        BayesianModel(nn.Linear(2, 1), IIDPrior(dist.Gamma(1.0, 1.0)), HomoskedasticGaussian(1.0))
