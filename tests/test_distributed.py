"""Distributed SVI and prediction against the single-process engine.

Two gloo ranks on this machine (spawned processes, a free TCP port, float64) must take the very
steps of ``BNN.fit`` with the same global minibatches and seed: every parameter equal to 1e-10,
the same per-datum ELBO history, and exactly the draws of ``BNN.predict``. A rank that fails
must stop the others with an error naming it. A process group of one rank, in this process,
covers the argument checks and must reproduce ``BNN.fit`` bitwise.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.distributed as tdist
from pyro.infer.autoguide import AutoNormal
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.distributed import DistributedFitError, fit_distributed, predict_distributed
from pyro_bdl.guides import BernoulliDropout, MeanFieldNormal

WORLD = 2
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "distributed_svi.py"

#: model, data and fit arguments of each case; the data sizes leave uneven last minibatches
#: (37 = 3 * 10 + 7: shards of 4 and 3; 31 = 3 * 10 + 1: one rank gets no point at all)
CASES: dict[str, dict[str, Any]] = {
    # trace-free step; random first layer, deterministic second layer, learned noise scale
    "mean-field": {"n": 37, "fit": {"batch_size": 10, "num_particles": 2}, "chunk": 3},
    # traced step: a noise precision with a Monte-Carlo KL
    "precision": {"n": 37, "fit": {"batch_size": 16, "num_particles": 1}, "chunk": None},
    # traced step, guide built lazily (consuming the RNG) as in BNN.fit
    "autonormal": {"n": 31, "fit": {"batch_size": 10, "num_particles": 3}, "chunk": 2},
    # per-particle dropout masks, classification, particles drawn one by one
    "dropout": {
        "n": 31,
        "fit": {"batch_size": 10, "num_particles": 2, "vectorize_particles": False},
        "chunk": None,
    },
}
FIT = {"epochs": 2, "lr": 0.05, "seed": 3, "progress": False}
NUM_SAMPLES, PREDICT_SEED = 7, 5


def build(case: str, name: str) -> BNN:
    """The same BNN in every process (the network is initialised from a fixed seed)."""
    torch.manual_seed(0)
    out = 3 if case == "dropout" else 1
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, out))
    prior = dist.Normal(0.0, 1.0)
    if case == "mean-field":
        lik = HomoskedasticGaussian()
        return BNN(net, prior, lik, include=lambda n, p: n.startswith("0."), name=name)
    if case == "dropout":
        guide = BernoulliDropout(0.2, estimator="per_particle")
        return BNN(net, prior, Categorical(), guide=guide, name=name)
    lik = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))
    return BNN(net, prior, lik, guide=AutoNormal if case == "autonormal" else None, name=name)


def data(case: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = CASES[case]["n"]
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    if case == "dropout":
        return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, x.sum(1) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)


def _history(result: Any) -> dict[str, list[float]]:
    keys = ("elbo", "loglik", "kl", "step_elbo", "step_loglik", "step_kl")
    return {k: list(getattr(result, k)) for k in keys}


# =============================================================================== the ranks
def _fail_on_step(rank: int, bnn: BNN, action: str) -> None:
    """On rank 1, raise (or hang) in the forward of step 2 (probes use <= 2 points, shards 5)."""
    if rank != 1:
        return
    calls: list[int] = []

    def hook(module: nn.Module, args: tuple) -> None:
        if args[0].shape[-2] > 2:
            calls.append(1)
            if len(calls) == 3:
                if action == "hang":
                    time.sleep(300)
                raise RuntimeError("injected failure")

    bnn.net[0].register_forward_pre_hook(hook)


def _failing_fit(rank: int, action: str) -> dict[str, Any]:
    bnn = build("mean-field", f"failing-{action}")
    _fail_on_step(rank, bnn, action)
    start = time.perf_counter()
    try:
        fit_distributed(bnn, *data("mean-field"), batch_size=10, **FIT)
    except Exception as exc:  # reported to the test, which checks it
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - start}
    return {"error": None, "seconds": time.perf_counter() - start}


def _scenario(rank: int, scenario: str) -> dict[str, Any]:
    if scenario == "hang":
        return {"hang": _failing_fit(rank, "hang")}
    record: dict[str, Any] = {}
    for case, spec in CASES.items():
        pyro.clear_param_store()
        bnn = build(case, case)
        x, y = data(case)
        result = fit_distributed(bnn, x, y, **spec["fit"], **FIT)
        pred = predict_distributed(bnn, x, NUM_SAMPLES, seed=PREDICT_SEED, chunk_size=spec["chunk"])
        single = bnn.predict(x, NUM_SAMPLES, seed=PREDICT_SEED, chunk_size=spec["chunk"])
        record[case] = {
            "state": {k: v.detach().clone() for k, v in bnn.state_dict().items()},
            "history": _history(result),
            "samples": pred.samples,
            "scale": pred.scale,
            "single_samples": single.samples,
            "single_scale": single.scale,
        }
    record.update(_engine_cases(rank))
    # coordinated failures leave the process group usable, so they can share the launch
    try:
        fit_distributed(build("mean-field", "mismatch"), *data("mean-field"), batch_size=5 + rank)
    except DistributedFitError as exc:
        record["mismatch"] = str(exc)
    record["raise"] = _failing_fit(rank, "raise")
    return record


#: what the single-process fit supported and the distributed one refused before the strategy
ENGINE = {"epochs": 3, "lr": 0.05, "seed": 3, "progress": False}


def masks_bnn(name: str) -> BNN:
    """Per-example dropout masks (the trace-free step draws them on the layer inputs)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3))
    return BNN(net, dist.Normal(0.0, 1.0), Categorical(), guide=BernoulliDropout(0.2), name=name)


