"""The optimiser of a fit: ``pyro.optim`` state, stepped by one fused torch optimiser.

:func:`fused_optimizer` and :func:`gradients_finite` are exact re-arrangements of what the traced
step does with Pyro's per-parameter optimisers; :class:`Optimizer` uses them only when they are.

A learning-rate scheduler (any ``pyro.optim.PyroLRScheduler``, e.g.
``pyro.optim.ExponentialLR``) is stepped through Pyro's own per-tensor optimisers, never fused,
and :meth:`Optimizer.end_epoch` steps it once at the end of every epoch, as in Pyro's
documented loop (``svi.step`` per minibatch, ``scheduler.step()`` per epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import pyro.optim
import torch
from pyro.infer.util import zero_grads
from pyro.optim import PyroOptim
from pyro.optim.lr_scheduler import PyroLRScheduler

__all__ = ["Optimizer", "fused_optimizer", "gradients_finite", "make_optim"]

#: torch optimisers whose update of one tensor depends on that tensor's gradient and state only,
#: so one optimiser over all tensors equals Pyro's one optimiser per tensor.
_ELEMENTWISE = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.Adagrad,
    torch.optim.RMSprop,
    torch.optim.SGD,
)


def fused_optimizer(optim: PyroOptim, params: list[torch.Tensor]) -> torch.optim.Optimizer | None:
    """One torch optimiser over ``params`` that shares its state with Pyro's ``optim``.

    ``pyro.optim.Adam(args)`` keeps one ``torch.optim.Adam`` per parameter tensor, which costs a
    Python round trip per tensor and step. For elementwise optimisers with fixed arguments (a dict,
    no gradient clipping) one optimiser over all tensors takes the same step; its per-tensor state
    dicts *are* the ones of ``optim``'s optimisers (the same objects), so ``optim.get_state()``,
    checkpoints, and a later ``fit`` with the same ``optim`` see every update. Pending state set
    with ``optim.set_state`` is consumed first, by a call of ``optim`` while every gradient is
    ``None`` (torch optimisers skip such tensors, so nothing moves).

    A learning-rate scheduler is never fused: each of Pyro's per-tensor optimisers has its own
    scheduler, which sets that optimiser's learning rate (Pyro's own steps honour it).

    :param optim: the ``pyro.optim`` optimiser given to ``fit``.
    :param params: the leaf tensors of one step, in a fixed order.
    :return: the fused optimiser, or ``None`` when ``optim`` is not of that kind.
    """
    ctor = optim.pt_optim_constructor
    if (
        isinstance(optim, PyroLRScheduler)
        or not isinstance(ctor, type)
        or ctor not in _ELEMENTWISE
        or not isinstance(optim.pt_optim_args, dict)
        or optim.pt_clip_args
    ):
        return None
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        optim(params)  # creates the per-tensor optimisers (and loads pending state): no update
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad = g
    args = dict(optim.pt_optim_args)
    fused = None
    if "fused" not in args and "foreach" not in args:
        # torch's fused (one kernel) or foreach implementations of the same update: they
        # agree with the per-tensor loop to rounding (~1e-16 relative in float64)
        for extra in ({"fused": True}, {"foreach": True}):
            try:
                fused = cast(Any, ctor)(params, **args, **extra)
                break
            except (RuntimeError, TypeError, ValueError):
                continue
    if fused is None:
        fused = ctor(params, **args)
    for p in params:
        fused.state[p] = optim.optim_objs[p].state[p]
    return fused


def gradients_finite(params: Iterable[torch.Tensor]) -> bool:
    """Whether every gradient is finite, with one reduction over all tensors.

    A total norm that overflows although every entry is finite counts as not finite: a gradient
    that large is a divergence all the same.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if total_norm is not None:  # torch >= 2.6: one fused norm
        return bool(torch.isfinite(total_norm(grads, 2.0)))
    return bool(torch.isfinite(torch.stack([g.norm() for g in grads]).norm()))


def make_optim(lr: float, optim: PyroOptim | None) -> PyroOptim:
    """The optimiser of a fit: ``optim`` as given, or ``pyro.optim.Adam({"lr": lr})``.

    :raises ValueError: for ``lr`` that is not a finite positive number.
    :raises TypeError: for an ``optim`` that is not a ``pyro.optim`` optimiser.

    Example::

        >>> make_optim(1e-2, None).pt_optim_args
        {'lr': 0.01}
    """
    if optim is None:
        if isinstance(lr, bool) or not (
            isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)
        ):
            raise ValueError(f"Expected lr > 0, but got {lr!r}.")
        return pyro.optim.Adam({"lr": float(lr)})  # type: ignore[attr-defined]  # built at import
    if not isinstance(optim, PyroOptim):
        raise TypeError(
            "Expected optim to be a pyro.optim optimiser such as pyro.optim.Adam({'lr': 1e-3}), "
            f"but got {type(optim).__name__}."
        )
    return optim


class Optimizer:
    """A ``pyro.optim`` optimiser, stepped through one fused torch optimiser where it can be.

    :param optim: the ``pyro.optim`` optimiser (its state is the fit's optimiser state).
    :param params: the parameters of every step in a fixed order (a trace-free objective's), or
        ``None`` when each step names its own (traced objectives): then ``optim`` steps them.

    Example::

        >>> opt = Optimizer(pyro.optim.Adam({"lr": 0.1}), [w])  # doctest: +SKIP
        >>> loss.backward(); opt.step([w])  # doctest: +SKIP
    """

    def __init__(self, optim: PyroOptim, params: list[torch.Tensor] | None = None) -> None:
        self.optim = optim
        self.fused = None if params is None else fused_optimizer(optim, params)

    def step(self, params: list[torch.Tensor]) -> None:
        """Apply the gradients of ``params`` and clear them."""
        if self.fused is not None:
            self.fused.step()
            self.fused.zero_grad(set_to_none=True)
        else:
            self.optim(params)
            zero_grads(set(params))

    def end_epoch(self, loss: float) -> None:
        """Step a learning-rate scheduler once, at the end of an epoch; nothing otherwise.

        :param loss: the epoch's loss, the negative ELBO per datum averaged over its steps
            (``-state.history.elbo[-1]``): the metric ``ReduceLROnPlateau`` is stepped with
            (``mode="min"``); other schedulers take no argument.
        """
        if not isinstance(self.optim, PyroLRScheduler):
            return
        ctor = self.optim.pt_scheduler_constructor
        if isinstance(ctor, type) and issubclass(ctor, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.optim.step(loss)
        else:
            self.optim.step()

    def get_state(self) -> dict:
        """``pyro.optim``'s state (the per-tensor state the fused optimiser shares)."""
        return self.optim.get_state()
