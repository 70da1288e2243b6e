"""How the fit loop spreads its work: :class:`Local` (one process) or
:class:`~pyro_bdl.inference.strategies.data_parallel.DataParallel` (``torch.distributed``).

The loop (:func:`pyro_bdl.inference.loop.fit`) owns epochs, history and callbacks; a strategy
owns what differs between one process and many: which rows of each global minibatch this
process evaluates (:meth:`Strategy.batches`), one optimisation step with its divergence guard
(:meth:`Strategy.step`), and agreeing on whether to stop (:meth:`Strategy.end_epoch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ...uncertainty import Prediction
from ..optim import Optimizer, gradients_finite
from ..posterior import Posterior
from ..predict import predict

if TYPE_CHECKING:
    from ...model import BayesianModel
    from ..callbacks import Callback
    from ..data import LoaderBatches, TensorBatches
    from ..elbo import ELBOTerms, Objective
    from ..state import FitState

__all__ = [
    "HINT",
    "LOCAL",
    "Batch",
    "DivergenceError",
    "Local",
    "Strategy",
    "check_terms",
    "checksum",
    "estimate",
    "resolve_strategy",
]

HINT = "Lower the learning rate, use a smaller init_scale for the guide, or standardise the data."


def checksum(t: torch.Tensor, rows: int = 1024) -> float:
    """Sum of the absolute entries of up to ``rows`` evenly spaced rows (cheap on a
    memory-mapped tensor); processes compare it to check they were given the same data.

    Example::

        >>> checksum(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
        10.0
    """
    t = t.detach()
    if t.dim() and len(t) > rows:
        t = t[torch.linspace(0, len(t) - 1, rows).long().to(t.device)]
    return float(t.to(torch.float64).abs().sum())


class DivergenceError(FloatingPointError):
    """The ELBO became NaN or infinite during a fit; the parameters keep their last good values."""


def estimate(
    objective: Objective, batch: Batch, dataset_size: int, num_particles: int, number: int
) -> tuple[ELBOTerms, list[torch.Tensor]]:
    """``objective`` on ``batch`` (its rows, for a shard); a guide parameter that left its
    support (Pyro's "Expected parameter ..." error) becomes a :class:`DivergenceError` naming
    step ``number``.

    Example::

        >>> terms, params = estimate(objective, batch, N, 1, state.step)  # doctest: +SKIP
    """
    rows = None if batch.rows is None else (batch.size, batch.rows)
    try:
        return objective(batch.x, batch.y, dataset_size, num_particles, rows=rows)
    except ValueError as e:
        if "Expected parameter" not in str(e):
            raise
        raise DivergenceError(
            f"The guide's parameters left their support (step {number}): "
            f"{str(e).splitlines()[0]} {HINT}"
        ) from e


def check_terms(loglik: float, kl: float, number: int) -> None:
    """Raise :class:`DivergenceError` naming the first ELBO term that is NaN/inf.

    Example::

        >>> check_terms(-3.0, float("inf"), 7)
        Traceback (most recent call last):
        ...
        pyro_bdl.inference.strategies.DivergenceError: The ELBO diverged: its KL term is inf ...
    """
    for term, value in (("expected log-likelihood", loglik), ("KL", kl)):
        if not math.isfinite(value):
            raise DivergenceError(
                f"The ELBO diverged: its {term} term is {value} (step {number}). "
                f"Parameters keep their last good values. {HINT}"
            )


@dataclass(frozen=True)
class Batch:
    """The rows of one global minibatch that this process evaluates.

    :ivar x: inputs of these rows ``(B_r, ...)``.
    :ivar y: their targets.
    :ivar size: B, the global minibatch size.
    :ivar rows: the rows' position in the global minibatch (``None``: all of it).
    :ivar weight: this shard's share ``B_r / B`` of the minibatch's log-likelihood (0 for a
        placeholder row of a rank that has none).

    Example::

        >>> b = Batch(torch.zeros(3, 1), torch.zeros(3), size=10, rows=slice(4, 7), weight=0.3)
        >>> b.rows
        slice(4, 7, None)
    """

    x: torch.Tensor
    y: torch.Tensor
    size: int
    rows: slice | None = None
    weight: float = 1.0


class Strategy(Protocol):
    """What a fit needs from a strategy (see :class:`Local`)."""

    @property
    def is_main(self) -> bool: ...

    def guard(self, where: str, fn: Callable[[], Any]) -> Any: ...

    def agree_seed(self, seed: int | None) -> int | None: ...

    def agree(self, arguments: Sequence[float], data: Sequence[float]) -> None: ...

    def setup(self, objective: Objective, example: tuple[torch.Tensor, torch.Tensor]) -> None: ...

    def batches(
        self, data: TensorBatches | LoaderBatches, generator: torch.Generator
    ) -> Iterator[Batch]: ...

    def step(
        self,
        state: FitState,
        batch: Batch,
        objective: Objective,
        optimizer: Optimizer,
        *,
        dataset_size: int,
        num_particles: int,
    ) -> tuple[float, float]: ...

    def end_epoch(self, state: FitState, callbacks: Sequence[Callback]) -> bool: ...

    def teardown(self, objective: Objective) -> None: ...

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
    ) -> Prediction: ...


class Local:
    """One process: every row of every minibatch, the guard raises at once.

    Example::

        >>> LOCAL.step(state, batch, objective, optimizer, dataset_size=N, num_particles=1)
        ... # doctest: +SKIP
    """

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints and shows progress (one process: yes)."""
        return True

    def guard(self, where: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` (in one process an error simply propagates)."""
        return fn()

    def agree_seed(self, seed: int | None) -> int | None:
        """The seed as given."""
        return seed

    def agree(self, arguments: Sequence[float], data: Sequence[float]) -> None:
        """Nothing to agree on in one process."""

    def setup(self, objective: Objective, example: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Nothing to set up in one process."""

    def batches(
        self, data: TensorBatches | LoaderBatches, generator: torch.Generator
    ) -> Iterator[Batch]:
        """The whole minibatches of one epoch."""
        for x, y in data.epoch(generator):
            yield Batch(x, y, len(x))

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
        """One SVI step: estimate, guard, backward, update; returns ``(loglik, kl)``.

        :raises DivergenceError: if a term or the gradient is not finite, or a guide parameter
            left its support; the parameters keep their last good values.
        """
        number = state.step
        terms, params = estimate(objective, batch, dataset_size, num_particles, number)
        loglik, kl = terms.loglik.item(), terms.kl.item()
        check_terms(loglik, kl, number)
        terms.loss.backward()
        if not gradients_finite(params):
            bad = [p for p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
            for p in params:
                p.grad = None
            what = f"NaN/inf entries for {len(bad)} parameter tensor(s)" if bad else "an inf norm"
            raise DivergenceError(
                f"The ELBO's gradient has {what} (step {number}). Parameters keep their last "
                f"good values. {HINT}"
            )
        optimizer.step(params)
        return loglik, kl

    def end_epoch(self, state: FitState, callbacks: Sequence[Callback]) -> bool:
        """Run every callback's ``on_epoch``; stop if one asks to."""
        stop = False
        for cb in callbacks:
            if cb.on_epoch(state):
                stop = True
        return stop

    def teardown(self, objective: Any) -> None:
        """Nothing to check in one process."""

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
        """``num`` draws of the posterior predictive at ``x``, in chunks of ``chunk`` draws.

        :param seed: if given, the draws are reproducible without touching the global RNG.
        :param fingerprint: computes a checksum of the posterior (processes compare it; not
            called in one process).
        """
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            pred = predict(model, posterior, x, num, chunk=chunk)
        assert pred is not None  # every chunk is kept
        return pred

    def __repr__(self) -> str:
        return "Local()"


#: The default strategy.
LOCAL = Local()


def resolve_strategy(distributed: bool, strategy: Strategy | None) -> Strategy:
    """``strategy`` if given; :class:`DataParallel` for ``distributed=True``; else :data:`LOCAL`.

    Example::

        >>> resolve_strategy(False, None)
        Local()
    """
    if strategy is not None:
        if distributed:
            raise ValueError("Expected distributed=False with strategy=, but got both.")
        return strategy
    if not distributed:
        return LOCAL
    from .data_parallel import DataParallel

    return DataParallel()
