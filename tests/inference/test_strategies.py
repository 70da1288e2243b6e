"""``pyro_bdl.inference.strategies``: ``Batch``, ``checksum``, ``resolve_strategy``, the divergence
guard of ``Local.step``, and ``DataParallel`` without a process group."""

import dataclasses

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.inference.elbo import TraceFreeELBO, estimator_handler, make_objective
from pyro_bdl.inference.optim import Optimizer
from pyro_bdl.inference.state import FitResult, FitState
from pyro_bdl.inference.strategies import (
    HINT,
    LOCAL,
    Batch,
    DivergenceError,
    Local,
    checksum,
    resolve_strategy,
)
from pyro_bdl.priors import IIDPrior


def test_batch_fields_and_defaults():
    x, y = torch.zeros(3, 1), torch.zeros(3)
    b = Batch(x, y, 3)
    assert (b.x, b.y, b.size, b.rows, b.weight) == (x, y, 3, None, 1.0)
    shard = Batch(x, y, size=10, rows=slice(4, 7), weight=0.3)
    assert shard.rows == slice(4, 7) and shard.weight == 0.3 and shard.size == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        shard.weight = 1.0  # type: ignore[misc]


def test_checksum_sums_absolute_entries_of_evenly_spaced_rows():
    assert checksum(torch.tensor([[1.0, -2.0], [3.0, 4.0]])) == 10.0
    assert checksum(torch.tensor(-2.5)) == 2.5  # a 0-dim tensor
    assert checksum(torch.tensor([1, -2, 3])) == 6.0  # integers, summed in float64
    t = torch.arange(3000.0, dtype=torch.float32)
    rows = torch.linspace(0, 2999, 1024).long()
    assert checksum(t) == float(t[rows].double().sum())
    assert checksum(t, rows=5000) == float(t.double().sum())
    assert checksum(t) != checksum(t, rows=5000)  # only the sampled rows count
    w = torch.ones(4, 2, requires_grad=True)
    assert checksum(w) == 8.0


def test_resolve_strategy():
    assert resolve_strategy(False, None) is LOCAL
    assert repr(LOCAL) == "Local()"
    mine = Local()
    assert resolve_strategy(False, mine) is mine
    with pytest.raises(ValueError, match="distributed=False with strategy=, but got both"):
        resolve_strategy(True, mine)


def test_data_parallel_without_a_process_group_names_init_process_group():
    assert not torch.distributed.is_initialized()
    from pyro_bdl.inference.strategies.data_parallel import DataParallel

    with pytest.raises(
        RuntimeError, match=r"process group, but there is none.*init_process_group\("
    ):
        DataParallel()
    with pytest.raises(RuntimeError, match="init_process_group"):
        resolve_strategy(True, None)


def test_local_step_runs_every_on_epoch_and_stops_if_one_asks():
    calls = []

    class Cb:
        def __init__(self, answer):
            self.answer = answer

        def on_epoch(self, state):
            calls.append(self.answer)
            return self.answer

    state = FitState(1, FitResult(dataset_size=1), torch.Generator())
    assert LOCAL.end_epoch(state, [Cb(True), Cb(None)]) is True
    assert calls == [True, None]  # the second one still ran
    assert LOCAL.end_epoch(state, [Cb(False), Cb(None)]) is False
    assert LOCAL.is_main and LOCAL.agree_seed(5) == 5 and LOCAL.guard("x", lambda: 7) == 7


def fitted_objective():
    torch.manual_seed(0)
    x, y = torch.randn(20, 2), torch.randn(20)
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0))
    bnn.fit(x, y, epochs=2, progress=False)
    model = bnn.bayesian_model
    bnn.prior = IIDPrior(dist.Normal(0.0, 1e-200))  # so narrow that the KL overflows
    objective = make_objective(
        model, bnn.guide, (x[:2], y[:2]), 20, handler=lambda: estimator_handler(bnn.guide, model)
    )
    return objective, x, y


def test_local_step_raises_divergence_with_the_step_number_and_keeps_the_parameters():
    objective, x, y = fitted_objective()
    assert isinstance(objective, TraceFreeELBO)
    optim = pyro.optim.Adam({"lr": 0.1})
    optimizer = Optimizer(optim, objective.params)
    history = FitResult(dataset_size=20)
    for _ in range(3):
        history.add_step(-1.0, 1.0)
    state = FitState(1, history, torch.Generator())
    before = [p.detach().clone() for p in objective.params]
    with pytest.raises(DivergenceError, match=r"its KL term is (inf|nan) \(step 3\)") as info:
        LOCAL.step(state, Batch(x, y, 20), objective, optimizer, dataset_size=20)
    assert HINT in str(info.value) and "keep their last good values" in str(info.value)
    assert isinstance(info.value, FloatingPointError)
    for p, b in zip(objective.params, before, strict=True):
        assert torch.equal(p, b) and p.grad is None
    assert state.step == 3  # the failed step was not recorded


def test_local_step_takes_a_step_and_returns_the_terms():
    torch.manual_seed(0)
    x, y = torch.randn(20, 2), torch.randn(20)
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0))
    bnn.ensure_guide(x)
    model = bnn.bayesian_model
    objective = make_objective(model, bnn.guide, (x[:2], y[:2]), 20)
    optimizer = Optimizer(pyro.optim.Adam({"lr": 0.1}), objective.params)
    before = [p.detach().clone() for p in objective.params]
    state = FitState(0, FitResult(dataset_size=20), torch.Generator())
    torch.manual_seed(4)
    loglik, kl = LOCAL.step(state, Batch(x[:10], y[:10], 10), objective, optimizer, dataset_size=20)
    torch.manual_seed(4)
    after, _ = objective(x[:10], y[:10], 20)  # the same noise at the updated parameters
    assert isinstance(loglik, float) and isinstance(kl, float)
    assert all(not torch.equal(p, b) for p, b in zip(objective.params, before, strict=True))
    assert all(p.grad is None for p in objective.params)
    with torch.no_grad():
        for p, b in zip(objective.params, before, strict=True):
            p.copy_(b)
    torch.manual_seed(4)  # the same noise at the parameters before the step
    again, _ = objective(x[:10], y[:10], 20)
    assert loglik == pytest.approx(again.loglik.item(), rel=1e-12, abs=1e-12)
    assert kl == pytest.approx(again.kl.item(), rel=1e-12, abs=1e-12)
    assert abs(after.kl.item() - kl) > 1e-8  # the update changed the estimate
