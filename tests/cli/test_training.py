"""``pyro_bdl.cli.training``: the epoch limit from the data size and the convergence rule."""

import math

import pyro.distributions as dist
import pyro.optim
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.cli.training import MAX_STEPS, WINDOW_STEPS, ConvergenceRule, plan, step_size
from pyro_bdl.inference.optim import Optimizer


def test_plan_scales_the_limit_and_the_window_with_the_data():
    small = plan(353, 128)  # 3 minibatches per epoch
    assert small.steps_per_epoch == 3 and small.window == math.ceil(WINDOW_STEPS / 3)
    assert small.epochs == math.ceil(MAX_STEPS / 3)
    big = plan(100_000, 128)  # 782 minibatches per epoch: the window's floor, 10 windows
    assert big.window == 10 and big.epochs == 100
    assert plan(40, 128).steps_per_epoch == 1  # a batch larger than the data: full batches
    assert plan(353, 128, epochs=7).epochs == 7  # --epochs wins


class _State:
    """The parts of a FitState the rule reads: the ELBO history, the optimiser, the epoch."""

    def __init__(self, optimizer):
        self.history = type("History", (), {"elbo": []})()
        self.optimizer = optimizer
        self.epoch = 0


def _optimizer(lr):
    w = torch.zeros(3, requires_grad=True)
    return Optimizer(pyro.optim.Adam({"lr": lr}), [w]), w


def test_the_rule_cuts_the_step_size_at_each_plateau_and_stops_at_the_last():
    optimizer, w = _optimizer(0.03)
    state = _State(optimizer)
    rule = ConvergenceRule(window=5, cuts=3, factor=0.5, tol=1e-3)
    rule.on_fit_start(state, 1000)
    stops = []
    # the ELBO rises for 20 epochs, then is flat (with a little noise): a plateau per stage
    for epoch in range(1, 200):
        state.epoch = epoch
        state.history.elbo.append(min(epoch, 20) * 0.1 + 1e-4 * (-1) ** epoch)
        if rule.on_epoch(state):
            stops.append(epoch)
            break
    # epoch 27: the windows 18-22 and 23-27 differ by 0.06, less than 2 standard errors of
    # their means (0.08): the first plateau; each later stage is flat from its start, so it
    # ends after its first two windows (10 epochs), and the fourth plateau ends the fit
    assert rule.converged and rule.cut_epochs == [27, 37, 47] and stops == [57]
    assert step_size(optimizer) == pytest.approx(0.03 * 0.5**3)
    groups = optimizer.fused.param_groups + [
        g for o in optimizer.optim.optim_objs.values() for g in o.param_groups
    ]
    assert len(groups) == 2 and all(g["lr"] == pytest.approx(0.03 * 0.5**3) for g in groups)
    assert rule.describe(57).startswith("converged after 57 epochs (step size cut at epochs 27")


def test_a_rising_elbo_is_not_a_plateau():
    optimizer, _ = _optimizer(0.01)
    state = _State(optimizer)
    rule = ConvergenceRule(window=5)
    for epoch in range(1, 60):
        state.epoch = epoch
        state.history.elbo.append(0.01 * epoch)  # 0.05 nats per window: more than tol
        assert not rule.on_epoch(state)
    assert not rule.converged and rule.cut_epochs == [] and step_size(optimizer) == 0.01
    assert rule.last_gain == pytest.approx(0.05)
    assert "still rose by 0.05 nats over the last 5 epochs" in rule.describe(59)


def test_a_real_fit_converges_before_its_limit():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    y = x @ torch.tensor([1.0, -1.0]) + 0.3 * torch.randn(64, generator=g)
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian())
    rule = ConvergenceRule(window=20)
    fit = bnn.fit(x, y, epochs=5000, lr=0.05, seed=0, progress=False, callbacks=[rule])
    assert rule.converged and len(fit.elbo) < 5000 and len(rule.cut_epochs) == 3
    assert float(bnn.likelihood.scale.detach()) == pytest.approx(0.3, abs=0.06)  # the noise std
