"""Data-parallel SVI and prediction of a :class:`~pyro_bdl.BNN` over ``torch.distributed``.

Every rank holds the whole model, its guide and its optimiser, and the whole data set (tensors,
possibly memory-mapped); the ranks split the *work*, never the algorithm:

* **Minibatches.** One seeded generator, identical on every rank, orders the data exactly as
  :meth:`BNN.fit <pyro_bdl.BNN.fit>` does; each global minibatch of ``B`` points is cut into
  ``world_size`` contiguous shards and rank ``r`` evaluates shard ``r``.
* **Scaling.** The data plate keeps the global size N, which scales a shard of ``B_r`` points by
  ``N / B_r``; the shard's term is then multiplied by ``B_r / B``, so each rank contributes
  ``N / B`` times its log-likelihood and the sum over ranks is the single-process minibatch
  estimate — the likelihood is scaled exactly once. The KL (and its gradient) is added by rank 0
  only, so it is counted once.
* **Randomness.** Every rank seeds torch with the same seed, so the guide's global draws (the
  weights, a noise precision) are the same on every rank. Per-example randomness (per-example
  dropout masks, ``nn.Dropout`` layers in training mode) would depend on how a minibatch is
  split, so such models are refused with an error.
* **Gradients.** After ``backward`` the gradients of every trainable parameter (guide parameters,
  deterministic network parameters, likelihood parameters), the two ELBO terms and a failure
  flag per rank travel in **one** ``all_reduce`` (sum) per step. Every rank then holds the
  gradient of the global-minibatch ELBO and takes the same optimiser step.

.. math::

    \\widehat{\\mathcal L} = \\sum_{r} \\frac{N}{B} \\sum_{n \\in \\text{shard}_r}
    \\log p(y_n \\mid x_n, W) \\; - \\; \\mathrm{KL}(q \\,\\|\\, p)

A rank that raises inside a step still joins that step's ``all_reduce`` with its failure flag
set, so every rank raises :class:`DistributedFitError` naming it, at the same step, instead of
waiting; a rank that dies or hangs outside these functions makes the others fail when the
process group's timeout (``init_process_group(timeout=...)``) expires, or at once when its
connection closes.

Example (run with ``torchrun --nproc_per_node=2 script.py``)::

    >>> dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")  # doctest: +SKIP
    >>> result = fit_distributed(bnn, x, y, epochs=10, batch_size=256, lr=1e-2,  # doctest: +SKIP
    ...                          seed=0)
    >>> pred = predict_distributed(bnn, x_test, num_samples=100, seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pyro
import pyro.optim
import torch
import torch.distributed as dist
from pyro import poutine
from pyro.infer.util import zero_grads
from pyro.poutine.messenger import Messenger
from torch import nn
from tqdm.auto import tqdm

from .bnn import BNN, DivergenceError, FitResult, _positive_int
from .inference.elbo import Objective, TraceFreeELBO, elbo_terms, make_objective
from .inference.loop import HINT
from .inference.optim import Optimizer, make_optim
from .inference.predict import default_chunk, predict
from .uncertainty import Prediction

__all__ = ["DistributedFitError", "fit_distributed", "predict_distributed"]

#: Modules that draw per-example randomness in training mode.
_STOCHASTIC_MODULES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
#: Modules whose training-mode output depends on the other examples of the batch.
_BATCH_STATISTIC_MODULES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
    nn.SyncBatchNorm,
)


class DistributedFitError(RuntimeError):
    """A rank failed, the ranks disagree, or a collective did not complete.

    Raised on every rank at the same point, with the failing rank(s) and their error named; on
    the failing rank it is chained to the original exception.
    """


# ====================================================================== the process group
class _Group:
    """The current process group, its rank and size, and failure-aware collectives."""

    def __init__(self, group: Any = None) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "Expected an initialised torch.distributed process group, but there is none. "
                "Launch with torchrun and call dist.init_process_group('nccl' if "
                "torch.cuda.is_available() else 'gloo') first (see docs/distributed.md)."
            )
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.backend = str(dist.get_backend(group))
        if self.backend == "nccl":
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device("cpu")

    def run(self, what: str, collective: Callable[[], Any]) -> Any:
        """Run one collective; a peer that died or timed out becomes a clear error."""
        try:
            return collective()
        except Exception as exc:  # gloo/nccl raise RuntimeError or DistBackendError subclasses
            raise DistributedFitError(
                f"Rank {self.rank}: the collective of {what} did not complete ({exc}). Another "
                "rank has probably crashed, been killed, or hangs; its own log names the cause. "
                "The wait is bounded by init_process_group(timeout=...). Exit this process "
                "(torchrun then stops the other workers)."
            ) from exc

    def status(
        self, where: str, error: BaseException | None, values: list[float] | None = None
    ) -> torch.Tensor:
        """All-gather ``[failed, *values]`` from every rank; raise on every rank if one failed.

        :return: the gathered table, shape ``(world, len(values))``, float64.
        """
        values = list(values or [])
        row = torch.tensor([float(error is not None), *values], dtype=torch.float64)
        row = row.to(self.device)
        rows = [torch.empty_like(row) for _ in range(self.world)]
        self.run(where, lambda: dist.all_gather(rows, row, group=self.group))
        table = torch.stack(rows).cpu()
        failed = [r for r in range(self.world) if table[r, 0] > 0]
        if failed:
            self.raise_failure(failed, error, where)
        return table[:, 1:]

    def raise_failure(self, failed: list[int], error: BaseException | None, where: str) -> None:
        """Tell every rank which ranks failed and why (all ranks call this together)."""
        message = None if error is None else _describe(error)
        messages: list[Any] = [None] * self.world
        self.run(
            f"error report of {where}",
            lambda: dist.all_gather_object(messages, message, group=self.group),
        )
        if error is not None and len(failed) == self.world and len(set(messages)) == 1:
            raise error  # the same error everywhere (a bad argument): raise it as it is
        names = ", ".join(str(r) for r in failed)
        detail = "; ".join(f"rank {r}: {messages[r]}" for r in failed)
        raise DistributedFitError(
            f"Rank{'s' if len(failed) > 1 else ''} {names} failed during {where} ({detail}). "
            f"Every rank stops here (this is rank {self.rank}); the failing rank's traceback "
            "shows where it happened."
        ) from error


def _describe(error: BaseException) -> str:
    """``Type: first line of the message`` (Pyro appends a whole trace table to errors)."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _check_same(table: torch.Tensor, names: list[str], what: str, rtol: float = 0.0) -> None:
    """Every row of ``table`` (one per rank) must equal rank 0's."""
    for j, name in enumerate(names):
        col = table[:, j]
        ref = col[0]
        tol = rtol * float(col.abs().max())
        bad = [r for r in range(len(col)) if not abs(float(col[r] - ref)) <= tol]
        if bad:
            values = ", ".join(f"{_show(float(v))} on rank {r}" for r, v in enumerate(col))
            raise DistributedFitError(
                f"Expected the same {what} on every rank, but {name} is {values}. Give every rank "
                "the same model, data and arguments."
            )


