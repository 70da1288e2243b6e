"""From a guide specification to a guide: builders, AutoGuide classes, hand-written guides,
plain data."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from pyro.infer.autoguide import AutoGuide

from ..nn import init_to_net
from ..registry import from_config
from .base import GuideBuilder
from .custom import PyroGuide, guide_or_builder
from .dropout import BernoulliDropout, ConcreteDropout  # noqa: F401  (registers the builders)
from .mean_field import MeanFieldNormal

__all__ = ["GuideLike", "build_guide", "guide_config", "guide_from_config"]

#: a builder ``model -> guide``, an AutoGuide subclass, a hand-written guide
#: ``(x, y=None, **kwargs)`` (or a :class:`~pyro_bdl.guides.PyroGuide`), or None
GuideLike = Any


def build_guide(spec: GuideLike, model: Callable) -> Callable:
    """Build the guide for ``model`` from a builder, an AutoGuide class, a guide, or ``None``.

    An AutoGuide class is instantiated as ``cls(model)``, with ``init_loc_fn=init_to_net`` when the
    class accepts it (so it starts at the network's weights). ``None`` means
    :class:`MeanFieldNormal` with its defaults. A hand-written guide -- a
    :class:`~pyro_bdl.guides.PyroGuide`, or a callable whose signature says it is one (see
    :func:`~pyro_bdl.guides.guide_or_builder`) -- is used as it is, wrapped in a
    :class:`~pyro_bdl.guides.PyroGuide`; so is a plain callable a builder returns.

    :raises TypeError: for an AutoGuide instance, a non-callable, an ambiguous callable, or a
        builder that does not return a callable guide.

    Example::

        >>> from pyro.infer.autoguide import AutoDelta
        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
        >>> guide = build_guide(AutoDelta, bnn.model)  # starts at the network's weights
        >>> type(guide).__name__
        'AutoDelta'
    """
    if spec is None:
        spec = MeanFieldNormal()
    if isinstance(spec, AutoGuide):
        raise TypeError(
            "Expected a guide builder (e.g. MeanFieldNormal() or the class AutoNormal), but got an "
            "AutoGuide instance already bound to another model; pass its class instead."
        )
    if isinstance(spec, type) and issubclass(spec, AutoGuide):
        kwargs = {}
        if "init_loc_fn" in inspect.signature(spec).parameters:
            kwargs["init_loc_fn"] = init_to_net
        return spec(model, **kwargs)
    if isinstance(spec, PyroGuide):
        return spec
    if not callable(spec):
        raise TypeError(
            "Expected guide to be a builder model -> guide (e.g. MeanFieldNormal()), an AutoGuide "
            "class, a guide function (x, y=None, **kwargs), or None, but got "
            f"{type(spec).__name__}."
        )
    if not isinstance(spec, GuideBuilder) and guide_or_builder(spec) == "guide":
        return PyroGuide(spec)
    guide = spec(model)
    if not callable(guide):
        raise TypeError(
            f"Expected the guide builder to return a callable guide, but got {guide!r}. A guide "
            "function (x, y=None, **kwargs) is passed as guide= itself (or as PyroGuide(fn))."
        )
    if isinstance(guide, (AutoGuide, PyroGuide)):
        return guide
    return PyroGuide(guide)


def guide_config(spec: GuideLike) -> dict | None:
    """Describe a guide specification as plain data (``None`` if it cannot be).

    Example::

        >>> guide_config(MeanFieldNormal(1e-3))
        {'type': 'MeanFieldNormal', 'config': {'init_scale': 0.001, 'init_loc': 'net'}}
    """
    import pyro.infer.autoguide as autoguides

    if spec is None:
        spec = MeanFieldNormal()
    name = spec.__name__ if isinstance(spec, type) else None
    if name is not None and getattr(autoguides, name, None) is spec:
        return {"type": "autoguide", "config": {"name": name}}
    cfg = spec.config() if hasattr(spec, "config") else None
    return None if cfg is None else {"type": type(spec).__name__, "config": cfg}


def guide_from_config(cfg: Mapping) -> GuideLike:
    """Rebuild a guide specification from :func:`guide_config`'s output (no code is run).

    :raises ValueError: for an unknown guide type.
    """
    import pyro.infer.autoguide as autoguides

    kind, args = cfg.get("type"), dict(cfg.get("config", {}))
    if kind == "autoguide":
        cls = getattr(autoguides, str(args.get("name")), None)
        if not (isinstance(cls, type) and issubclass(cls, AutoGuide)):
            raise ValueError(
                f"Expected a pyro.infer.autoguide class, but got {args.get('name')!r}."
            )
        return cls
    return from_config({"type": kind, "config": args}, "guide")
