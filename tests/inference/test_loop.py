"""The fit loop: fit_model and fit, resuming from a FitState, stopping, the public step."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.inference.callbacks import EarlyStop
from pyro_bdl.inference.data import TensorBatches
from pyro_bdl.inference.loop import Batch, FitOptions, fit, fit_model, step


def problem(seed: int = 0):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 2, generator=g)
    y = x @ torch.tensor([1.0, -2.0]) + 0.1 * torch.randn(30, generator=g)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(), MeanFieldNormal(0.05))
    return bnn, x, y


def test_continuing_a_fit_state_equals_the_uninterrupted_fit_bitwise():
    """Resume is "continue from a FitState": 2 epochs, then 3 more from the state they left,
    take exactly the steps of 5 epochs in one go."""
    optim = lambda: pyro.optim.Adam({"lr": 0.02})  # noqa: E731
    bnn, x, y = problem()
    whole = fit_model(
        bnn.bayesian_model, bnn.guide, TensorBatches(x, y, 8), optim(), FitOptions(5, seed=3)
    )
    want = {k: v.clone() for k, v in bnn.state_dict().items()}
    pyro.clear_param_store()
    bnn, x, y = problem()
    data = TensorBatches(x, y, 8)
    state = fit_model(bnn.bayesian_model, bnn.guide, data, optim(), FitOptions(2, seed=3))
    assert state.epoch == 2 and state.step == 8  # 30 points in batches of 8: 4 steps an epoch
    state = fit(state.objective, state.optimizer, data, epochs=5, state=state)
    assert state.epoch == 5 and state.history.step_elbo == whole.history.step_elbo
    got = bnn.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())


def test_a_callback_stop_ends_the_fit_after_that_epoch():
    bnn, x, y = problem()
    stop = EarlyStop(patience=1, min_delta=1e9)  # no epoch improves by 1e9 nats: stop at once
    state = fit_model(
        bnn.bayesian_model,
        bnn.guide,
        TensorBatches(x, y, None),
        pyro.optim.Adam({"lr": 0.01}),
        FitOptions(50, seed=0),
        callbacks=[stop],
    )
    assert state.epoch == 2 and state.stop and len(state.history.elbo) == 2


def test_the_public_step_records_nothing_itself_and_moves_the_parameters():
    bnn, x, y = problem()
    state = fit_model(
        bnn.bayesian_model,
        bnn.guide,
        TensorBatches(x, y, None),
        pyro.optim.Adam({"lr": 0.01}),
        FitOptions(1, seed=0),
    )
    before = [p.detach().clone() for p in state.objective.params]
    loglik, kl = step(state, Batch(x, y, len(x)), state.objective, state.optimizer, dataset_size=30)
    assert isinstance(loglik, float) and isinstance(kl, float) and kl > 0
    assert state.step == 1  # the loop, not step, records history
    assert any(not torch.equal(a, b) for a, b in zip(before, state.objective.params, strict=True))