def _show(v: float) -> str:
    return str(int(v)) if math.isfinite(v) and v == int(v) and abs(v) < 2**53 else f"{v:.17g}"


def _checksum(t: torch.Tensor, rows: int = 1024) -> float:
    """Sum of |entries| of up to ``rows`` evenly spaced rows (cheap on a memory-mapped tensor)."""
    t = t.detach()
    if t.dim() and len(t) > rows:
        t = t[torch.linspace(0, len(t) - 1, rows).long().to(t.device)]
    return float(t.to(torch.float64).abs().sum())


# ====================================================================== checks
def _check_supported(bnn: BNN) -> None:
    """Refuse models whose random draws depend on how a minibatch is split across ranks."""
    if not isinstance(bnn, BNN):
        raise TypeError(f"Expected a pyro_bdl.BNN, but got {type(bnn).__name__}.")
    context = bnn.estimator()
    if not isinstance(context, contextlib.nullcontext):
        raise NotImplementedError(
            f"Distributed SVI needs every random draw to be global (one per particle), but the "
            f"guide {type(bnn.guide).__name__} draws per-example randomness "
            f"({type(context).__name__}), which would depend on how a minibatch is split across "
            "ranks. Use BernoulliDropout(p, estimator='per_particle') (or ConcreteDropout(..., "
            "estimator='per_particle')) or MeanFieldNormal() (estimator='sample')."
        )
    for name, module in bnn.net.named_modules():
        if not module.training:
            continue
        if isinstance(module, _STOCHASTIC_MODULES) and module.p > 0:
            raise NotImplementedError(
                f"Distributed SVI needs every random draw to be global, but module {name!r} "
                f"({type(module).__name__}) draws per-example masks in training mode. Call "
                "net.eval(), or express dropout as a guide: "
                "BernoulliDropout(p, estimator='per_particle')."
            )
        if isinstance(module, _BATCH_STATISTIC_MODULES):
            raise NotImplementedError(
                f"Module {name!r} ({type(module).__name__}) normalises with statistics of its "
                "batch in training mode, and each rank sees only a shard of the minibatch. Call "
                f"net.{name or 'module'}.eval() (fixed statistics) or use nn.LayerNorm/GroupNorm."
            )


