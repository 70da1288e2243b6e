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

from typing import Any

import torch

from .bnn import BNN, FitResult
from .inference.strategies.data_parallel import (
    DataParallel,
    DistributedFitError,
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
    if not isinstance(bnn, BNN):
        raise TypeError(f"Expected a pyro_bdl.BNN, but got {type(bnn).__name__}.")
    strategy = DataParallel(group)
    return bnn.predict(x, num_samples, seed=seed, chunk_size=chunk_size, strategy=strategy)
