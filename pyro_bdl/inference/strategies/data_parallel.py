"""Data-parallel SVI over ``torch.distributed``: the fit loop's :class:`DataParallel` strategy.

Every rank holds the whole model, its guide and its optimiser; the ranks split the *work*, never
the algorithm:

* **Minibatches.** The fit's generator (or the DataLoader's sampler), identical on every rank,
  orders the data exactly as one process does; each global minibatch of ``B`` rows is cut into
  ``world_size`` contiguous shards and rank ``r`` reads and evaluates shard ``r`` only (from a
  DataLoader: its sampler's indices are drawn as the loader draws them, and the rank reads its
  rows from the dataset).
* **Scaling.** The data plate keeps the global size N, which scales a shard of ``B_r`` rows by
  ``N / B_r``; the shard's term is multiplied by ``B_r / B``, so the sum over ranks is the
  single-process estimate. The KL is added by rank 0 only.
* **Randomness.** Every rank seeds torch with the same seed, so global draws (weights, a noise
  precision) are the same on every rank. Per-example dropout masks of the dropout guides' step
  are drawn for the whole global minibatch and each rank keeps its rows, so they are the masks
  of one process too. Other per-example randomness (``nn.Dropout`` layers in training mode,
  local reparameterization, traced per-example masks) is refused.
* **Gradients.** After ``backward`` the gradients of every parameter, the two ELBO terms and a
  failure flag per rank travel in **one** ``all_reduce`` per step; every rank takes the same
  optimiser step.

A rank that raises inside a step still joins that step's ``all_reduce`` with its failure flag
set, so every rank raises :class:`DistributedFitError` naming it, at the same step; a rank that
dies or hangs makes the others fail when the process group's timeout expires.

Example (under ``torchrun --nproc_per_node=2``)::

    >>> dist.init_process_group("gloo")  # doctest: +SKIP
    >>> bnn.fit(x, y, epochs=10, batch_size=256, seed=0, strategy=DataParallel())
    ... # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from pyro import poutine
from pyro.infer.util import zero_grads
from pyro.poutine.messenger import Messenger
from torch import nn

from ...uncertainty import Prediction
from ..elbo import TracedELBO, TraceFreeELBO, elbo_terms, leaf_tensor
from ..optim import Optimizer
from ..posterior import Posterior
from ..predict import predict
from . import HINT, Batch, DivergenceError, Local, check_terms, checksum, estimate

if TYPE_CHECKING:
    from ...model import BayesianModel
    from ..callbacks import Callback
    from ..elbo import Objective
    from ..loop import FitState, LoaderBatches, TensorBatches

__all__ = ["DataParallel", "DistributedFitError"]

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

#: What the ranks compare before fitting, in this order (rank 0's values are the reference).
ARGUMENT_NAMES = (
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
)


class DistributedFitError(RuntimeError):
    """A rank failed, the ranks disagree, or a collective did not complete.

    Raised on every rank at the same point, with the failing rank(s) and their error named; on
    the failing rank it is chained to the original exception.
    """


class ProcessGroup:
    """The current process group, its rank and size, and failure-aware collectives.

    :param group: a ``torch.distributed`` group (default: the global one).
    :raises RuntimeError: if no process group is initialised.
    """

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
        self, where: str, error: BaseException | None, values: Sequence[float] = ()
    ) -> torch.Tensor:
        """All-gather ``[failed, *values]`` from every rank; raise on every rank if one failed.

        :return: the gathered table, shape ``(world, len(values))``, float64.
        """
        row = torch.tensor([float(error is not None), *values], dtype=torch.float64)
        row = row.to(self.device)
        rows = [torch.empty_like(row) for _ in range(self.world)]
        self.run(where, lambda: dist.all_gather(rows, row, group=self.group))
        table = torch.stack(rows).cpu()
        failed = [r for r in range(self.world) if table[r, 0] > 0]
        if failed:
            self.raise_failure(failed, error, where)
        return table[:, 1:]

    def guard(self, where: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` on every rank; if it raises on any rank, raise on every rank."""
        error: BaseException | None = None
        result = None
        try:
            result = fn()
        except Exception as exc:
            error = exc
        self.status(where, error)
        return result

    def raise_failure(self, failed: list[int], error: BaseException | None, where: str) -> None:
        """Tell every rank which ranks failed and why (all ranks call this together)."""
        message = None if error is None else describe(error)
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

    def check_same(
        self, table: torch.Tensor, names: Sequence[str], what: str, rtol: float = 0.0
    ) -> None:
        """Every row of ``table`` (one per rank) must equal rank 0's."""
        for j, name in enumerate(names):
            col = table[:, j]
            ref = col[0]
            tol = rtol * float(col.abs().max())
            bad = [r for r in range(len(col)) if not abs(float(col[r] - ref)) <= tol]
            if bad:
                values = ", ".join(f"{_show(float(v))} on rank {r}" for r, v in enumerate(col))
                raise DistributedFitError(
                    f"Expected the same {what} on every rank, but {name} is {values}. Give every "
                    "rank the same model, data and arguments."
                )

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Give every rank rank 0's values of ``tensors`` (one flat broadcast)."""
        if not tensors:
            return
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1).to(self.device) for t in tensors])
            self.run("parameter broadcast", lambda: dist.broadcast(flat, 0, group=self.group))
            for t, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
                t.copy_(part.view_as(t))

    def verify_in_sync(self, tensors: list[torch.Tensor]) -> None:
        """Check that the ranks hold bitwise-identical ``tensors`` (max == min everywhere)."""
        if not tensors:
            return
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1).to(self.device) for t in tensors])
            both = torch.cat([flat, -flat])
            self.run(
                "final parameter check",
                lambda: dist.all_reduce(both, op=dist.ReduceOp.MAX, group=self.group),
            )
            high, low = both.chunk(2)
            if not torch.equal(high, -low):
                worst = float((high + low).abs().max())
                raise DistributedFitError(
                    f"The ranks ended with different parameters (largest difference "
                    f"{worst:.3g}). Something random differs between ranks: give every rank the "
                    "same model."
                )


