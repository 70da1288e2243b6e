"""What the package's guides share: one factor per global site, Gaussian-prior parts, flat views."""

from __future__ import annotations

import functools
from typing import Any, Protocol, cast

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from pyro.infer.autoguide import AutoGuide
from pyro.poutine.runtime import InferDict
from torch import nn

from ..registry import Configurable

__all__ = [
    "GuideBuilder",
    "GuideModel",
    "FACTOR_KEY",
    "FactorisedGuide",
    "deep_getattr",
    "flat_entries",
    "normal_prior_parts",
    "uniform_value",
]


class GuideModel(Protocol):
    """What a guide's hooks read of the model they approximate (a
    :class:`~pyro_bdl.model.BayesianModel` is one): the network, which of its parameters are
    random and their site names, and the priors. Guides never see a ``BNN``.
    """

    net: nn.Module
    prefix: str
    random_names: list[str]

    def site_name(self, param_name: str) -> str:
        """Sample-site name of a network parameter."""
        ...

    def site_priors(self) -> dict[str, Any]:
        """``{site name: prior distribution}`` of the weights."""
        ...


class GuideBuilder(Configurable):
    """Base of the guide builders (``builder(model) -> guide``) that save as plain data."""

    config_kind = "guide"


#: ``infer`` key marking a sample site as a factor of :class:`~pyro_bdl.guides.AutoMeanFieldNormal`.
FACTOR_KEY = "pyro_bdl_factor"


def deep_getattr(obj: Any, name: str) -> Any:
    """``getattr`` along a dotted path (the inverse of Pyro's ``deep_setattr``)."""
    return functools.reduce(getattr, name.split("."), obj)


class FactorisedGuide(AutoGuide):
    """An autoguide with one independent factor per global latent site.

    Subclasses build their parameters in ``_setup_prototype`` and return each factor from
    :meth:`get_site_dist`; sampling every site is shared.
    """

    #: ``infer`` entries of every site this guide samples (a subclass may mark its sites)
    _site_infer: dict[str, Any] = {}

    def get_site_dist(self, name: str) -> TorchDistribution:
        """The factor q(W_name)."""
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every latent site from its factor; returns ``{site name: value}``."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return {
            # InferDict lists Pyro's own keys; a site's infer dict may carry others at runtime
            name: pyro.sample(
                name, self.get_site_dist(name), infer=cast(InferDict, dict(self._site_infer))
            )
            for name, _ in self.prototype_trace.iter_stochastic_nodes()
        }


PriorParts = tuple[torch.Tensor, torch.Tensor]


def normal_prior_parts(prior: Any, shape: torch.Size) -> PriorParts | None:
    """``(loc, scale)`` of a Gaussian prior over a whole weight tensor, else ``None``.

    Accepts ``Normal`` with ``batch_shape == shape`` or ``Independent(Normal)`` with
    ``event_shape == shape`` (what priors give a site); the tensors may be expanded views.
    """
    base, ndims = prior, 0
    if isinstance(prior, torch.distributions.Independent):
        base, ndims = prior.base_dist, prior.reinterpreted_batch_ndims
    if type(base) not in (torch.distributions.Normal, dist.Normal):
        return None
    if tuple(prior.batch_shape) + tuple(prior.event_shape) != tuple(shape) or ndims != len(shape):
        return None
    return base.loc.expand(shape), base.scale.expand(shape)


def flat_entries(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors' entries as one vector (a view for a single tensor)."""
    if len(tensors) == 1:
        return tensors[0].reshape(-1)
    return torch.cat([t.reshape(-1) for t in tensors])


def uniform_value(t: torch.Tensor) -> float | None:
    """The single value of a tensor whose entries are all equal (``None`` otherwise)."""
    first = t.reshape(-1)[:1]
    return float(first) if bool((t == first).all()) else None