def loader(case: str, batch_size: int = 10) -> torch.utils.data.DataLoader:
    x, y = data(case)
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)


def _state(bnn: BNN) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in bnn.state_dict().items()}


def _engine_cases(rank: int, checkpoint: str | None = None) -> dict[str, Any]:
    """A DataLoader, per-example dropout masks, and a checkpointed run resumed, on every rank."""
    record: dict[str, Any] = {}
    pyro.clear_param_store()
    bnn = build("mean-field", "loader")
    result = fit_distributed(bnn, loader("mean-field"), None, **ENGINE)
    record["loader"] = {"state": _state(bnn), "history": _history(result)}
    pyro.clear_param_store()
    bnn = masks_bnn("masks")
    result = fit_distributed(bnn, *data("dropout"), batch_size=10, num_particles=2, **ENGINE)
    record["masks"] = {"state": _state(bnn), "history": _history(result)}
    pyro.clear_param_store()
    bnn = masks_bnn("masks-1")
    result = fit_distributed(bnn, *data("dropout"), batch_size=10, **ENGINE)
    record["masks-1"] = {"state": _state(bnn), "history": _history(result)}
    # interrupted after one epoch (rank 0 writes the checkpoint), resumed by a new model
    path = os.path.join(os.environ["PYRO_BDL_TEST_OUT"], "checkpoint.pt")
    pyro.clear_param_store()
    first = build("mean-field", "resume-a")
    args = {**ENGINE, "batch_size": 10, "num_particles": 2}
    fit_distributed(first, *data("mean-field"), **{**args, "epochs": 1}, checkpoint_every=1,
                    checkpoint_path=path)  # fmt: skip
    pyro.clear_param_store()
    second = build("mean-field", "resume-b")
    result = fit_distributed(second, *data("mean-field"), **args, resume_from=path)
    record["resume"] = {"state": _state(second), "history": _history(result)}
    return record


