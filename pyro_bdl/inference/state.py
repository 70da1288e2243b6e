"""The state of a fit: its options, its measured history and where it stands.

A :class:`FitState` is what a checkpoint saves and what a fit resumes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .._checks import check_seed, is_integral, positive_int
from ..nn import MODES
from .elbo import ESTIMATORS

if TYPE_CHECKING:
    from .elbo import Objective
    from .optim import Optimizer

__all__ = ["FitOptions", "FitResult", "FitState", "check_mode"]


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


@dataclass(frozen=True)
class FitOptions:
    """How a fit runs (``BNN.fit``'s keywords that are not data, optimiser or callbacks).

    :ivar epochs: the epoch to stop at.
    :ivar num_particles: particles per ELBO estimate.
    :ivar vectorize_particles: draw them in one batched pass.
    :ivar shuffle: reshuffle tensors every epoch.
    :ivar seed: seeds torch and the minibatch order (``None``: drawn from torch's RNG); an
        int in ``[0, 2**32)`` (see :func:`~pyro_bdl._checks.check_seed`).
    :ivar estimator: ``"auto"``, ``"traced"`` or ``"trace_free"`` (see ``make_objective``).
    :ivar mode: the network's modules while fitting: ``"train"`` (training mode), ``"eval"``
        (evaluation mode) or ``"keep"`` (each as it is); restored afterwards.

    Integral numbers of any type (``np.int64``) are stored as ``int``; :meth:`validate` refuses
    what no fit can take.

    Example::

        >>> FitOptions(epochs=0).validate()
        Traceback (most recent call last):
        ...
        ValueError: Expected epochs to be a positive int, but got 0.
    """

    epochs: int = 1
    num_particles: int = 1
    vectorize_particles: bool = True
    shuffle: bool = True
    seed: int | None = None
    estimator: str = "auto"
    mode: str = "train"

    def __post_init__(self) -> None:
        for name in ("epochs", "num_particles", "seed"):
            value = getattr(self, name)
            if is_integral(value):  # np.int64 and friends; the rest is refused by validate
                object.__setattr__(self, name, int(value))

    def validate(self) -> None:
        """Raise for a value no fit can take."""
        positive_int("epochs", self.epochs)
        positive_int("num_particles", self.num_particles)
        check_seed("seed", self.seed)
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"Expected elbo in {ESTIMATORS}, but got {self.estimator!r}.")
        check_mode(self.mode)


def check_mode(mode: object) -> bool | None:
    """The training flag of a fit's ``mode`` (``None`` for ``"keep"``).

    :raises ValueError: for anything but ``"train"``, ``"eval"`` or ``"keep"``.

    Example::

        >>> check_mode("train"), check_mode("keep")
        (True, None)
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(
            f"Expected mode in {tuple(MODES)}, but got {mode!r}: 'train' fits with every module "
            "in training mode, 'eval' in evaluation mode, 'keep' in the modes they are in."
        )
    return MODES[mode]


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
