"""One SVI step and one fit loop over it, with callbacks.

:func:`step` is one optimisation step (ELBO estimate, divergence guard, backward, update);
:func:`fit` is a thin loop over minibatches and epochs that reports to callbacks and returns the
:class:`FitState` it advanced, which is also how a fit resumes (pass the state back in).
``BNN.fit`` builds the objective, the optimiser and the data source and calls :func:`fit`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .elbo import Objective
from .optim import Optimizer
from .strategies import HINT, LOCAL, Batch, DivergenceError, Strategy

if TYPE_CHECKING:
    from .callbacks import Callback

__all__ = [
    "HINT",
    "Batch",
    "DivergenceError",
    "FitResult",
    "FitState",
    "LoaderBatches",
    "TensorBatches",
    "fit",
    "step",
]


@dataclass
class FitResult:
    """What a fit measured. All ELBO values are **per datum** (nats / N).

    :ivar elbo: per-epoch mean of the step estimates of ELBO / N.
    :ivar loglik: per-epoch expected log-likelihood / N.
    :ivar kl: per-epoch KL(q || p) / N.
    :ivar step_elbo: the same per optimisation step (and ``step_loglik``, ``step_kl``).
    :ivar dataset_size: N.
    :ivar seconds: wall time of the fit.

    Example::

        >>> r = FitResult(dataset_size=10)
        >>> r.add_step(-5.0, 1.0); r.end_epoch(1); r
        FitResult(epochs=1, steps=1, elbo/N=-0.6000)
    """

    dataset_size: int
    elbo: list[float] = field(default_factory=list)
    loglik: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    step_elbo: list[float] = field(default_factory=list)
    step_loglik: list[float] = field(default_factory=list)
    step_kl: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def num_steps(self) -> int:
        """Number of optimisation steps taken."""
        return len(self.step_elbo)

    def add_step(self, loglik: float, kl: float) -> None:
        """Record one step's two terms (nats for the whole data set)."""
        size = self.dataset_size
        self.step_elbo.append((loglik - kl) / size)
        self.step_loglik.append(loglik / size)
        self.step_kl.append(kl / size)

    def end_epoch(self, num_steps: int) -> None:
        """Close an epoch of ``num_steps`` steps: its means go to ``elbo``, ``loglik``, ``kl``."""
        k = num_steps
        self.loglik.append(sum(self.step_loglik[-k:]) / k)
        self.kl.append(sum(self.step_kl[-k:]) / k)
        self.elbo.append(self.loglik[-1] - self.kl[-1])

    def __repr__(self) -> str:
        last = f", elbo/N={self.elbo[-1]:.4f}" if self.elbo else ""
        return f"FitResult(epochs={len(self.elbo)}, steps={self.num_steps}{last})"


@dataclass
class FitState:
    """Where a fit stands; a fit continues exactly from it (``BNN.fit(resume_from=...)``).

    :ivar epoch: epochs completed.
    :ivar history: the :class:`FitResult` so far.
    :ivar generator: the generator of the minibatch order.
    :ivar optimizer: the optimiser (its ``pyro.optim`` state is the fit's optimiser state).
    :ivar objective: the ELBO estimator the fit used (e.g. a ``TraceFreeELBO``).
    :ivar stop: set by a callback to end the fit after the current epoch.

    Example::

        >>> state = FitState(0, FitResult(dataset_size=100), torch.Generator().manual_seed(0))
        >>> state.step
        0
    """

    epoch: int
    history: FitResult
    generator: torch.Generator
    optimizer: Optimizer | None = None
    objective: Objective | None = None
    stop: bool = False

    @property
    def step(self) -> int:
        """Optimisation steps taken."""
        return self.history.num_steps


class TensorBatches:
    """Minibatches of tensors, reshuffled every epoch by the fit's generator.

    :param x: inputs ``(N, ...)``.
    :param y: targets ``(N, ...)``.
    :param batch_size: minibatch size (``None``: all N).
    :param shuffle: draw a new order each epoch (when ``batch_size < N``).

    Example::

        >>> data = TensorBatches(torch.zeros(5, 1), torch.zeros(5), batch_size=2, shuffle=False)
        >>> [len(xb) for xb, _ in data.epoch(torch.Generator())]
        [2, 2, 1]
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None, shuffle: bool = True
    ) -> None:
        self.x, self.y = x, y
        self.size = len(x)
        self.batch_size = self.size if batch_size is None else min(batch_size, self.size)
        self.shuffle = shuffle

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The minibatches of one epoch."""
        n, bs = self.size, self.batch_size
        order = torch.randperm(n, generator=generator) if self.shuffle and bs < n else None
        for i in range(0, n, bs):
            idx = order[i : i + bs] if order is not None else slice(i, i + bs)
            yield self.x[idx], self.y[idx]

    def index_batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """The row indices of one epoch's minibatches, in :meth:`epoch`'s order."""
        n, bs = self.size, self.batch_size
        order = torch.randperm(n, generator=generator) if self.shuffle and bs < n else None
        for i in range(0, n, bs):
            yield order[i : i + bs] if order is not None else torch.arange(i, min(i + bs, n))


