"""How the ``pyro-bdl`` command fits: an epoch budget from the data size and a convergence rule.

The rule (:class:`ConvergenceRule`): after every epoch the mean ELBO / N of the last ``window``
epochs is compared with the mean of the ``window`` epochs before. When it has risen by no more
than ``max(tol, 2 standard errors)`` the ELBO has *plateaued*: Adam's step size is cut by
``factor`` and the next stage starts. The plateau after ``cuts`` cuts ends the fit, which is then
*converged*. A fit that reaches its epoch limit first is *not converged*, and the command says
so in its output and its report. :func:`plan` sizes the window and the limit from the data:
a window of at least :data:`WINDOW_STEPS` optimisation steps (at least 10 epochs) and a limit
of :data:`MAX_STEPS` steps (at least 10 windows).

Only torch and the engine's callback base class are imported here.

Example::

    >>> plan(353, 128)  # diabetes' training rows, minibatches of 128: 3 steps per epoch
    FitPlan(epochs=6667, window=50, steps_per_epoch=3)
    >>> plan(60_000, 128, epochs=20)
    FitPlan(epochs=20, window=10, steps_per_epoch=469)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..inference.callbacks import Callback

if TYPE_CHECKING:
    from ..inference.optim import Optimizer
    from ..inference.state import FitState

__all__ = [
    "MAX_STEPS",
    "WINDOW_STEPS",
    "ConvergenceRule",
    "FitPlan",
    "plan",
    "set_step_size",
    "step_size",
]

#: Optimisation steps of the default epoch limit.
MAX_STEPS = 20_000
#: Least optimisation steps in one convergence window.
WINDOW_STEPS = 150


@dataclass(frozen=True)
class FitPlan:
    """The epoch limit and the convergence window of one fit.

    :param epochs: the most epochs the fit may run.
    :param window: epochs per window of :class:`ConvergenceRule`.
    :param steps_per_epoch: minibatches per epoch.
    """

    epochs: int
    window: int
    steps_per_epoch: int


def plan(n: int, batch_size: int, epochs: int | None = None) -> FitPlan:
    """The epoch limit (``epochs`` if given) and the convergence window for ``n`` rows.

    :param n: training rows.
    :param batch_size: minibatch size (at most ``n`` is used).
    :param epochs: the user's limit, or ``None`` for ``max(MAX_STEPS steps, 10 windows)``.
    :return: a :class:`FitPlan`.

    Example::

        >>> plan(400, 400)  # full batches: one step per epoch
        FitPlan(epochs=20000, window=150, steps_per_epoch=1)
    """
    steps = math.ceil(n / min(batch_size, n))
    window = max(10, math.ceil(WINDOW_STEPS / steps))
    limit = epochs if epochs is not None else max(10 * window, math.ceil(MAX_STEPS / steps))
    return FitPlan(limit, window, steps)


def _arguments(optimizer: Optimizer) -> dict:
    """The ``pyro.optim`` optimiser's argument dict, which must hold ``"lr"``."""
    args = optimizer.optim.pt_optim_args
    if not isinstance(args, dict) or "lr" not in args:
        raise ValueError(
            "Expected an optimiser with a dict of arguments holding 'lr' (as pyro.optim.Adam("
            f"{{'lr': 0.01}})), but got {type(optimizer.optim).__name__} with {args!r}."
        )
    return args


def step_size(optimizer: Optimizer) -> float:
    """The current step size of a fit's optimiser (see :func:`set_step_size`).

    Example::

        >>> step_size(state.optimizer)  # doctest: +SKIP
        0.01
    """
    return float(_arguments(optimizer)["lr"])


def set_step_size(optimizer: Optimizer, lr: float) -> None:
    """Set the step size of a fit's optimiser (every torch optimiser it holds), as torch's
    learning-rate schedulers do: through each optimiser's ``param_groups``.

    :param optimizer: the fit's optimiser (``FitState.optimizer``), a ``pyro.optim`` one with
        a dict of arguments such as ``pyro.optim.Adam({"lr": 0.01})``.
    :param lr: the new step size.

    Example::

        >>> set_step_size(state.optimizer, 1e-3)  # doctest: +SKIP
    """
    _arguments(optimizer)["lr"] = lr  # optimisers created later (new parameters) start from it
    groups = [g for o in optimizer.optim.optim_objs.values() for g in o.param_groups]
    if optimizer.fused is not None:
        groups += optimizer.fused.param_groups
    for group in groups:
        group["lr"] = lr


class ConvergenceRule(Callback):
    """Cut the step size at each plateau of the ELBO; stop, converged, at the last plateau.

    :param window: epochs per window (>= 2: the rule compares the means of two windows).
    :param cuts: step-size cuts before the final plateau.
    :param factor: each cut multiplies the step size by it.
    :param tol: the least rise of the window mean, nats per datum, that is not a plateau.

    After the fit, :attr:`converged` says whether the final plateau was reached,
    :attr:`cut_epochs` when the step size was cut, and :attr:`last_gain` the last rise of the
    window mean that was measured (``None`` if the fit ran fewer than two windows).

    Example::

        >>> rule = ConvergenceRule(window=50)
        >>> bnn.fit(x, y, epochs=5000, callbacks=[rule])  # doctest: +SKIP
        >>> rule.converged, rule.cut_epochs  # doctest: +SKIP
        (True, [283, 383, 483])
    """

    def __init__(
        self, window: int, cuts: int = 3, factor: float = 1 / 3, tol: float = 1e-3
    ) -> None:
        if window < 2:
            raise ValueError(f"Expected window >= 2 epochs, but got {window!r}.")
        self.window, self.cuts, self.factor, self.tol = window, cuts, factor, tol
        self.converged = False
        self.cut_epochs: list[int] = []
        self.last_gain: float | None = None
        self._stage_start = 0

    def on_fit_start(self, state: FitState, epochs: int) -> None:
        self.converged, self.cut_epochs, self.last_gain = False, [], None
        self._stage_start = state.epoch

    def on_epoch(self, state: FitState) -> bool | None:
        elbo = state.history.elbo[self._stage_start :]
        w = self.window
        if len(elbo) < 2 * w:
            return False
        before, last = elbo[-2 * w : -w], elbo[-w:]
        gain = statistics.fmean(last) - statistics.fmean(before)
        noise = math.sqrt((statistics.variance(before) + statistics.variance(last)) / w)
        self.last_gain = gain
        if gain > max(self.tol, 2 * noise):
            return False  # still rising
        if len(self.cut_epochs) == self.cuts:
            self.converged = True
            return True
        if state.optimizer is None:
            raise ValueError("Expected the fit's optimiser in the fit state, but got None.")
        set_step_size(state.optimizer, step_size(state.optimizer) * self.factor)
        self.cut_epochs.append(state.epoch)
        self._stage_start = state.epoch
        return False

    def describe(self, epochs_run: int) -> str:
        """One sentence on how the fit ended, for the report.

        Example::

            >>> rule = ConvergenceRule(window=50)
            >>> rule.describe(100)
            'not converged: the limit of 100 epochs came before the ELBO settled'
        """
        if self.converged:
            cuts = ", ".join(str(e) for e in self.cut_epochs)
            return (
                f"converged after {epochs_run} epochs (step size cut at epochs {cuts}; "
                f"windows of {self.window} epochs)"
            )
        rising = (
            f"; the ELBO / N still rose by {self.last_gain:.3g} nats over the last "
            f"{self.window} epochs"
            if self.last_gain is not None and self.last_gain > 0
            else ""
        )
        return (
            f"not converged: the limit of {epochs_run} epochs came before the ELBO settled{rising}"
        )