def _rng_devices(bnn: BNN) -> list[int]:
    device = next(bnn.net.parameters()).device
    return [device.index or 0] if device.type == "cuda" else []


def _random_seed() -> int:
    """A seed from the global RNG (every rank draws one, rank 0's is used: streams stay aligned)."""
    return int(torch.randint(0, 2**52, ()).item())


# ====================================================================== fitting
class _NoDraws(Messenger):
    """Give every sample site a placeholder value, so that running a guide draws nothing."""

    def __init__(self, like: torch.Tensor) -> None:
        super().__init__()
        self.like = like

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["value"] is None:
            fn = msg["fn"]
            shape = fn.batch_shape + fn.event_shape
            msg["value"] = torch.zeros(shape, dtype=self.like.dtype, device=self.like.device)


def _trainable(
    bnn: BNN,
    x: torch.Tensor,
    y: torch.Tensor,
    size: int,
    num_particles: int,
    vectorize_particles: bool,
) -> tuple[Objective, dict[str, torch.Tensor]]:
    """The objective :meth:`BNN.fit` would use, and every trainable parameter by name.

    The guide is built exactly as :meth:`BNN.fit` builds it (under a forked RNG when the
    trace-free step applies, else consuming the RNG as the first traced step would), so the random
    stream matches a single-process fit.
    """
    objective = make_objective(
        bnn.bayesian_model,
        bnn.guide,
        x,
        y,
        size,
        handler=bnn.estimator,
        num_particles=num_particles,
        vectorize_particles=vectorize_particles,
    )
    if getattr(bnn.guide, "prototype_trace", True) is None:
        # BNN.fit would build this guide lazily in its first traced step: build it the same way
        # (initialisation draws included), but leave the step's own draws to the step
        with torch.no_grad(), bnn.estimator(), _NoDraws(next(bnn.net.parameters())):
            bnn.guide(x, y)
    with torch.random.fork_rng(devices=_rng_devices(bnn)), torch.no_grad():
        with bnn.estimator(), poutine.trace(param_only=True) as capture:
            elbo_terms(bnn.model, bnn.guide, x, y, dataset_size=size)
    params = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
    return objective, dict(sorted(params.items()))


