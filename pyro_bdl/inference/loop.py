"""One SVI step and one fit loop over it, with callbacks.

:func:`step` is one optimisation step (ELBO estimate, divergence guard, backward, update);
:func:`fit` is a thin loop over minibatches and epochs that reports to callbacks and returns the
:class:`FitState` it advanced, which is also how a fit resumes (pass the state back in).
``BNN.fit`` builds the objective, the optimiser and the data source and calls :func:`fit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .elbo import Objective
from .optim import Optimizer, gradients_finite

if TYPE_CHECKING:
    from .callbacks import Callback

__all__ = [
    "DivergenceError",
    "FitResult",
    "FitState",
    "LoaderBatches",
    "TensorBatches",
    "fit",
    "step",
]

HINT = "Lower the learning rate, use a smaller init_scale for the guide, or standardise the data."


class DivergenceError(FloatingPointError):
    """The ELBO became NaN or infinite during a fit; the parameters keep their last good values."""


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


class LoaderBatches:
    """Minibatches from a ``DataLoader`` yielding ``(x, y)`` pairs, each checked as it comes.

    :param loader: the DataLoader (it owns the order; the fit's generator is not used).
    :param check: ``check(x, y) -> (x, y)`` applied to every batch.
    """

    def __init__(
        self,
        loader: torch.utils.data.DataLoader,
        check: Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        self.loader = loader
        self.check = check
        self.size = len(loader.dataset)  # type: ignore[arg-type]

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
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Objective,
    optimizer: Optimizer,
    *,
    dataset_size: int,
    num_particles: int = 1,
) -> tuple[float, float]:
    """One SVI step on a minibatch: estimate, guard, backward, update.

    :param state: the fit's state (its step count names the step in errors).
    :param x: minibatch inputs ``(B, ...)``.
    :param y: minibatch targets ``(B, ...)``.
    :param objective: the ELBO estimator.
    :param optimizer: the optimiser.
    :param dataset_size: N (the data plate scales the minibatch by N / B).
    :param num_particles: particles of the estimate.
    :return: ``(loglik, kl)`` of the estimate, floats, nats for the whole data set.
    :raises DivergenceError: if a term or the gradient is not finite, or a guide parameter
        left its support; the parameters keep their last good values.

    Example::

        >>> loglik, kl = step(state, xb, yb, objective, optimizer, dataset_size=N)
        ... # doctest: +SKIP
    """
    number = state.step
    try:
        terms, params = objective(x, y, dataset_size, num_particles)
    except ValueError as e:
        if "Expected parameter" not in str(e):
            raise
        raise DivergenceError(
            f"The guide's parameters left their support (step {number}): "
            f"{str(e).splitlines()[0]} {HINT}"
        ) from e
    loglik, kl = terms.loglik.item(), terms.kl.item()
    for term, value in (("expected log-likelihood", loglik), ("KL", kl)):
        if not math.isfinite(value):
            raise DivergenceError(
                f"The ELBO diverged: its {term} term is {value} (step {number}). "
                f"Parameters keep their last good values. {HINT}"
            )
    terms.loss.backward()
    if not gradients_finite(params):
        bad = [p for p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
        for p in params:
            p.grad = None
        what = f"NaN/inf entries for {len(bad)} parameter tensor(s)" if bad else "an inf norm"
        raise DivergenceError(
            f"The ELBO's gradient has {what} (step {number}). Parameters keep their last good "
            f"values. {HINT}"
        )
    optimizer.step(params)
    return loglik, kl


def fit(
    objective: Objective,
    optimizer: Optimizer,
    data: TensorBatches | LoaderBatches,
    *,
    epochs: int,
    state: FitState,
    dataset_size: int,
    num_particles: int = 1,
    callbacks: Sequence[Callback] = (),
) -> FitState:
    """Run :func:`step` over ``data`` from ``state.epoch`` to ``epochs``; return the state.

    After every step each callback's ``on_step(state, loglik, kl)`` runs; after every epoch its
    ``on_epoch(state)``; a callback returning ``True`` (or setting ``state.stop``) ends the fit
    after that epoch, once every callback has run.

    :param objective: the ELBO estimator.
    :param optimizer: the optimiser.
    :param data: the minibatch source.
    :param epochs: the epoch to stop at (a resumed state continues from ``state.epoch``).
    :param state: the starting state (a fresh one, or one a fit left).
    :param dataset_size: N.
    :param num_particles: particles per step.
    :param callbacks: see :mod:`pyro_bdl.inference.callbacks`.
    :return: ``state``, advanced.

    Example::

        >>> state = fit(objective, optimizer, TensorBatches(x, y, 128), epochs=10,
        ...             state=state, dataset_size=len(x))  # doctest: +SKIP
    """
    state.optimizer, state.objective = optimizer, objective
    for cb in callbacks:
        cb.on_fit_start(state, epochs)
    start = time.perf_counter()
    try:
        for epoch in range(state.epoch, epochs):
            k = 0
            for xb, yb in data.epoch(state.generator):
                loglik, kl = step(
                    state,
                    xb,
                    yb,
                    objective,
                    optimizer,
                    dataset_size=dataset_size,
                    num_particles=num_particles,
                )
                state.history.add_step(loglik, kl)
                k += 1
                for cb in callbacks:
                    cb.on_step(state, loglik, kl)
            state.history.end_epoch(k)
            state.epoch = epoch + 1
            for cb in callbacks:
                if cb.on_epoch(state):
                    state.stop = True
            if state.stop:
                break
    finally:
        for cb in callbacks:
            cb.on_fit_end(state)
    state.history.seconds = time.perf_counter() - start
    return state
