"""``pyro_bdl.inference.callbacks``: early stopping, checkpoint cadence, per-epoch and per-step
callbacks, through ``BNN.fit`` on a tiny problem and with synthetic fit states."""

import math

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.inference.callbacks import (
    Callback,
    Checkpoint,
    EarlyStop,
    EpochCallback,
    Progress,
    fit_callbacks,
)
from pyro_bdl.inference.state import FitResult, FitState

N = 12


def tiny():
    torch.manual_seed(0)
    x = torch.randn(N, 2)
    y = x @ torch.tensor([1.0, -0.5]) + 0.1 * torch.randn(N)
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5))
    return bnn, x, y


def states(elbos):
    """One synthetic FitState per epoch, with the given per-epoch ELBOs."""
    history = FitResult(dataset_size=1)
    state = FitState(0, history, torch.Generator())
    for e, elbo in enumerate(elbos):
        history.add_step(elbo, 0.0)
        history.end_epoch(1)
        state.epoch = e + 1
        yield state


def test_early_stop_counts_epochs_without_improvement_on_synthetic_states():
    stop = EarlyStop(patience=2, min_delta=0.1)
    # improvements: -5 (first), -4 (by 1.0), -3.95 (only 0.05: no), -3.92 (no) -> stop
    decisions = [stop.on_epoch(s) for s in states([-5.0, -4.0, -3.95, -3.92])]
    assert decisions == [False, False, False, True]
    assert stop.best == -4.0 and stop.waited == 2
    stop.on_fit_start(None, 10)  # type: ignore[arg-type]  # a new fit starts afresh
    assert stop.best == -math.inf and stop.waited == 0
    # an improvement resets the count
    stop = EarlyStop(patience=2)
    decisions = [stop.on_epoch(s) for s in states([-3.0, -3.0, -2.0, -2.0, -2.0])]
    assert decisions == [False, False, False, False, True]


def test_early_stop_ends_a_fit_after_patience_epochs_without_improvement():
    bnn, x, y = tiny()
    # min_delta so large that only the first epoch counts as an improvement
    result = bnn.fit(x, y, epochs=50, progress=False, callbacks=[EarlyStop(3, min_delta=1e9)])
    assert len(result.elbo) == 4 and result.num_steps == 4  # 1 improvement + 3 without
    assert bnn.fit_state is not None and bnn.fit_state.epoch == 4


def test_checkpoint_saves_every_second_epoch():
    saved = []
    cb = Checkpoint(2, lambda state: saved.append(state.epoch))
    for state in states([0.0] * 5):
        assert cb.on_epoch(state) is None
    assert saved == [2, 4]
    bnn, x, y = tiny()
    saved.clear()
    bnn.fit(x, y, epochs=5, batch_size=4, progress=False, callbacks=[cb])
    assert saved == [2, 4]


def test_epoch_callback_numbers_epochs_from_zero_and_can_stop():
    seen = []

    def fn(epoch, history):
        seen.append((epoch, len(history.elbo)))
        return epoch == 2

    bnn, x, y = tiny()
    result = bnn.fit(x, y, epochs=10, batch_size=6, progress=False, callbacks=[EpochCallback(fn)])
    assert seen == [(0, 1), (1, 2), (2, 3)]
    assert len(result.elbo) == 3 and result.num_steps == 6
    cb = EpochCallback(lambda epoch, history: None)
    assert cb.on_epoch(next(states([1.0]))) is False  # None means "go on"


class Recorder(Callback):
    def __init__(self):
        self.steps, self.events = [], []

    def on_fit_start(self, state, epochs):
        self.events.append(("start", state.epoch, epochs))

    def on_step(self, state, loglik, kl):
        self.steps.append((state.step, loglik, kl))

    def on_epoch(self, state):
        self.events.append(("epoch", state.epoch))

    def on_fit_end(self, state):
        self.events.append(("end", state.epoch))


def test_a_custom_on_step_callback_sees_every_step_with_the_recorded_terms():
    bnn, x, y = tiny()
    rec = Recorder()
    result = bnn.fit(x, y, epochs=3, batch_size=5, progress=False, callbacks=[rec])
    assert result.num_steps == 9  # batches of 5, 5, 2
    assert [s for s, _, _ in rec.steps] == list(range(1, 10))  # after the step is recorded
    for (_, loglik, kl), sl, sk in zip(rec.steps, result.step_loglik, result.step_kl, strict=True):
        assert loglik == pytest.approx(sl * N, rel=1e-12, abs=1e-12)
        assert kl == pytest.approx(sk * N, rel=1e-12, abs=1e-12)
    assert rec.events == [("start", 0, 3), ("epoch", 1), ("epoch", 2), ("epoch", 3), ("end", 3)]


def test_every_callback_runs_at_the_epoch_a_stop_is_asked_and_on_fit_end_after_an_error():
    bnn, x, y = tiny()
    rec = Recorder()
    bnn.fit(x, y, epochs=5, progress=False, callbacks=[EarlyStop(1, min_delta=1e9), rec])
    assert rec.events[-2:] == [("epoch", 2), ("end", 2)]  # the stop came from the first one

    class Boom(Callback):
        def on_step(self, state, loglik, kl):
            raise RuntimeError("boom")

    rec = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        bnn.fit(x, y, epochs=2, progress=False, callbacks=[rec, Boom()])
    assert rec.events == [("start", 0, 2), ("end", 0)]


def test_fit_callbacks_order_is_progress_checkpoint_epoch_function_then_the_users():
    mine = Recorder()
    made = fit_callbacks(
        progress=True, checkpoint_every=3, save=print, callback=lambda e, r: None, callbacks=[mine]
    )
    assert [type(c) for c in made] == [Progress, Checkpoint, EpochCallback, Recorder]
    assert made[1].every == 3 and made[-1] is mine
    assert fit_callbacks(progress=False, checkpoint_every=None, save=print, callback=None) == []


@pytest.mark.parametrize("every", [0, -1, 1.5, True, None])
def test_checkpoint_refuses_a_bad_cadence(every):
    with pytest.raises(ValueError, match=f"every to be a positive int, but got {every!r}"):
        Checkpoint(every, print)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"patience": 0}, "patience to be a positive int, but got 0"),
        ({"patience": False}, "patience to be a positive int, but got False"),
        ({"patience": 2.0}, "patience to be a positive int, but got 2.0"),
        ({"patience": 2, "min_delta": -0.1}, "min_delta >= 0, but got -0.1"),
        ({"patience": 2, "min_delta": float("nan")}, "min_delta >= 0, but got nan"),
        ({"patience": 2, "min_delta": float("inf")}, "min_delta >= 0, but got inf"),
        ({"patience": 2, "min_delta": "0.1"}, "min_delta >= 0, but got '0.1'"),
    ],
)
def test_early_stop_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStop(**kwargs)