def _global_batches(
    n: int, bs: int, shuffle: bool, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """The minibatch indices of one epoch, in the order :meth:`BNN.fit` uses."""
    order = torch.randperm(n, generator=generator) if shuffle and bs < n else None
    for i in range(0, n, bs):
        yield order[i : i + bs] if order is not None else torch.arange(i, min(i + bs, n))


@dataclass
class _Run:
    """What every step of one :func:`fit_distributed` call needs."""

    objective: Objective
    x: torch.Tensor
    y: torch.Tensor
    size: int
    optimizer: Optimizer  # BNN.fit's update (fused when BNN.fit fuses it)
    num_particles: int
    tensors: list[torch.Tensor]  # every trainable parameter, sorted by name
    known: set[torch.Tensor]


def _local_loss(
    run: _Run, x: torch.Tensor, y: torch.Tensor, weight: float, with_kl: bool, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of the loss, backpropagated; returns its (loglik, kl) contributions.

    The estimate is :meth:`BNN.fit`'s (trace-free when possible, traced otherwise).
    """
    try:
        terms, params = run.objective(x, y, run.size, run.num_particles)
        touched = set(params)
    except ValueError as exc:  # as BNN.fit: a guide parameter that left its support
        if "Expected parameter" not in str(exc):
            raise
        raise DivergenceError(
            f"The guide's parameters left their support (step {step}): "
            f"{str(exc).splitlines()[0]} {HINT}"
        ) from exc
    if not touched <= run.known:
        raise RuntimeError(
            f"{len(touched - run.known)} parameter(s) were created during step {step}; distributed "
            "SVI creates every parameter before the first step. Create them in the model's first "
            "call."
        )
    loglik = terms.loglik * weight
    kl = terms.kl if with_kl else torch.zeros_like(terms.kl)
    (kl - loglik).backward()
    return loglik.detach(), kl.detach()


def fit_distributed(
    bnn: BNN,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 1,
    batch_size: int | None = None,
    lr: float = 1e-3,
    optim: pyro.optim.PyroOptim | None = None,
    num_particles: int = 1,
    vectorize_particles: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    progress: bool = True,
    callback: Callable[[int, FitResult], bool | None] | None = None,
    group: Any = None,
) -> FitResult:
    """:meth:`BNN.fit <pyro_bdl.BNN.fit>` with each global minibatch split across the ranks.

    Call it on every rank of an initialised process group with the same model, data and
    arguments. It takes the steps :meth:`BNN.fit` would take with the same arguments in one
    process — same minibatches, same draws, same gradients up to floating-point summation
    order — and leaves the same parameters on every rank. Rank 0's initial parameter values are
    broadcast first (as ``DistributedDataParallel`` does).

    :param bnn: the model (same architecture, prior, likelihood and guide on every rank).
    :param x: all inputs ``(N, ...)`` (every rank indexes its shards; a memory-mapped tensor
        works). A DataLoader is not accepted: it would not reproduce the global minibatches.
    :param y: all targets ``(N, ...)``.
    :param epochs: passes over the data.
    :param batch_size: **global** minibatch size B (default: all N); each rank evaluates about
        ``B / world_size`` points per step.
    :param lr: learning rate of the default ``pyro.optim.Adam``.
    :param optim: any ``pyro.optim`` optimiser (overrides ``lr``).
    :param num_particles: draws per step; the same draws on every rank.
    :param vectorize_particles: draw the particles in one batched pass.
    :param shuffle: reshuffle every epoch (the same order on every rank).
    :param seed: seeds torch on every rank and the minibatch order; ``None`` uses a seed drawn
        by rank 0.
    :param progress: a progress bar on rank 0.
    :param callback: ``callback(epoch, result)`` on every rank after each epoch; training stops
        when it returns ``True`` on any rank.
    :param group: the process group (default: the global one).
    :return: a :class:`~pyro_bdl.FitResult` with the global per-datum ELBO and its terms,
        identical on every rank.
    :raises DistributedFitError: on every rank, when a rank failed (it is named), the ranks
        disagree on the data or arguments, or a collective timed out.
    :raises DivergenceError: on every rank, if the global ELBO or its gradient is not finite.
    :raises NotImplementedError: for per-example randomness (per-example dropout masks, dropout
        or batch-norm layers in training mode).

    Example::

        >>> dist.init_process_group("gloo")  # under torchrun  # doctest: +SKIP
        >>> result = fit_distributed(bnn, x, y, epochs=20, batch_size=512, lr=1e-2, seed=0,
        ...                          progress=False)  # doctest: +SKIP
        >>> result.elbo[-1]  # the same number on every rank  # doctest: +SKIP
    """
    comm = _Group(group)
    error: BaseException | None = None
    optimiser: pyro.optim.PyroOptim | None = None
    values: list[float] = [math.nan] * 13
    try:
        if isinstance(x, torch.utils.data.DataLoader):
            raise TypeError(
                "Expected tensors x, y on every rank, but got a DataLoader: distributed SVI "
                "cuts each global minibatch into shards itself (pass the dataset's tensors)."
            )
        epochs = _positive_int("epochs", epochs)
        num_particles = _positive_int("num_particles", num_particles)
        optimiser = make_optim(lr, optim)
        _check_supported(bnn)
        x, checked = bnn.check_data(x, y)
        y = cast(torch.Tensor, checked)  # given targets, check_data returns them
        n = len(x)
        bs = n if batch_size is None else min(_positive_int("batch_size", batch_size), n)
        size = bnn.likelihood.dataset_size or n
        net = list(bnn.net.parameters())
        values = [
            n,
            bs,
            size,
            epochs,
            num_particles,
            float(vectorize_particles),
            float(shuffle),
            -1.0 if seed is None else float(seed),
            float(callback is not None),
            len(net),
            sum(p.numel() for p in net),
            _checksum(x),
            _checksum(y),
        ]
    except Exception as exc:
        error = exc
    candidate = _random_seed() if seed is None else seed
    table = comm.status("the checks before fitting", error, [*values, float(candidate)])
    names = [
        "the number of data points N",
        "batch_size",
        "dataset_size",
        "epochs",
        "num_particles",
        "vectorize_particles",
        "shuffle",
        "seed",
        "whether a callback is given",
        "the number of network parameters",
        "the number of network weights",
    ]
    _check_same(table[:, :11], names, "arguments and model")
    _check_same(table[:, 11:13], ["a checksum of x", "a checksum of y"], "data", rtol=1e-9)
    seed = int(table[0, 13])

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    result = FitResult(dataset_size=size)
    params: dict[str, torch.Tensor] = {}
    objective: Objective | None = None
    try:
        objective, params = _trainable(bnn, x[:2], y[:2], size, num_particles, vectorize_particles)
    except Exception as exc:
        error = exc
    counts = [len(params), sum(p.numel() for p in params.values())]
    table = comm.status("the creation of the parameters", error, [float(c) for c in counts])
    _check_same(table, ["the number of parameters", "the number of parameter entries"], "guide")
    tensors = list(params.values())
    _broadcast_parameters(comm, tensors)
    fused = isinstance(objective, TraceFreeELBO)
    run = _Run(
        cast(Objective, objective),  # set on every rank once the checks passed
        x,
        y,
        size,
        # the same update as BNN.fit
        Optimizer(cast(pyro.optim.PyroOptim, optimiser), tensors if fused else None),
        num_particles,
        tensors,
        set(tensors),
    )

    start = time.perf_counter()
    bar = tqdm(range(epochs), disable=not progress or comm.rank != 0, desc="fit", unit="epoch")
    for epoch in bar:
        k = 0
        for idx in _global_batches(n, bs, shuffle, generator):
            loglik, kl = _step(comm, run, idx, result.num_steps, epoch)
            result.step_elbo.append((loglik - kl) / size)
            result.step_loglik.append(loglik / size)
            result.step_kl.append(kl / size)
            k += 1
        result.loglik.append(sum(result.step_loglik[-k:]) / k)
        result.kl.append(sum(result.step_kl[-k:]) / k)
        result.elbo.append(result.loglik[-1] - result.kl[-1])
        bar.set_postfix(elbo=f"{result.elbo[-1]:.4g}")
        if callback is not None:
            stop, error = False, None
            try:
                stop = bool(callback(epoch, result))
            except Exception as exc:
                error = exc
            table = comm.status(f"the callback of epoch {epoch}", error, [float(stop)])
            if table.sum() > 0:
                break
    result.seconds = time.perf_counter() - start
    _verify_in_sync(comm, tensors)
    bnn.fit_result = result
    bnn._input_shape = tuple(x.shape[1:])  # as BNN.fit: what BNN.save records
    return result


def _broadcast_parameters(comm: _Group, tensors: list[torch.Tensor]) -> None:
    """Give every rank rank 0's parameter values (one flat broadcast)."""
    if not tensors:
        return
    with torch.no_grad():
        flat = torch.cat([t.detach().reshape(-1).to(comm.device) for t in tensors])
        comm.run("parameter broadcast", lambda: dist.broadcast(flat, 0, group=comm.group))
        for t, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
            t.copy_(part.view_as(t))


def _verify_in_sync(comm: _Group, tensors: list[torch.Tensor]) -> None:
    """Check that the ranks end with bitwise-identical parameters (max == min everywhere)."""
    if not tensors:
        return
    with torch.no_grad():
        flat = torch.cat([t.detach().reshape(-1).to(comm.device) for t in tensors])
        both = torch.cat([flat, -flat])
        comm.run(
            "final parameter check",
            lambda: dist.all_reduce(both, op=dist.ReduceOp.MAX, group=comm.group),
        )
        high, low = both.chunk(2)
        if not torch.equal(high, -low):
            worst = float((high + low).abs().max())
            raise DistributedFitError(
                f"The ranks ended with different parameters (largest difference {worst:.3g}). "
                "Something random differs between ranks: give every rank the same model."
            )


def _step(comm: _Group, run: _Run, idx: torch.Tensor, step: int, epoch: int) -> tuple[float, float]:
    """One SVI step on this rank's shard, one all-reduce, one identical optimiser update."""
    tensors = run.tensors
    error: BaseException | None = None
    loglik = kl = torch.zeros((), dtype=tensors[0].dtype, device=comm.device)
    try:
        shard = idx.tensor_split(comm.world)[comm.rank]
        weight = len(shard) / len(idx)
        if not len(shard):  # fewer points than ranks: draw as everyone does, contribute nothing
            shard = idx[:1]
        loglik, kl = _local_loss(run, run.x[shard], run.y[shard], weight, comm.rank == 0, step)
    except Exception as exc:
        error = exc
        zero_grads(tensors)
    dtype = tensors[0].dtype
    grads = [
        torch.zeros(t.numel(), dtype=dtype, device=comm.device)
        if t.grad is None
        else t.grad.detach().reshape(-1).to(device=comm.device, dtype=dtype)
        for t in tensors
    ]
    flags = torch.zeros(len(tensors) + 2 + comm.world, dtype=dtype, device=comm.device)
    flags[: len(tensors)] = torch.tensor([float(t.grad is not None) for t in tensors])
    flags[len(tensors)] = loglik.to(flags)
    flags[len(tensors) + 1] = kl.to(flags)
    flags[len(tensors) + 2 + comm.rank] = float(error is not None)
    buffer = torch.cat([*grads, flags])
    comm.run(f"step {step}", lambda: dist.all_reduce(buffer, group=comm.group))
    numel = sum(t.numel() for t in tensors)
    flags = buffer[numel:].cpu()
    where = f"step {step} (epoch {epoch})"
    failed = [r for r in range(comm.world) if flags[len(tensors) + 2 + r] > 0]
    if failed:
        comm.raise_failure(failed, error, where)
    total_loglik, total_kl = float(flags[len(tensors)]), float(flags[len(tensors) + 1])
    for term, value in (("expected log-likelihood", total_loglik), ("KL", total_kl)):
        if not math.isfinite(value):
            zero_grads(tensors)
            raise DivergenceError(
                f"The ELBO diverged: its {term} term is {value} (step {step}). Parameters keep "
                f"their last good values. {HINT}"
            )
    reduced = buffer[:numel].split([t.numel() for t in tensors])
    for t, g, has in zip(tensors, reduced, flags[: len(tensors)], strict=True):
        if has > 0:
            t.grad = g.view_as(t).to(t.dtype)
    if not torch.isfinite(buffer[:numel]).all():
        zero_grads(tensors)
        raise DivergenceError(
            f"The ELBO's gradient has NaN/inf entries (step {step}). Parameters keep their last "
            f"good values. {HINT}"
        )
    run.optimizer.step(tensors)
    return total_loglik, total_kl


# ====================================================================== prediction
@torch.no_grad()
def predict_distributed(
    bnn: BNN,
    x: torch.Tensor,
    num_samples: int = 100,
    *,
    seed: int | None = None,
    chunk_size: int | None = None,
    group: Any = None,
) -> Prediction:
    """:meth:`BNN.predict <pyro_bdl.BNN.predict>` with the forward passes split across ranks.

    Every rank replays the same stream of guide draws, chunk by chunk exactly as
    :meth:`BNN.predict` does, but runs the network only for its own contiguous block of chunks;
    the blocks are then all-gathered. The result, on every rank, equals
    ``bnn.predict(x, num_samples, seed=seed, chunk_size=chunk_size)`` in one process draw for
    draw (the draws are cheap; the forward passes are the work). To keep every rank busy use at
    least ``world_size`` chunks, e.g. ``chunk_size = ceil(num_samples / world_size)`` (the
    draws then equal ``bnn.predict`` with that chunk size).

    :param bnn: the fitted model (the same posterior on every rank, e.g. after
        :func:`fit_distributed`).
    :param x: inputs ``(N, ...)``, the same on every rank.
    :param num_samples: number of posterior draws S.
    :param seed: the seed of the draws; ``None`` uses a seed drawn by rank 0.
    :param chunk_size: draws per batched forward (default: as :meth:`BNN.predict`).
    :param group: the process group (default: the global one).
    :return: a :class:`~pyro_bdl.uncertainty.Prediction` with all S draws, on every rank.
    :raises DistributedFitError: when a rank failed or the ranks disagree (inputs, arguments or
        posterior).

    Example::

        >>> pred = predict_distributed(bnn, x_test, num_samples=200, seed=0)  # doctest: +SKIP
        >>> pred.samples.shape  # (200, N, ...) on every rank  # doctest: +SKIP
    """
    comm = _Group(group)
    error: BaseException | None = None
    values = [math.nan] * 5
    try:
        _check_supported(bnn)
        x, _ = bnn.check_data(x)
        num_samples = _positive_int("num_samples", num_samples)
        if chunk_size is not None:
            chunk_size = _positive_int("chunk_size", chunk_size)
        bnn.ensure_guide(x)
        model = bnn.bayesian_model
        dtype = next(bnn.net.parameters()).dtype
        chunk = chunk_size or default_chunk(model, len(x), dtype, model.latent_shapes(x))
        posterior = [p for _, p in sorted(bnn.named_parameters())]
        values = [
            num_samples,
            chunk,
            len(x),
            _checksum(x),
            sum(_checksum(p) for p in posterior),
        ]
    except Exception as exc:
        error = exc
    candidate = _random_seed() if seed is None else seed
    table = comm.status("the checks before predicting", error, [*values, float(candidate)])
    _check_same(table[:, :3], ["num_samples", "chunk_size", "the number of inputs"], "arguments")
    _check_same(
        table[:, 3:5], ["a checksum of x", "a checksum of the posterior parameters"], "inputs", 1e-9
    )
    seed = int(table[0, 5])

    starts = list(range(0, num_samples, chunk))
    blocks = torch.arange(len(starts)).tensor_split(comm.world)
    mine = set(blocks[comm.rank].tolist())
    counts = [sum(min(chunk, num_samples - starts[j]) for j in b.tolist()) for b in blocks]
    local: Prediction | None = None
    try:
        local = _predict_chunks(bnn, x, num_samples, chunk, seed, mine)
    except Exception as exc:
        error = exc
    meta = None
    if local is not None:
        shape = tuple(local.samples.shape[1:])
        meta = (local.kind, shape, local.scale is not None, str(local.samples.dtype))
    report: list[Any] = [None] * comm.world
    message = None if error is None else _describe(error)
    comm.run(
        "prediction status",
        lambda: dist.all_gather_object(report, (message, meta), group=comm.group),
    )
    failed = [r for r, (m, _) in enumerate(report) if m is not None]
    if failed:
        comm.raise_failure(failed, error, "prediction")
    kind, tail, has_scale, dtype_name = report[0][1]  # rank 0 always runs the first chunk
    dtype = getattr(torch, dtype_name.removeprefix("torch."))
    samples = _gather_draws(comm, None if local is None else local.samples, counts, tail, dtype)
    scale = None
    if has_scale:
        scale = _gather_draws(comm, None if local is None else local.scale, counts, tail, dtype)
    bnn._input_shape = tuple(x.shape[1:])  # as BNN.predict: what BNN.save records
    return Prediction(kind, samples=samples, scale=scale)


def _predict_chunks(
    bnn: BNN, x: torch.Tensor, num_samples: int, chunk: int, seed: int, mine: set[int]
) -> Prediction | None:
    """The draws of :meth:`BNN.predict`, with the forward run only for the chunks in ``mine``."""
    with torch.random.fork_rng(devices=_rng_devices(bnn)):
        torch.manual_seed(seed)
        return predict(
            bnn.bayesian_model,
            bnn.posterior(x),
            x,
            num_samples,
            chunk=chunk,
            keep=mine.__contains__,
        )


def _gather_draws(
    comm: _Group,
    local: torch.Tensor | None,
    counts: list[int],
    tail: tuple[int, ...],
    dtype: torch.dtype,
) -> torch.Tensor:
    """All-gather blocks of draws of unequal length (padded to the longest), in rank order."""
    padded = torch.zeros((max(counts), *tail), dtype=dtype, device=comm.device)
    if local is not None:
        padded[: len(local)] = local
    out = [torch.empty_like(padded) for _ in range(comm.world)]
    comm.run("prediction gather", lambda: dist.all_gather(out, padded, group=comm.group))
    device = comm.device if local is None else local.device
    return torch.cat([o[:c] for o, c in zip(out, counts, strict=True)]).to(device)