def _worker(rank: int, world: int, port: int, scenario: str, out: str, timeout: float) -> None:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    os.environ["PYRO_BDL_TEST_OUT"] = out
    tdist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout),
    )
    start = time.perf_counter()
    record: dict[str, Any] = {"error": None}
    try:
        record.update(_scenario(rank, scenario))
    except Exception as exc:  # reported to the test, which checks it
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["seconds"] = time.perf_counter() - start
    torch.save(record, os.path.join(out, f"rank{rank}.pt"))
    tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    scenario: str, out: Path, *, timeout: float = 30.0, limit: float = 150.0
) -> tuple[list[dict[str, Any] | None], float]:
    """Run ``scenario`` on WORLD spawned gloo ranks; kill stragglers once rank 0 is done.

    :return: each rank's record (``None`` if it never finished) and the wall time until the
        last rank ended on its own or rank 0 ended (then the rest are killed, as torchrun does).
    """
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [
        ctx.Process(target=_worker, args=(r, WORLD, port, scenario, str(out), timeout))
        for r in range(WORLD)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    procs[0].join(limit)
    for p in procs[1:]:
        p.join(max(1.0, limit - (time.perf_counter() - start)) if procs[0].is_alive() else 5.0)
    elapsed = time.perf_counter() - start
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    records = []
    for r in range(WORLD):
        path = out / f"rank{r}.pt"
        records.append(torch.load(path, weights_only=True) if path.exists() else None)
    return records, elapsed


# =============================================================================== two ranks
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("two_ranks")
    records, _ = launch("all", out)
    for r, rec in enumerate(records):
        assert rec is not None, f"rank {r} did not finish"
        assert rec["error"] is None, f"rank {r}: {rec['error']}"
    return records


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_take_the_steps_of_single_process_fit(two_ranks, case):
    pyro.clear_param_store()
    bnn = build(case, f"reference-{case}")
    x, y = data(case)
    reference = bnn.fit(x, y, **CASES[case]["fit"], **FIT)
    want = bnn.state_dict()
    for rank, rec in enumerate(two_ranks):
        got = rec[case]["state"]
        assert set(got) == set(want)
        for name, value in want.items():
            assert torch.allclose(got[name], value, rtol=0, atol=1e-10), (rank, name)
        for key, values in _history(reference).items():
            assert len(rec[case]["history"][key]) == len(values)
            assert np_close(rec[case]["history"][key], values), (rank, key)
    # the ranks end bitwise identical and report the same (global) history
    for name, value in two_ranks[0][case]["state"].items():
        assert torch.equal(two_ranks[1][case]["state"][name], value), name
    assert two_ranks[0][case]["history"] == two_ranks[1][case]["history"]


def _single_process(case: str) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    pyro.clear_param_store()
    if case == "loader":
        bnn = build("mean-field", "reference-loader")
        result = bnn.fit(loader("mean-field"), **ENGINE)
    elif case.startswith("masks"):
        bnn = masks_bnn(f"reference-{case}")
        particles = 2 if case == "masks" else 1
        result = bnn.fit(*data("dropout"), batch_size=10, num_particles=particles, **ENGINE)
    else:  # resume: the uninterrupted run
        bnn = build("mean-field", "reference-resume")
        result = bnn.fit(*data("mean-field"), batch_size=10, num_particles=2, **ENGINE)
    return _state(bnn), _history(result)


@pytest.mark.parametrize("case", ["loader", "masks", "masks-1", "resume"])
def test_two_ranks_fit_loaders_masks_and_resumed_runs_as_one_process(two_ranks, case):
    """Each rank reads its rows of the DataLoader's batches; per-example dropout masks are those
    of the whole minibatch; a run checkpointed by rank 0 and resumed continues exactly: every
    parameter and the ELBO history equal one process's uninterrupted run to 1e-10."""
    want, history = _single_process(case)
    for rank, rec in enumerate(two_ranks):
        got = rec[case]
        assert set(got["state"]) == set(want)
        for name, value in want.items():
            assert torch.allclose(got["state"][name], value, rtol=0, atol=1e-10), (rank, name)
        for key, values in history.items():
            assert len(got["history"][key]) == len(values), (rank, key)
            assert np_close(got["history"][key], values), (rank, key)
    for name, value in two_ranks[0][case]["state"].items():
        assert torch.equal(two_ranks[1][case]["state"][name], value), name


def np_close(a: list[float], b: list[float], tol: float = 1e-10) -> bool:
    return all(math.isclose(u, v, rel_tol=tol, abs_tol=tol) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_predict_exactly_the_single_process_draws(two_ranks, case):
    for rec in two_ranks:
        got = rec[case]
        assert got["samples"].shape[0] == NUM_SAMPLES
        assert torch.equal(got["samples"], got["single_samples"])
        if got["single_scale"] is None:
            assert got["scale"] is None
        else:
            assert torch.equal(got["scale"], got["single_scale"])
    assert torch.equal(two_ranks[0][case]["samples"], two_ranks[1][case]["samples"])


def test_a_rank_that_raises_stops_every_rank_naming_it(two_ranks):
    # rank 1 raises inside step 2; both ranks end on their own (checked by the fixture)
    for rank, rec in enumerate(two_ranks):
        error = rec["raise"]["error"]
        assert error.startswith("DistributedFitError: Rank 1 failed during step 2 (epoch 0)")
        assert error.endswith(
            f"(rank 1: RuntimeError: injected failure). Every rank stops here (this is rank "
            f"{rank}); the failing rank's traceback shows where it happened."
        )
        assert rec["raise"]["seconds"] < 60


def test_ranks_that_disagree_are_told_which_and_how(two_ranks):
    for rec in two_ranks:
        assert rec["mismatch"] == (
            "Expected the same arguments and model on every rank, but batch_size is 5 on rank 0, "
            "6 on rank 1. Give every rank the same model, data and arguments."
        )


@pytest.mark.slow
def test_a_rank_that_hangs_makes_the_others_time_out(tmp_path):
    records, elapsed = launch("hang", tmp_path, timeout=3.0)
    assert elapsed < 60
    assert records[1] is None  # still hanging: killed by the launcher, as torchrun would
    error = records[0]["hang"]["error"]
    assert error.startswith(
        "DistributedFitError: Rank 0: the collective of step 2 did not complete"
    )
    assert "init_process_group(timeout=...)" in error
    assert records[0]["hang"]["seconds"] < 30


@pytest.mark.slow
def test_example_runs_under_torchrun(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node=2", "--master_port", str(_free_port())]
    cmd += [str(EXAMPLE), "--quick"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world_size=2" in done.stdout
    assert "matches single-process fit: True" in done.stdout


# =============================================================================== one rank
def test_needs_an_initialised_process_group():
    if tdist.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(RuntimeError, match="Expected an initialised torch.distributed"):
        fit_distributed(build("mean-field", "x"), *data("mean-field"))


@pytest.mark.parametrize("case", ["mean-field", "autonormal"])
def test_one_rank_is_bitwise_single_process_fit(one_rank, case, tmp_path):
    x, y = data(case)
    a, b = build(case, "a"), build(case, "b")
    ra = a.fit(x, y, **CASES[case]["fit"], **FIT)
    rb = fit_distributed(b, x, y, **CASES[case]["fit"], **FIT)
    assert _history(ra) == _history(rb)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    pa = a.predict(x, 5, seed=2, chunk_size=2)
    assert torch.equal(predict_distributed(b, x, 5, seed=2, chunk_size=2).samples, pa.samples)
    assert b.fit_result is rb
    b.save(tmp_path / "posterior.pt")  # a distributed fit saves and loads like any other
    loaded = BNN.load(tmp_path / "posterior.pt", net=build(case, "c").net, name="c")
    assert torch.equal(loaded.predict(x, 5, seed=2, chunk_size=2).samples, pa.samples)


def test_per_example_randomness_is_refused(one_rank):
    x, y = data("dropout")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3))
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical(), guide=BernoulliDropout(0.2))
    fit_distributed(bnn, x, y, epochs=1, progress=False)  # the masks of the whole minibatch
    with pytest.raises(NotImplementedError, match="per-example"):
        predict_distributed(bnn, x, 3)
    mf = BNN(net, dist.Normal(0.0, 1.0), Categorical(), guide=MeanFieldNormal(estimator="flipout"))
    with pytest.raises(NotImplementedError, match=r"per-example randomness \(LinearOutputNoise\)"):
        fit_distributed(mf, x, y)
    net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.1), nn.Linear(8, 3))
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical())
    with pytest.raises(NotImplementedError, match=r"module '1' \(Dropout\).*net.eval\(\)"):
        fit_distributed(bnn, x, y)
    net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical())
    with pytest.raises(NotImplementedError, match="BatchNorm1d"):
        fit_distributed(bnn, x, y)


