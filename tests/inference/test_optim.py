"""``pyro_bdl.inference.optim``: ``make_optim``, the fused ``Optimizer`` = Pyro's per-tensor one."""

import math

import pyro
import pyro.optim
import pytest
import torch

from pyro_bdl.inference.optim import Optimizer, fused_optimizer, gradients_finite, make_optim


@pytest.mark.parametrize("lr", [0, 0.0, -1e-3, math.nan, math.inf, True, "0.1", None])
def test_make_optim_refuses_a_bad_learning_rate(lr):
    with pytest.raises(ValueError, match=f"Expected lr > 0, but got {lr!r}"):
        make_optim(lr, None)


def test_make_optim_builds_adam_or_passes_a_pyro_optimiser_through():
    made = make_optim(3e-2, None)
    assert isinstance(made, pyro.optim.PyroOptim) and made.pt_optim_constructor is torch.optim.Adam
    assert made.pt_optim_args == {"lr": 0.03}
    mine = pyro.optim.SGD({"lr": 0.5})
    assert make_optim(-1.0, mine) is mine  # lr is ignored when optim is given
    with pytest.raises(TypeError, match=r"pyro.optim optimiser .* but got type"):
        make_optim(1e-3, torch.optim.Adam)
    with pytest.raises(TypeError, match="but got Adam"):
        make_optim(1e-3, torch.optim.Adam([torch.zeros(1, requires_grad=True)]))


def loss(w, b):
    """A fixed non-quadratic loss (so Adam's moments differ per entry and per step)."""
    return (torch.sin(3 * w) * w).sum() + (b**4).sum() + (w.sum() * b[0]) ** 2


def make_params(prefix):
    g = torch.Generator().manual_seed(0)
    w0, b0 = torch.randn(3, 2, generator=g), torch.randn(2, generator=g)
    return [
        pyro.param(f"{prefix}.w", w0.clone()).unconstrained(),
        pyro.param(f"{prefix}.b", b0.clone()).unconstrained(),
    ]


@pytest.mark.parametrize(
    "optim",
    [
        lambda: pyro.optim.Adam({"lr": 0.1, "betas": (0.8, 0.95)}),
        lambda: pyro.optim.Adam({"lr": 0.05, "weight_decay": 0.1}),
        lambda: pyro.optim.SGD({"lr": 0.01, "momentum": 0.9}),
    ],
    ids=["adam", "adam-weight-decay", "sgd-momentum"],
)
def test_the_fused_optimiser_takes_pyros_per_tensor_steps(optim):
    fused_params, plain_params = make_params("fused"), make_params("plain")
    fused = Optimizer(optim(), fused_params)
    plain_optim = optim()
    assert fused.fused is not None
    for _ in range(5):
        for params, step in ((fused_params, fused.step), (plain_params, plain_optim)):
            loss(*params).backward()
            step(params)
            if step is plain_optim:
                for p in params:
                    p.grad = None
        for a, b in zip(fused_params, plain_params, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
            assert a.grad is None  # cleared by the step
    moved = fused_params[0] - make_params("fresh")[0]
    assert moved.abs().min() > 1e-4  # the parameters did move
    # the fused optimiser's state is pyro.optim's per-tensor state
    state = fused.get_state()
    assert set(state) == {"fused.w", "fused.b"}
    if "step" in state["fused.w"]["state"][0]:
        assert float(state["fused.w"]["state"][0]["step"]) == 5.0


def test_no_fusion_for_clipped_or_non_elementwise_optimisers_or_unknown_params():
    params = make_params("p")
    assert fused_optimizer(pyro.optim.Adam({"lr": 0.1}, {"clip_norm": 1.0}), params) is None
    assert fused_optimizer(pyro.optim.ClippedAdam({"lr": 0.1}), params) is None
    assert fused_optimizer(pyro.optim.Adam(lambda p: {"lr": 0.1}), params) is None  # per-param
    opt = Optimizer(pyro.optim.Adam({"lr": 0.1}), None)
    assert opt.fused is None
    start = [p.detach().clone() for p in params]
    loss(*params).backward()
    opt.step(params)
    assert all(not p.grad.any() for p in params)  # pyro's zero_grads: cleared to zeros
    assert all(not torch.equal(p, s) for p, s in zip(params, start, strict=True))


def test_gradients_finite():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    assert gradients_finite([a, b])  # no gradients at all
    a.grad, b.grad = torch.ones(2), torch.ones(3)
    assert gradients_finite([a, b])
    b.grad = torch.tensor([1.0, math.nan, 0.0])
    assert not gradients_finite([a, b])
    b.grad = torch.tensor([1e200, 1e200, 0.0])  # every entry finite, the norm overflows
    assert not gradients_finite([a, b])
