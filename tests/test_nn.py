"""Lifting parameters of unchanged modules; vectorised forwards match loops."""

import math

import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.func import functional_call

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.nn import (
    BatchedForward,
    cast_distribution,
    fan_in_out,
    init_to_net,
    named_random_parameters,
    sample_shape_of,
)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


class SmallGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def _draws(net, s):
    return {n: p.detach() + 0.1 * torch.randn((s,) + p.shape) for n, p in net.named_parameters()}


def _loop(net, draws, x):
    s = next(iter(draws.values())).shape[0]
    return torch.stack(
        [functional_call(net, {n: v[i] for n, v in draws.items()}, (x,)) for i in range(s)]
    )


@pytest.mark.parametrize(
    "make_net, x_shape, vectorized",
    [
        (lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (7, 4), True),
        # drawn conv weights on CPU: the loop (vmap's grouped convolution is ~3x slower)
        (lambda: SmallCNN().eval(), (5, 1, 8, 8), False),
        (lambda: SmallGRU().head, (5, 5), True),  # not a chain (a bare Linear): vmap
        (SmallGRU, (5, 6, 3), False),  # no vmap batching rule for GRU: loop fallback
    ],
)
def test_batched_forward_matches_loop(make_net, x_shape, vectorized):
    net = make_net()
    x = torch.randn(x_shape)
    draws = _draws(net, 6)
    fwd = BatchedForward(net)
    out = fwd(draws, x, sample_shape=(6,))
    assert fwd.vectorized is vectorized
    torch.testing.assert_close(out, _loop(net, draws, x), rtol=1e-12, atol=1e-12)
    # chunking gives the same numbers
    torch.testing.assert_close(fwd(draws, x, sample_shape=(6,), chunk_size=4), out)
    # buffers are untouched (BatchNorm in eval mode)
    if isinstance(net, SmallCNN):
        assert torch.equal(net.bn.running_mean, torch.zeros(4))


def test_conv_draws_take_vmap_when_asked_and_only_undrawn_convs_keep_vmap():
    """vectorize=True still vmaps a CNN (same numbers as the loop); with the conv weights
    deterministic (only the head drawn) "auto" keeps vmap."""
    net = SmallCNN().eval()
    x = torch.randn(5, 1, 8, 8)
    draws = _draws(net, 3)
    fwd = BatchedForward(net, vectorize=True)
    torch.testing.assert_close(
        fwd(draws, x, sample_shape=(3,)), _loop(net, draws, x), rtol=1e-12, atol=1e-12
    )
    assert fwd.vectorized is True
    head = {k: v for k, v in draws.items() if k.startswith("head.")}
    fwd = BatchedForward(net)
    torch.testing.assert_close(
        fwd(head, x, sample_shape=(3,)), _loop(net, head, x), rtol=1e-12, atol=1e-12
    )
    assert fwd.vectorized is True