def test_arguments_are_checked_like_fit(one_rank):
    bnn = build("mean-field", "m")
    x, y = data("mean-field")
    with pytest.raises(ValueError, match="Expected epochs to be a positive int, but got 0"):
        fit_distributed(bnn, x, y, epochs=0)
    stream = torch.utils.data.DataLoader(_Stream(x, y), batch_size=4)
    with pytest.raises(TypeError, match="got an IterableDataset"):
        fit_distributed(bnn, stream, None, progress=False)
    with pytest.raises(TypeError, match="Expected optim to be a pyro.optim optimiser"):
        fit_distributed(bnn, x, y, optim=torch.optim.Adam)
    with pytest.raises(ValueError, match="Expected num_samples to be a positive int"):
        predict_distributed(bnn, x, 0)


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y, strict=True))

    def __len__(self) -> int:
        return len(self.x)


def test_example_quick_run_in_this_process(one_rank, capsys):
    spec = importlib.util.spec_from_file_location("distributed_svi", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(["--quick"])
    assert out["world_size"] == 1 and out["steps"] == 8 and out["matches"]
    assert out["max_parameter_difference"] == 0.0  # one rank: bitwise BNN.fit
    assert math.isfinite(out["elbo_per_datum"]) and out["test_rmse"] < 1.0
    assert "matches single-process fit: True" in capsys.readouterr().out


def test_callback_stops_every_rank(one_rank):
    bnn = build("mean-field", "cb")
    seen = []
    result = fit_distributed(
        bnn,
        *data("mean-field"),
        epochs=5,
        lr=0.01,
        progress=False,
        callback=lambda e, r: seen.append(e) or e == 1,
    )
    assert seen == [0, 1] and len(result.elbo) == 2
    assert result.num_steps == 2 and result.dataset_size == 37