class LoaderBatches:
    """Minibatches from a ``DataLoader`` yielding ``(x, y)`` pairs, each checked as it comes.

    :param loader: the DataLoader over a map-style dataset (it owns the order; the fit's
        generator is not used).
    :param check: ``check(x, y) -> (x, y)`` applied to every batch.
    :raises TypeError: for an ``IterableDataset`` or a dataset without a length.
    """

    def __init__(
        self,
        loader: torch.utils.data.DataLoader,
        check: Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        self.loader = loader
        self.check = check
        if isinstance(loader.dataset, torch.utils.data.IterableDataset):
            raise TypeError(
                "Expected a DataLoader over a map-style dataset (indexable, with a length: N "
                "scales the ELBO, and data-parallel ranks read their rows of each batch), but "
                f"got an IterableDataset ({type(loader.dataset).__name__}). Use a map-style "
                "dataset, or tensors."
            )
        try:
            self.size = len(loader.dataset)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                "Expected a DataLoader over a dataset with a length (N, the data set size the "
                f"ELBO is scaled to), but got {type(loader.dataset).__name__} without __len__ "
                "(an IterableDataset?): give the dataset a __len__."
            ) from None

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The minibatches of one epoch."""
        for batch in self.loader:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError(
                    "Expected the DataLoader to yield (x, y) pairs, but got "
                    f"{type(batch).__name__} of length {len(batch)}."
                )
            yield self.check(*batch)


def step(
    state: FitState,
    batch: Batch,
    objective: Objective,
    optimizer: Optimizer,
    *,
    dataset_size: int,
    num_particles: int = 1,
    strategy: Strategy = LOCAL,
) -> tuple[float, float]:
    """One SVI step on a minibatch: estimate, guard, backward, update.

    :param state: the fit's state (its step count names the step in errors).
    :param batch: the rows to evaluate (see :class:`~pyro_bdl.inference.strategies.Batch`).
    :param objective: the ELBO estimator.
    :param optimizer: the optimiser.
    :param dataset_size: N (the data plate scales the minibatch by N / B).
    :param num_particles: particles of the estimate.
    :param strategy: one process (default) or data-parallel.
    :return: ``(loglik, kl)`` of the estimate, floats, nats for the whole data set.
    :raises DivergenceError: if a term or the gradient is not finite, or a guide parameter
        left its support; the parameters keep their last good values.

    Example::

        >>> loglik, kl = step(state, Batch(xb, yb, len(xb)), objective, optimizer,
        ...                   dataset_size=N)  # doctest: +SKIP
    """
    return strategy.step(
        state, batch, objective, optimizer, dataset_size=dataset_size, num_particles=num_particles
    )


def fit(
    objective: Objective,
    optimizer: Optimizer,
    data: TensorBatches | LoaderBatches,
    *,
    epochs: int,
    state: FitState,
    num_particles: int = 1,
    callbacks: Sequence[Callback] = (),
    strategy: Strategy = LOCAL,
) -> FitState:
    """Run :func:`step` over ``data`` from ``state.epoch`` to ``epochs``; return the state.

    After every step each callback's ``on_step(state, loglik, kl)`` runs; after every epoch its
    ``on_epoch(state)``; a callback returning ``True`` (or setting ``state.stop``) ends the fit
    after that epoch, once every callback has run.

    :param objective: the ELBO estimator.
    :param optimizer: the optimiser.
    :param data: the minibatch source.
    :param epochs: the epoch to stop at (a resumed state continues from ``state.epoch``).
    :param state: the starting state (a fresh one, or one a fit left); its history's
        ``dataset_size`` is N, the size the data plate scales to.
    :param num_particles: particles per step.
    :param callbacks: see :mod:`pyro_bdl.inference.callbacks`.
    :param strategy: one process (default) or data-parallel: which rows each process
        evaluates, how a step is reduced, and that every process stops together.
    :return: ``state``, advanced.

    Example::

        >>> state = fit(objective, optimizer, TensorBatches(x, y, 128), epochs=10,
        ...             state=state)  # doctest: +SKIP
    """
    state.optimizer, state.objective = optimizer, objective
    for cb in callbacks:
        cb.on_fit_start(state, epochs)
    start = time.perf_counter()
    try:
        for epoch in range(state.epoch, epochs):
            k = 0
            for batch in strategy.batches(data, state.generator):
                loglik, kl = strategy.step(
                    state,
                    batch,
                    objective,
                    optimizer,
                    dataset_size=state.history.dataset_size,
                    num_particles=num_particles,
                )
                state.history.add_step(loglik, kl)
                k += 1
                for cb in callbacks:
                    cb.on_step(state, loglik, kl)
            state.history.end_epoch(k)
            state.epoch = epoch + 1
            if strategy.end_epoch(state, callbacks) or state.stop:
                break
    finally:
        for cb in callbacks:
            cb.on_fit_end(state)
    state.history.seconds = time.perf_counter() - start
    strategy.teardown(objective)
    return state
