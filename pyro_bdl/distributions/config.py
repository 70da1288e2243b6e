"""Plain-data descriptions of simple distributions, for checkpoints (no code is run on load).

A prior's or a likelihood's configuration names ``pyro.distributions`` classes and their tensor
arguments as lists; :func:`distribution_from_config` rebuilds only such classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyro.distributions as dist
import torch
from torch.distributions import Distribution

__all__ = ["distribution_config", "distribution_from_config"]


def distribution_config(d: Distribution) -> dict[str, Any] | None:
    """A plain-data description of a simple distribution (``None`` if it has none).

    Only classes of ``pyro.distributions`` whose arguments are all tensors are described.

    :param d: the distribution, e.g. a prior's or a precision prior.
    :return: ``{"name": class name, "args": {argument: nested list}}``, or ``None``.

    Example::

        >>> distribution_config(dist.Normal(0.0, 2.0))
        {'name': 'Normal', 'args': {'loc': 0.0, 'scale': 2.0}}
    """
    name = type(d).__name__
    if getattr(dist, name, None) is not type(d) or isinstance(d, dist.Independent):
        return None
    args = {k: v for k, v in vars(d).items() if k in d.arg_constraints and torch.is_tensor(v)}
    if "probs" in args and "logits" in args:
        del args["probs"]
    if not args:
        return None
    return {"name": name, "args": {k: v.tolist() for k, v in args.items()}}


def distribution_from_config(cfg: Mapping[str, Any]) -> Distribution:
    """Rebuild a distribution described by :func:`distribution_config` (no code is run).

    :param cfg: ``{"name": ..., "args": ...}`` as written by :func:`distribution_config`.
    :return: the distribution, its arguments as tensors of the default dtype.
    :raises ValueError: if the name is not a distribution class of ``pyro.distributions``.

    Example::

        >>> distribution_from_config({"name": "Gamma", "args": {"concentration": 2.0, "rate": 1.0}})
        Gamma(concentration: 2.0, rate: 1.0)
    """
    cls = getattr(dist, str(cfg.get("name")), None)
    if not (isinstance(cls, type) and issubclass(cls, Distribution)):
        raise ValueError(f"Expected a pyro.distributions class name, but got {cfg.get('name')!r}.")
    make: Callable[..., Distribution] = cls  # each class takes its own tensor arguments
    # on the CPU whatever torch's default device: a prior is moved to each parameter's device
    args = {str(k): torch.tensor(v, device="cpu") for k, v in dict(cfg["args"]).items()}
    return make(**args)
