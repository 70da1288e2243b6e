"""Pieces of the trace-free SVI step: one optimiser over every parameter, a finiteness check.

Both are exact re-arrangements of what the traced step does with Pyro's per-parameter optimisers;
``BNN.fit`` uses them only when they are (see :func:`fused_optimizer`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from pyro.optim import PyroOptim

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

    :param optim: the ``pyro.optim`` optimiser given to ``fit``.
    :param params: the leaf tensors of one step, in a fixed order.
    :return: the fused optimiser, or ``None`` when ``optim`` is not of that kind.
    """
    ctor = optim.pt_optim_constructor
    if (
        not isinstance(ctor, type)
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
                fused = ctor(params, **args, **extra)
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
