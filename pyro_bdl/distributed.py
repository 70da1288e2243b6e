"""Data-parallel SVI and prediction of a :class:`~pyro_bdl.BNN` over ``torch.distributed``.

:func:`fit_distributed` is ``bnn.fit(..., strategy=DataParallel(group))``: the one fit loop
with the data-parallel strategy (:mod:`pyro_bdl.inference.strategies.data_parallel`, which
explains how the ranks split the work and stay equal to one process). DataLoaders,
checkpoints/resume and the dropout guides' per-example masks work as in one process.
:func:`predict_distributed` splits the forward passes of :meth:`BNN.predict` across ranks and
gathers the draws on every rank.

Example (run with ``torchrun --nproc_per_node=2 script.py``)::

    >>> dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")  # doctest: +SKIP
    >>> result = fit_distributed(bnn, x, y, epochs=10, batch_size=256, lr=1e-2,  # doctest: +SKIP
    ...                          seed=0)
    >>> pred = predict_distributed(bnn, x_test, num_samples=100, seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.distributed as dist

from ._checks import positive_int
from .bnn import BNN, FitResult
from .inference.predict import default_chunk, predict
from .inference.strategies import checksum
from .inference.strategies.data_parallel import (
    DataParallel,
    DistributedFitError,
    ProcessGroup,
    describe,
)
from .uncertainty import Prediction

__all__ = ["DataParallel", "DistributedFitError", "fit_distributed", "predict_distributed"]


def fit_distributed(
    bnn: BNN,
    x: torch.Tensor | torch.utils.data.DataLoader,
    y: torch.Tensor | None = None,
    *,
    group: Any = None,
    **kwargs: Any,
) -> FitResult:
    """:meth:`BNN.fit <pyro_bdl.BNN.fit>` with each global minibatch split across the ranks.

    Call it on every rank of an initialised process group with the same model, data and
    arguments. It takes the steps :meth:`BNN.fit` would take with the same arguments in one
    process — same minibatches, same draws, same gradients up to floating-point summation
    order — and leaves the same parameters on every rank. Rank 0's initial parameter values are
    broadcast first (as ``DistributedDataParallel`` does).

    :param bnn: the model (same architecture, prior, likelihood and guide on every rank).
    :param x: all inputs ``(N, ...)`` (every rank reads only its shards; a memory-mapped tensor
        works), or a DataLoader over a map-style dataset yielding ``(x, y)`` (every rank reads
        only its rows of each batch the loader's sampler draws).
    :param y: all targets ``(N, ...)`` (``None`` with a DataLoader).
    :param group: the process group (default: the global one).
    :param kwargs: the keywords of :meth:`BNN.fit` (``epochs``, ``batch_size`` — **global** —,
        ``lr``, ``optim``, ``num_particles``, ``seed`` — ``None``: rank 0 draws one —,
        ``checkpoint_every``/``checkpoint_path`` — rank 0 writes —, ``resume_from``,
        ``callback`` — run on every rank; training stops when it returns ``True`` on any —, ...).
    :return: a :class:`~pyro_bdl.FitResult` with the global per-datum ELBO and its terms,
        identical on every rank.
    :raises DistributedFitError: on every rank, when a rank failed (it is named), the ranks
        disagree on the data or arguments, or a collective timed out.
    :raises DivergenceError: on every rank, if the global ELBO or its gradient is not finite.
    :raises NotImplementedError: for per-example randomness a rank cannot draw for the whole
        minibatch (dropout or batch-norm layers in training mode, local reparameterization).

    Example::

        >>> dist.init_process_group("gloo")  # under torchrun  # doctest: +SKIP
        >>> result = fit_distributed(bnn, x, y, epochs=20, batch_size=512, lr=1e-2, seed=0,
        ...                          progress=False)  # doctest: +SKIP
        >>> result.elbo[-1]  # the same number on every rank  # doctest: +SKIP
    """
    strategy = DataParallel(group)
    if not isinstance(bnn, BNN):
        raise TypeError(f"Expected a pyro_bdl.BNN, but got {type(bnn).__name__}.")
    return bnn.fit(x, y, strategy=strategy, **kwargs)


def _check_prediction_supported(bnn: BNN) -> None:
    """Refuse prediction whose random draws depend on which rank runs which chunk."""
    if not isinstance(bnn, BNN):
        raise TypeError(f"Expected a pyro_bdl.BNN, but got {type(bnn).__name__}.")
    context = bnn.estimator(training=False)
    if not isinstance(context, contextlib.nullcontext):
        raise NotImplementedError(
            f"Distributed prediction needs every random draw to be global (one per draw), but "
            f"the guide {type(bnn.guide).__name__} draws per-example randomness "
            f"({type(context).__name__}) in the forward passes the ranks split. Use "
            "bnn.predict on each rank, or BernoulliDropout(p, estimator='per_particle')."
        )


def _rng_devices(bnn: BNN) -> list[int]:
    device = next(bnn.net.parameters()).device
    return [device.index or 0] if device.type == "cuda" else []


def _random_seed() -> int:
    """A seed from the global RNG (every rank draws one, rank 0's is used: streams stay aligned)."""
    return int(torch.randint(0, 2**52, ()).item())


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
    comm = ProcessGroup(group)
    error: BaseException | None = None
    values = [math.nan] * 5
    try:
        _check_prediction_supported(bnn)
        x, _ = bnn.check_data(x)
        num_samples = positive_int("num_samples", num_samples)
        if chunk_size is not None:
            chunk_size = positive_int("chunk_size", chunk_size)
        bnn.ensure_guide(x)
        model = bnn.bayesian_model
        dtype = next(bnn.net.parameters()).dtype
        chunk = chunk_size or default_chunk(model, len(x), dtype, model.latent_shapes(x))
        posterior = [p for _, p in sorted(bnn.named_parameters())]
        values = [
            num_samples,
            chunk,
            len(x),
            checksum(x),
            sum(checksum(p) for p in posterior),
        ]
    except Exception as exc:
        error = exc
    candidate = _random_seed() if seed is None else seed
    table = comm.status("the checks before predicting", error, [*values, float(candidate)])
    names = ["num_samples", "chunk_size", "the number of inputs"]
    comm.check_same(table[:, :3], names, "arguments")
    names = ["a checksum of x", "a checksum of the posterior parameters"]
    comm.check_same(table[:, 3:5], names, "inputs", 1e-9)
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
    samples = _gather_draws(comm, None if local is None else local.samples, counts, tail, dtype)
    scale = None
    if has_scale:
        scale = _gather_draws(comm, None if local is None else local.scale, counts, tail, dtype)
    bnn.input_shape = tuple(x.shape[1:])  # as BNN.predict: what BNN.save records
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
    comm: ProcessGroup,
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
