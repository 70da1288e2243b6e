"""Callbacks of the fit loop: progress, checkpoints, early stopping, per-epoch functions.

A callback overrides any of ``on_fit_start(state, epochs)``, ``on_step(state, loglik, kl)``
(after every optimisation step: SWAG-style moment collectors, schedules), ``on_epoch(state)``
(return ``True`` to stop after this epoch) and ``on_fit_end(state)``. Pass them to
``BNN.fit(callbacks=[...])`` or :func:`pyro_bdl.inference.loop.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from .state import FitResult, FitState

__all__ = ["Callback", "Checkpoint", "EarlyStop", "EpochCallback", "Progress", "fit_callbacks"]


class Callback:
    """Base class: every hook does nothing.

    Example::

        >>> class CountSteps(Callback):
        ...     def __init__(self):
        ...         self.steps = 0
        ...     def on_step(self, state, loglik, kl):
        ...         self.steps += 1
    """

    def on_fit_start(self, state: FitState, epochs: int) -> None:
        """Before the first step (``epochs``: the epoch the fit stops at)."""

    def on_step(self, state: FitState, loglik: float, kl: float) -> None:
        """After every optimisation step (``loglik``, ``kl``: the step's terms, nats)."""

    def on_epoch(self, state: FitState) -> bool | None:
        """After every epoch; return ``True`` to stop the fit."""
        return None

    def on_fit_end(self, state: FitState) -> None:
        """After the last step, also when the fit raised."""


class Progress(Callback):
    """A tqdm progress bar over epochs, with the last epoch's ELBO / N.

    Example::

        >>> bnn.fit(x, y, epochs=100, progress=False, callbacks=[Progress()])  # doctest: +SKIP
    """

    def __init__(self, desc: str = "fit") -> None:
        self.desc = desc
        self.bar: Any = None

    def on_fit_start(self, state: FitState, epochs: int) -> None:
        self.bar = tqdm(
            total=epochs - state.epoch, desc=self.desc, unit="epoch", initial=0, leave=True
        )

    def on_epoch(self, state: FitState) -> bool | None:
        self.bar.update(1)
        self.bar.set_postfix(elbo=f"{state.history.elbo[-1]:.4g}")
        return None

    def on_fit_end(self, state: FitState) -> None:
        if self.bar is not None:
            self.bar.close()


class EpochCallback(Callback):
    """Call ``fn(epoch, history)`` after every epoch (``epoch`` counts from 0); ``True`` stops.

    This is ``BNN.fit(callback=fn)``.

    Example::

        >>> stop_when_flat = EpochCallback(lambda epoch, r: epoch > 10 and r.elbo[-1] > -1.0)
    """

    def __init__(self, fn: Callable[[int, FitResult], bool | None]) -> None:
        self.fn = fn

    def on_epoch(self, state: FitState) -> bool | None:
        return bool(self.fn(state.epoch - 1, state.history))


class Checkpoint(Callback):
    """Save the fit every ``every`` epochs with the given ``save(state)``.

    The cadence lives here; the file layout in the ``save`` function (``BNN.fit`` passes one
    that writes the posterior, the optimiser and RNG state and the history).

    :param every: epochs between checkpoints (>= 1).
    :param save: ``save(state)``.

    Example::

        >>> saved = []
        >>> cb = Checkpoint(2, saved.append)
    """

    def __init__(self, every: int, save: Callable[[FitState], Any]) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"Expected every to be a positive int, but got {every!r}.")
        self.every = every
        self.save = save

    def on_epoch(self, state: FitState) -> bool | None:
        if state.epoch % self.every == 0:
            self.save(state)
        return None


class EarlyStop(Callback):
    """Stop when the epoch ELBO has not improved by ``min_delta`` (nats / datum) for
    ``patience`` epochs.

    :param patience: epochs without improvement before stopping (>= 1).
    :param min_delta: the improvement that counts (>= 0).

    Example::

        >>> bnn.fit(x, y, epochs=10_000, callbacks=[EarlyStop(patience=50)])  # doctest: +SKIP
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"Expected patience to be a positive int, but got {patience!r}.")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta)) or min_delta < 0:
            raise ValueError(f"Expected min_delta >= 0, but got {min_delta!r}.")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.best = -math.inf
        self.waited = 0

    def on_fit_start(self, state: FitState, epochs: int) -> None:
        self.best, self.waited = -math.inf, 0

    def on_epoch(self, state: FitState) -> bool | None:
        elbo = state.history.elbo[-1]
        if elbo > self.best + self.min_delta:
            self.best, self.waited = elbo, 0
            return False
        self.waited += 1
        return self.waited >= self.patience


def fit_callbacks(
    *,
    progress: bool,
    checkpoint_every: int | None,
    save: Callable[[FitState], Any],
    callback: Callable[[int, FitResult], bool | None] | None,
    callbacks: Sequence[Callback] = (),
) -> list[Callback]:
    """``BNN.fit``'s keywords as callbacks: progress, checkpoints, the per-epoch function,
    then the user's own, in this order.

    Example::

        >>> [type(c).__name__ for c in fit_callbacks(progress=True, checkpoint_every=2,
        ...     save=print, callback=None)]
        ['Progress', 'Checkpoint']
    """
    made: list[Callback] = [Progress()] if progress else []
    if checkpoint_every is not None:
        made.append(Checkpoint(checkpoint_every, save))
    if callback is not None:
        made.append(EpochCallback(callback))
    return [*made, *callbacks]