class DataDependent(nn.Module):
    """What vmap cannot batch: data-dependent control flow and an in-place write of a batched
    value into an unbatched buffer."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(4, 1)

    def forward(self, x):
        h = self.a(x)
        if h.mean() > 0:  # data-dependent branch
            h = -h
        out = torch.zeros(x.shape[0], 1, dtype=x.dtype)
        out += self.b(torch.tanh(h))  # in-place into a fresh (unbatched) tensor
        return out


def test_nets_vmap_cannot_batch_run_through_the_loop_and_fit():
    """A net with data-dependent control flow and in-place writes: "auto" falls back to the
    loop (same numbers as a loop of functional_call) and a fit with vectorised particles and a
    prediction both run on it."""
    torch.manual_seed(0)
    net = DataDependent()
    x = torch.randn(6, 3)
    draws = _draws(net, 4)
    fwd = BatchedForward(net)
    out = fwd(draws, x, sample_shape=(4,))
    assert fwd.vectorized is False
    torch.testing.assert_close(out, _loop(net, draws, x), rtol=1e-12, atol=1e-12)
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5), name="data_dependent")
    fit = bnn.fit(x, torch.randn(6), epochs=2, num_particles=3, progress=False, seed=0)
    assert all(math.isfinite(e) for e in fit.elbo)
    assert bnn.bayesian_model.forward.vectorized is False
    assert bnn.predict(x, 5, seed=1).samples.shape[:2] == (5, 6)


def test_batched_forward_two_sample_dims_and_plate_dims():
    net = nn.Linear(3, 2)
    w = torch.randn(2, 4, 1, 2, 3)  # sample shape (2, 4), a plate dim of size 1
    b = torch.randn(2, 4, 1, 2)
    x = torch.randn(5, 3)
    out = BatchedForward(net)({"weight": w, "bias": b}, x, sample_shape=(2, 4))
    assert out.shape == (2, 4, 5, 2)
    torch.testing.assert_close(out[1, 3], x @ w[1, 3, 0].T + b[1, 3, 0])


def test_batched_forward_unbatched_and_shared_parameters():
    net = nn.Linear(3, 2)
    x = torch.randn(5, 3)
    w = torch.randn(2, 3)
    out = BatchedForward(net)({"weight": w}, x)
    torch.testing.assert_close(out, x @ w.T + net.bias)


def test_loop_fallback_reraises_real_errors():
    net = nn.Linear(3, 2)
    with pytest.raises(RuntimeError):
        BatchedForward(net, vectorize="auto")(
            {"weight": torch.randn(4, 2, 3)}, torch.randn(5, 7), sample_shape=(4,)
        )


def test_vectorize_argument_checked():
    with pytest.raises(ValueError, match="vectorize"):
        BatchedForward(nn.Linear(1, 1), vectorize="yes")


def test_sample_shape_of():
    shapes = {"w": torch.Size([2, 3])}
    assert sample_shape_of({"w": torch.zeros(2, 3)}, shapes) == ()
    assert sample_shape_of({"w": torch.zeros(8, 1, 2, 3)}, shapes) == (8,)
    assert sample_shape_of({"w": torch.zeros(8, 2, 3)}, shapes) == (8,)  # Predictive's layout
    assert sample_shape_of({"w": torch.zeros(4, 8, 1, 2, 3)}, shapes) == (4, 8)
    with pytest.raises(ValueError, match="end in the parameter's shape"):
        sample_shape_of({"w": torch.zeros(3, 2)}, shapes)


def test_named_random_parameters_and_errors():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    assert [n for n, _ in named_random_parameters(net)] == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
    ]
    assert [n for n, _ in named_random_parameters(net, lambda n, p: p.dim() == 2)] == [
        "0.weight",
        "1.weight",
    ]
    with pytest.raises(ValueError, match="selected none of: 0.weight, 0.bias"):
        named_random_parameters(net, lambda n, p: False)
    with pytest.raises(ValueError, match="at least one parameter"):
        named_random_parameters(nn.ReLU())


def test_fan_in_out_and_cast():
    assert fan_in_out(torch.empty(4, 3, 5, 5)) == (75, 100)
    assert fan_in_out(torch.empty(7)) == (7, 7)
    d = cast_distribution(dist.Normal(torch.tensor(0.0, dtype=torch.float32), 1.0), torch.zeros(1))
    assert d.loc.dtype == torch.float64
    mix = dist.MixtureSameFamily(
        dist.Categorical(torch.tensor([0.5, 0.5], dtype=torch.float32)),
        dist.Normal(torch.zeros(2, dtype=torch.float32), torch.ones(2, dtype=torch.float32)),
    )
    assert (
        cast_distribution(mix, torch.zeros(1)).component_distribution.scale.dtype == torch.float64
    )


def test_init_to_net_reads_the_site_and_falls_back():
    value = torch.tensor([1.0, 2.0])
    site = {"infer": {"pyro_bdl_init": value}, "fn": dist.Normal(0.0, 1.0)}
    out = init_to_net(site)
    assert torch.equal(out, value) and out is not value
    fallback = init_to_net(fallback=lambda s: torch.tensor(7.0))
    assert fallback({"infer": {}, "fn": dist.Normal(0.0, 1.0)}) == 7.0


def test_broadcast_shapes_matches_torch():
    from pyro_bdl.nn import broadcast_shapes

    for shapes in [
        ((4, 1), (3,)),
        ((2, 1, 5), (7, 1)),
        ((), (3, 2)),
        ((1,), (1,)),
        ((8, 1), (8, 1)),
    ]:
        assert broadcast_shapes(*shapes) == torch.broadcast_shapes(*shapes)
    assert broadcast_shapes() == torch.Size()
    with pytest.raises(ValueError, match="broadcastable"):
        broadcast_shapes((2,), (3,))


def _chain_net():
    return nn.Sequential(
        nn.Linear(4, 8),
        nn.Tanh(),
        nn.Dropout(0.3),
        nn.Linear(8, 8, bias=False),
        nn.ReLU(),
        nn.Linear(8, 2),
    ).eval()


@pytest.mark.parametrize("subset", ["all", "weights", "last layer"])
def test_linear_chain_equals_functional_call(subset):
    """A Linear/elementwise chain runs as batched matrix products: same outputs as a loop of
    functional_call (float64, 1e-12), for all, some, or one stacked parameter; one draw too."""
    torch.manual_seed(0)
    net = _chain_net()
    x = torch.randn(7, 4)
    draws = _draws(net, 5)
    if subset == "weights":
        draws = {k: v for k, v in draws.items() if k.endswith("weight")}
    elif subset == "last layer":
        draws = {k: v for k, v in draws.items() if k.startswith("5.")}
    fwd = BatchedForward(net)
    assert fwd._chain is not None and fwd._chain.usable(draws, (x,))
    out = fwd(draws, x, sample_shape=(5,), chunk_size=2)
    torch.testing.assert_close(out, _loop(net, draws, x), rtol=1e-12, atol=1e-12)
    one = {k: v[0] for k, v in draws.items()}
    torch.testing.assert_close(fwd(one, x), functional_call(net, one, (x,)), rtol=1e-12, atol=1e-12)


def test_linear_chain_steps_aside_for_hooks_training_dropout_and_other_nets():
    """Whatever the chain could not reproduce goes through functional_call: forward hooks run,
    a dropout layer in training mode drops, and non-chain modules are never chained."""
    torch.manual_seed(0)
    net = _chain_net()
    x = torch.randn(7, 4)
    draws = _draws(net, 3)
    fwd = BatchedForward(net)
    handle = net[3].register_forward_pre_hook(lambda m, a: (a[0] * 0,))
    try:
        assert not fwd._chain.usable(draws, (x,))
        out = fwd(draws, x, sample_shape=(3,))
        # the hook zeroes the input of layer 3: the output is the last layer's bias
        torch.testing.assert_close(out, draws["5.bias"][:, None, :].expand(3, 7, 2))
    finally:
        handle.remove()
    handle = net[0].register_full_backward_hook(lambda m, gi, go: None)
    assert not fwd._chain.usable(draws, (x,))
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: None)
    assert not fwd._chain.usable(draws, (x,))
    handle.remove()
    assert fwd._chain.usable(draws, (x,))
    net.train()
    assert not fwd._chain.usable(draws, (x,))
    assert BatchedForward(SmallCNN())._chain is None
    assert BatchedForward(_chain_net(), vectorize=False)._chain is None
    # input_fns are applied on both paths, like forward pre-hooks
    net.eval()
    fns = {net[0]: lambda m, h: h * 2}
    one = {k: v[0] for k, v in draws.items()}
    torch.testing.assert_close(fwd(one, x, input_fns=fns), functional_call(net, one, (2 * x,)))
    torch.testing.assert_close(
        fwd(draws, x, sample_shape=(3,), input_fns=fns), _loop(net, draws, 2 * x)
    )


def test_no_grad_chain_reuses_buffers_and_never_writes_into_the_input():
    """Without autograd the chain writes layer outputs into kept buffers (in-place activations):
    same outputs as with autograd, the caller's x untouched even when the chain starts with an
    activation, and results of earlier calls not overwritten by later ones."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.ReLU(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(7, 4)
    x0 = x.clone()
    draws = _draws(net, 5)
    fwd = BatchedForward(net)
    with_grad = fwd(draws, x, sample_shape=(5,), chunk_size=2)
    with torch.no_grad():
        first = fwd(draws, x, sample_shape=(5,), chunk_size=2)
        kept = first.clone()
        fwd({k: v + 1 for k, v in draws.items()}, x, sample_shape=(5,), chunk_size=2)
    torch.testing.assert_close(first, with_grad.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(first, kept, rtol=0, atol=0)
    torch.testing.assert_close(x, x0, rtol=0, atol=0)
    assert fwd._workspaces  # buffers kept for the next call