def describe(error: BaseException) -> str:
    """``Type: first line of the message`` (Pyro appends a whole trace table to errors)."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _show(v: float) -> str:
    return str(int(v)) if math.isfinite(v) and v == int(v) and abs(v) < 2**53 else f"{v:.17g}"


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


class _Indices(torch.utils.data.Dataset):
    """A dataset of its own indices: a DataLoader over it draws what the user's loader draws."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class DataParallel(Local):
    """Data-parallel fitting over an initialised ``torch.distributed`` process group.

    With the same model, data and arguments on every rank, ``BNN.fit(..., strategy=
    DataParallel())`` takes the steps one process takes — same minibatches, same draws, same
    gradients up to floating-point summation order — and leaves the same parameters on every
    rank; a DataLoader, checkpoints/resume and the dropout guides' per-example masks included.

    :param group: the process group (default: the global one).
    :raises RuntimeError: if no process group is initialised.

    Example::

        >>> result = bnn.fit(loader, epochs=5, strategy=DataParallel())  # doctest: +SKIP
    """

    def __init__(self, group: Any = None) -> None:
        self.comm = ProcessGroup(group)
        self._known: set[torch.Tensor] = set()

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (it writes checkpoints and shows progress)."""
        return self.comm.rank == 0

    # ------------------------------------------------------------------ before the first step
    def agree_seed(self, seed: int | None) -> int:
        """The seed of the fit: ``seed``, or one drawn by rank 0 (every rank draws one)."""
        candidate = int(torch.randint(0, 2**52, (), device="cpu").item()) if seed is None else seed
        table = self.comm.status("the choice of the seed", None, [float(candidate)])
        return int(table[0, 0])

    def agree(self, arguments: Sequence[float], data: Sequence[float]) -> None:
        """Every rank must have the same arguments (see :data:`ARGUMENT_NAMES`) and data."""
        table = self.comm.status("the checks before fitting", None, [*arguments, *data])
        k = len(arguments)
        self.comm.check_same(table[:, :k], ARGUMENT_NAMES[:k], "arguments and model")
        names = ["a checksum of x", "a checksum of y"][: len(data)]
        self.comm.check_same(table[:, k:], names, "data", rtol=1e-9)

    def guard(self, where: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` on every rank; if it raises on one, every rank raises, naming it."""
        return self.comm.guard(where, fn)

    def setup(self, objective: Objective, example: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Refuse split-dependent randomness, create every parameter, broadcast rank 0's.

        :param objective: the fit's objective (its parameters are completed here for a traced
            objective whose guide is built lazily, as its first step would build it).
        :param example: an example batch ``(x, y)``.
        """
        error: BaseException | None = None
        try:
            self._check_supported(objective)
            if isinstance(objective, TracedELBO):
                objective.params = _traced_parameters(objective, *example)
        except Exception as exc:
            error = exc
        params = objective.params
        counts = [float(len(params)), float(sum(p.numel() for p in params))]
        table = self.comm.status("the creation of the parameters", error, counts)
        names = ["the number of parameters", "the number of parameter entries"]
        self.comm.check_same(table, names, "guide")
        self._known = set(params)
        self.comm.broadcast(list(params))

    def _check_supported(self, objective: Objective) -> None:
        """Refuse models whose random draws depend on how a minibatch is split across ranks."""
        model = objective.model
        if isinstance(objective, TraceFreeELBO):
            if getattr(objective.sampler, "layer_fns", None):
                raise NotImplementedError(
                    "Distributed SVI needs every random draw of a step to be global, but the "
                    "guide draws per-example randomness (LinearOutputNoise) for local "
                    "reparameterization or flipout, which would depend on how a minibatch is "
                    "split across ranks. Use MeanFieldNormal() (estimator='sample')."
                )
            if objective.sampler.input_fns and not hasattr(objective.sampler, "rows"):
                raise NotImplementedError(
                    "Distributed SVI draws per-example noise for the whole minibatch, but the "
                    f"guide's sampler {type(objective.sampler).__name__} cannot do so."
                )
        elif isinstance(objective, TracedELBO):
            context = objective.handler()
            if not isinstance(context, contextlib.nullcontext):
                raise NotImplementedError(
                    f"Distributed SVI needs every random draw of a traced step to be global, but "
                    f"the guide draws per-example randomness ({type(context).__name__}), which "
                    "would depend on how a minibatch is split across ranks. Use "
                    "BernoulliDropout(p) with a Gaussian prior (its trace-free step draws the "
                    "masks of the whole minibatch), BernoulliDropout(p, "
                    "estimator='per_particle') or MeanFieldNormal() (estimator='sample')."
                )
        for name, module in model.net.named_modules():
            if not module.training:
                continue
            if isinstance(module, _STOCHASTIC_MODULES) and module.p > 0:
                raise NotImplementedError(
                    f"Distributed SVI needs every random draw to be global, but module {name!r} "
                    f"({type(module).__name__}) draws per-example masks in training mode. Fit "
                    "with mode='eval' (or call net.eval() on it and fit with mode='keep'), or "
                    "express dropout as a guide: BernoulliDropout(p)."
                )
            if isinstance(module, _BATCH_STATISTIC_MODULES):
                raise NotImplementedError(
                    f"Module {name!r} ({type(module).__name__}) normalises with statistics of its "
                    "batch in training mode, and each rank sees only a shard of the minibatch. "
                    "Fit with fixed statistics: mode='eval', or call "
                    f"net.{name or 'module'}.eval() and fit with mode='keep'; or use "
                    "nn.LayerNorm/GroupNorm."
                )

    # ------------------------------------------------------------------ the loop's hooks
    def batches(
        self, data: TensorBatches | LoaderBatches, generator: torch.Generator
    ) -> Iterator[Batch]:
        """This rank's shard of every global minibatch of one epoch."""
        from ..loop import TensorBatches

        if isinstance(data, TensorBatches):
            for idx in data.index_batches(generator):
                shard, rows, weight = self._shard(idx)
                yield Batch(data.x[shard], data.y[shard], len(idx), rows, weight)
            return
        loader = data.loader
        dataset = loader.dataset
        if isinstance(dataset, torch.utils.data.IterableDataset):
            raise TypeError(
                "Expected a DataLoader over a map-style dataset (indexable, with a length) for "
                "data-parallel fitting, but got an IterableDataset: each rank must read only its "
                "rows of every global minibatch. Use a map-style dataset, or tensors."
            )
        indices = torch.utils.data.DataLoader(
            _Indices(len(dataset)),  # type: ignore[arg-type]
            batch_sampler=loader.batch_sampler,
            generator=loader.generator,
        )
        for idx in indices:  # drawn as the user's loader draws them (the same RNG calls)
            shard, rows, weight = self._shard(torch.as_tensor(idx))
            x, y = loader.collate_fn([dataset[int(i)] for i in shard])
            x, y = data.check(x, y)
            yield Batch(x, y, len(idx), rows, weight)

    def _shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, slice, float]:
        """This rank's contiguous block of a global batch's indices, its rows and weight."""
        sizes = [len(part) for part in idx.tensor_split(self.comm.world)]
        start = sum(sizes[: self.comm.rank])
        size = sizes[self.comm.rank]
        if not size:  # fewer rows than ranks: draw as everyone does, contribute nothing
            return idx[:1], slice(0, 1), 0.0
        return idx[start : start + size], slice(start, start + size), size / len(idx)

    def step(
        self,
        state: FitState,
        batch: Batch,
        objective: Objective,
        optimizer: Optimizer,
        *,
        dataset_size: int,
        num_particles: int = 1,
    ) -> tuple[float, float]:
        """One SVI step on this rank's shard, one all-reduce, one identical optimiser update."""
        comm, number = self.comm, state.step
        tensors = objective.params
        error: BaseException | None = None
        loglik = kl = torch.zeros((), dtype=tensors[0].dtype, device=comm.device)
        try:
            loglik, kl = self._local_loss(
                batch, objective, dataset_size, num_particles, comm.rank == 0, number
            )
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
        comm.run(f"step {number}", lambda: dist.all_reduce(buffer, group=comm.group))
        numel = sum(t.numel() for t in tensors)
        flags = buffer[numel:].cpu()
        failed = [r for r in range(comm.world) if flags[len(tensors) + 2 + r] > 0]
        if failed:
            comm.raise_failure(failed, error, f"step {number} (epoch {state.epoch})")
        total_loglik, total_kl = float(flags[len(tensors)]), float(flags[len(tensors) + 1])
        try:
            check_terms(total_loglik, total_kl, number)
        except DivergenceError:
            zero_grads(tensors)
            raise
        reduced = buffer[:numel].split([t.numel() for t in tensors])
        for t, g, has in zip(tensors, reduced, flags[: len(tensors)], strict=True):
            if has > 0:
                t.grad = g.view_as(t).to(t.dtype)
        if not torch.isfinite(buffer[:numel]).all():
            zero_grads(tensors)
            raise DivergenceError(
                f"The ELBO's gradient has NaN/inf entries (step {number}). Parameters keep their "
                f"last good values. {HINT}"
            )
        optimizer.step(tensors)
        return total_loglik, total_kl

    def _local_loss(
        self,
        batch: Batch,
        objective: Objective,
        dataset_size: int,
        num_particles: int,
        with_kl: bool,
        number: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the loss, backpropagated; returns its (loglik, kl) shares."""
        terms, params = estimate(objective, batch, dataset_size, num_particles, number)
        touched = set(params)
        if not touched <= self._known:
            raise RuntimeError(
                f"{len(touched - self._known)} parameter(s) were created during step {number}; "
                "distributed SVI creates every parameter before the first step. Create them in "
                "the model's first call."
            )
        loglik = terms.loglik * batch.weight
        kl = terms.kl if with_kl else torch.zeros_like(terms.kl)
        (kl - loglik).backward()
        return loglik.detach(), kl.detach()

    def end_epoch(self, state: FitState, callbacks: Sequence[Callback]) -> bool:
        """Run the callbacks on every rank; stop everywhere if one asks to (or raises)."""
        stop, error = False, None
        try:
            stop = super().end_epoch(state, callbacks)
        except Exception as exc:
            error = exc
        table = self.comm.status(f"the callback of epoch {state.epoch - 1}", error, [float(stop)])
        return bool(table.sum() > 0)

    def teardown(self, objective: Objective) -> None:
        """Check that every rank ends with the same parameters."""
        self.comm.verify_in_sync(list(objective.params))

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        model: BayesianModel,
        posterior: Posterior,
        x: torch.Tensor,
        num: int,
        *,
        chunk: int,
        seed: int | None = None,
        fingerprint: Callable[[], float] = lambda: 0.0,
    ) -> Prediction:
        """The posterior predictive of one process, with the forward passes split by chunks.

        Every rank draws the same stream of chunks (the draws are cheap) but runs the model
        only on its own contiguous block of chunks; the blocks are all-gathered in order, so
        every rank returns the draws one process draws with the same seed and ``chunk``.

        :param fingerprint: computes a checksum of the posterior; the ranks must agree on it.
        :raises DistributedFitError: when a rank failed or the ranks disagree.
        :raises NotImplementedError: for per-example noise drawn in the forward (MC dropout's
            masks: which rank runs which chunk would change the draws).
        """
        comm = self.comm
        sampler = getattr(posterior, "sampler", None)
        if sampler is not None and sampler.input_fns:
            raise NotImplementedError(
                "Distributed prediction needs every random draw to be global (one per draw), but "
                "the posterior draws per-example randomness (dropout masks) in the forward passes "
                "the ranks split. Use predict on each rank, or BernoulliDropout(p, "
                "estimator='per_particle')."
            )
        candidate = int(torch.randint(0, 2**52, (), device="cpu").item()) if seed is None else seed
        values = [num, chunk, len(x), checksum(x), fingerprint(), float(candidate)]
        table = comm.status("the checks before predicting", None, values)
        names = ["num_samples", "chunk_size", "the number of inputs"]
        comm.check_same(table[:, :3], names, "arguments")
        names = ["a checksum of x", "a checksum of the posterior parameters"]
        comm.check_same(table[:, 3:5], names, "inputs", 1e-9)
        starts = list(range(0, num, chunk))
        blocks = torch.arange(len(starts)).tensor_split(comm.world)
        mine = set(blocks[comm.rank].tolist())
        counts = [sum(min(chunk, num - starts[j]) for j in b.tolist()) for b in blocks]
        local: Prediction | None = None
        error: BaseException | None = None
        try:
            with torch.random.fork_rng(devices=_rng_devices(x)):
                torch.manual_seed(int(table[0, 5]))
                local = predict(model, posterior, x, num, chunk=chunk, keep=mine.__contains__)
            if local is not None and local.kind == "generic":
                raise NotImplementedError(
                    "Expected a prediction of a closed-form family (categorical, bernoulli, "
                    "gaussian) to gather across ranks, but got a generic one; predict on each "
                    "rank instead."
                )
        except Exception as exc:
            error = exc
        meta = None
        if local is not None:
            shape = tuple(local.samples.shape[1:])
            meta = (local.kind, shape, local.scale is not None, str(local.samples.dtype))
        report: list[Any] = [None] * comm.world
        message = None if error is None else describe(error)
        comm.run(
            "prediction status",
            lambda: dist.all_gather_object(report, (message, meta), group=comm.group),
        )
        failed = [r for r, (m, _) in enumerate(report) if m is not None]
        if failed:
            comm.raise_failure(failed, error, "prediction")
        kind, tail, has_scale, dtype_name = report[0][1]  # rank 0 always runs the first chunk
        dtype = getattr(torch, dtype_name.removeprefix("torch."))
        samples = self._gather(None if local is None else local.samples, counts, tail, dtype)
        scale = None
        if has_scale:
            scale = self._gather(None if local is None else local.scale, counts, tail, dtype)
        return Prediction(kind, samples=samples, scale=scale)

    def _gather(
        self,
        local: torch.Tensor | None,
        counts: list[int],
        tail: tuple[int, ...],
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """All-gather blocks of draws of unequal length (padded to the longest), in rank order."""
        comm = self.comm
        padded = torch.zeros((max(counts), *tail), dtype=dtype, device=comm.device)
        if local is not None:
            padded[: len(local)] = local
        out = [torch.empty_like(padded) for _ in range(comm.world)]
        comm.run("prediction gather", lambda: dist.all_gather(out, padded, group=comm.group))
        device = comm.device if local is None else local.device
        return torch.cat([o[:c] for o, c in zip(out, counts, strict=True)]).to(device)

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.comm.rank}, world_size={self.comm.world})"


def _traced_parameters(
    objective: TracedELBO, x: torch.Tensor, y: torch.Tensor
) -> list[torch.Tensor]:
    """Every parameter of a traced objective, created now, sorted by param-store name.

    A lazily built guide is built exactly as one process's first traced step builds it
    (initialisation draws included) but without that step's own draws, so the random stream
    matches a single-process fit.
    """
    guide = objective.guide
    like = next(iter(objective.model.net.parameters()))
    if getattr(guide, "prototype_trace", True) is None:
        with torch.no_grad(), objective.handler(), _NoDraws(like):
            guide(x, y)
    with torch.random.fork_rng(devices=_rng_devices(like)), torch.no_grad():
        with objective.handler(), poutine.trace(param_only=True) as capture:
            elbo_terms(objective.model, guide, x, y, dataset_size=len(x))
    nodes = capture.trace.nodes
    return [leaf_tensor(nodes[name]["value"]) for name in sorted(nodes)]


def _rng_devices(like: torch.Tensor) -> list[int]:
    return [like.device.index or 0] if like.device.type == "cuda" else []
