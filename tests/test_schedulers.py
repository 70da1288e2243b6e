"""Learning-rate schedulers (``pyro.optim.PyroLRScheduler``) in ``BNN.fit``.

The loop steps a scheduler once at the end of every epoch (``ReduceLROnPlateau`` with the epoch's
loss, ``-elbo[-1]``), on the trace-free and the traced estimator alike; a fit equals the
hand-written Pyro loop of the scheduler's documentation (``svi.step`` per minibatch,
``scheduler.step()`` per epoch) from the same seed.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, TraceMeanField_ELBO
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.inference.elbo import TracedELBO, TraceFreeELBO
from pyro_bdl.inference.optim import Optimizer, fused_optimizer

N = 12
LR = 0.05


def problem(name="sched"):
    torch.manual_seed(0)
    x = torch.randn(N, 2)
    y = x.sum(-1) + 0.1 * torch.randn(N)
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    return x, y, BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5), name=name)


def exponential(gamma=0.5):
    return pyro.optim.ExponentialLR(
        {"optimizer": torch.optim.Adam, "optim_args": {"lr": LR}, "gamma": gamma}
    )


def plateau():
    return pyro.optim.ReduceLROnPlateau(
        {
            "optimizer": torch.optim.Adam,
            "optim_args": {"lr": 0.3},  # large: the loss goes up now and then
            "factor": 0.5,
            "patience": 0,
            "threshold": 0.0,
        }
    )


def learning_rates(scheduler):
    """The learning rate of every per-tensor optimiser the scheduler drives."""
    return [s.optimizer.param_groups[0]["lr"] for s in scheduler.optim_objs.values()]


def guide_state(bnn):
    return {k: v.detach().clone() for k, v in bnn.guide.named_parameters()}


@pytest.mark.parametrize("elbo", ["trace_free", "traced"])
@pytest.mark.parametrize("batch_size", [None, 5])  # 1 and 3 steps per epoch
def test_exponential_lr_is_stepped_once_per_epoch(elbo, batch_size):
    x, y, bnn = problem()
    scheduler = exponential(gamma=0.9)
    result = bnn.fit(
        x, y, epochs=4, batch_size=batch_size, optim=scheduler, elbo=elbo, progress=False
    )
    objective = bnn.fit_state.objective
    assert isinstance(objective, TraceFreeELBO if elbo == "trace_free" else TracedELBO)
    assert result.num_steps == 4 * (1 if batch_size is None else 3)
    rates = learning_rates(scheduler)
    assert len(rates) == len(list(bnn.guide.parameters())) > 0  # every parameter tensor
    assert rates == pytest.approx([LR * 0.9**4] * len(rates), rel=1e-12)
    # a second fit with the same scheduler continues its schedule
    bnn.fit(x, y, epochs=2, batch_size=batch_size, optim=scheduler, elbo=elbo, progress=False)
    assert learning_rates(scheduler) == pytest.approx([LR * 0.9**6] * len(rates), rel=1e-12)


@pytest.mark.parametrize("elbo", ["trace_free", "traced"])
@pytest.mark.parametrize("make", [exponential, plateau], ids=["ExponentialLR", "Plateau"])
def test_fit_equals_the_hand_written_pyro_loop(elbo, make):
    """Same seed, same draws, same schedule: the guide's parameters agree to 1e-12 (the
    trace-free estimate equals the traced one to rounding; here they are in fact bitwise)."""
    epochs = 15
    x, y, bnn = problem()
    scheduler = make()
    result = bnn.fit(x, y, epochs=epochs, optim=scheduler, seed=3, elbo=elbo, progress=False)
    ours, ours_rates = guide_state(bnn), learning_rates(scheduler)

    pyro.clear_param_store()
    x, y, bnn = problem()
    bnn.ensure_guide(x)
    scheduler = make()
    svi = SVI(bnn.model, bnn.guide, scheduler, TraceMeanField_ELBO(max_plate_nesting=1))
    torch.manual_seed(3)
    losses = []
    for _ in range(epochs):
        losses.append(svi.step(x, y) / N)  # one minibatch per epoch: the epoch's loss
        if make is plateau:
            scheduler.step(losses[-1])
        else:
            scheduler.step()
    theirs, their_rates = guide_state(bnn), learning_rates(scheduler)

    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-12)
    assert ours_rates == pytest.approx(their_rates, rel=1e-12)
    assert [-e for e in result.elbo] == pytest.approx(losses, rel=1e-12)
    if make is plateau:
        # the metric is the epoch's loss: with patience 0 and threshold 0 the rate halves after
        # every epoch whose loss is no lower than the best before it
        worse = sum(
            1 for t in range(1, epochs) if losses[t] >= min(losses[:t])
        )  # the first epoch only sets the best
        assert 0 < worse < epochs - 1  # the schedule did something, and not always
        assert ours_rates == pytest.approx([0.3 * 0.5**worse] * len(ours_rates), rel=1e-12)
    else:
        assert ours_rates == pytest.approx([LR * 0.5**epochs] * len(ours_rates), rel=1e-12)


def test_a_resumed_fit_continues_the_schedule(tmp_path):
    path = tmp_path / "fit.pt"
    x, y, bnn = problem()
    full = exponential(gamma=0.7)
    bnn.fit(x, y, epochs=6, batch_size=5, optim=full, seed=1, progress=False)
    want = guide_state(bnn)

    pyro.clear_param_store()
    x, y, bnn = problem()
    first = exponential(gamma=0.7)
    bnn.fit(
        x,
        y,
        epochs=3,
        batch_size=5,
        optim=first,
        seed=1,
        progress=False,
        checkpoint_every=3,
        checkpoint_path=path,
    )
    pyro.clear_param_store()
    x, y, bnn = problem()
    resumed = exponential(gamma=0.7)
    bnn.fit(x, y, epochs=6, batch_size=5, optim=resumed, seed=1, progress=False, resume_from=path)
    for name, value in guide_state(bnn).items():
        torch.testing.assert_close(value, want[name], rtol=0, atol=0)
    assert learning_rates(resumed) == pytest.approx(learning_rates(full), rel=1e-15)
    assert learning_rates(resumed)[0] == pytest.approx(LR * 0.7**6, rel=1e-12)


def test_a_scheduler_is_never_fused_and_plain_optimisers_ignore_end_epoch():
    w = torch.zeros(3, requires_grad=True)
    assert fused_optimizer(exponential(), [w]) is None
    assert fused_optimizer(pyro.optim.Adam({"lr": LR}), [w]) is not None
    adam = Optimizer(pyro.optim.Adam({"lr": LR}), [w])
    w.grad = torch.ones(3)
    adam.step([w])
    before = adam.get_state()
    adam.end_epoch(1.0)  # nothing to step
    assert adam.get_state().keys() == before.keys()
    assert adam.fused is not None and adam.fused.param_groups[0]["lr"] == LR
