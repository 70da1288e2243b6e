"""``pyro_bdl.inference.state``: FitResult arithmetic, FitOptions validation, FitState."""

import pytest
import torch

from pyro_bdl.inference.state import FitOptions, FitResult, FitState


def test_add_step_divides_both_terms_by_the_dataset_size():
    r = FitResult(dataset_size=10)
    r.add_step(-5.0, 1.0)
    assert r.step_loglik == [pytest.approx(-0.5, abs=1e-15)]
    assert r.step_kl == [pytest.approx(0.1, abs=1e-15)]
    assert r.step_elbo == [pytest.approx(-0.6, abs=1e-15)]
    assert r.num_steps == 1 and r.elbo == []  # no epoch closed yet


def test_end_epoch_averages_only_the_steps_of_that_epoch():
    r = FitResult(dataset_size=4)
    for loglik, kl in [(-8.0, 4.0), (-4.0, 0.0)]:  # epoch 1: 2 steps
        r.add_step(loglik, kl)
    r.end_epoch(2)
    for loglik, kl in [(-2.0, 2.0), (-6.0, 2.0), (-10.0, 8.0)]:  # epoch 2: 3 steps
        r.add_step(loglik, kl)
    r.end_epoch(3)
    # epoch 1: loglik/N = (-2 - 1)/2, kl/N = (1 + 0)/2; epoch 2: (-0.5 - 1.5 - 2.5)/3, (0.5+0.5+2)/3
    assert r.loglik == pytest.approx([-1.5, -1.5], abs=1e-15)
    assert r.kl == pytest.approx([0.5, 1.0], abs=1e-15)
    assert r.elbo == pytest.approx([-2.0, -2.5], abs=1e-15)
    assert r.num_steps == 5
    for e in range(2):
        assert r.elbo[e] == r.loglik[e] - r.kl[e]
    assert repr(r) == "FitResult(epochs=2, steps=5, elbo/N=-2.5000)"
    assert repr(FitResult(dataset_size=3)) == "FitResult(epochs=0, steps=0)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs to be a positive int, but got 0"),
        ({"epochs": True}, "epochs to be a positive int, but got True"),
        ({"epochs": 1.5}, "epochs to be a positive int, but got 1.5"),
        ({"num_particles": 0}, "num_particles to be a positive int, but got 0"),
        ({"estimator": "exact"}, r"elbo in \('auto', 'traced', 'trace_free'\), but got 'exact'"),
    ],
)
def test_fit_options_validate_refuses_what_no_fit_can_take(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FitOptions(**kwargs).validate()


def test_fit_options_defaults_validate_and_are_frozen():
    options = FitOptions()
    options.validate()
    for estimator in ("auto", "traced", "trace_free"):
        FitOptions(epochs=3, num_particles=2, estimator=estimator).validate()
    with pytest.raises(AttributeError):
        options.epochs = 2  # type: ignore[misc]


def test_fit_state_step_counts_the_history_steps():
    state = FitState(0, FitResult(dataset_size=5), torch.Generator().manual_seed(0))
    assert state.step == 0 and not state.stop
    state.history.add_step(-1.0, 0.5)
    state.history.add_step(-1.0, 0.5)
    assert state.step == 2
