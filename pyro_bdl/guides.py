"""Guides q_M(W): builders ``model -> AutoGuide``.

:class:`MeanFieldNormal` builds an :class:`AutoMeanFieldNormal`, a fully factorised Gaussian that
starts at the network's current weights and emits ``Normal`` sites for real-support latents, so
the KL to a Gaussian prior is computed in closed form. Any Pyro autoguide class (``AutoDelta``,
``AutoLowRankMultivariateNormal``, ...) or callable ``model -> guide`` is accepted in its place.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide import AutoGuide
from pyro.infer.autoguide.initialization import InitMessenger, init_to_median, init_to_sample
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn import PyroModule, PyroParam

from .nn import init_to_net

__all__ = ["AutoMeanFieldNormal", "MeanFieldNormal", "build_guide", "GuideLike"]

GuideLike = Any  # a builder ``model -> guide``, an AutoGuide subclass, or None


def deep_getattr(obj: Any, name: str) -> Any:
    """``getattr`` along a dotted path (the inverse of Pyro's ``deep_setattr``)."""
    return functools.reduce(getattr, name.split("."), obj)


def _is_real(support: constraints.Constraint) -> bool:
    while hasattr(support, "base_constraint"):
        support = support.base_constraint
    return support is constraints.real


class AutoMeanFieldNormal(AutoGuide):
    r"""Fully factorised Gaussian guide for every global latent site of a model.

    .. math::

        q(W) = \prod_j \mathcal N(W_j; \mu_j, \sigma_j^2), \quad
        \sigma_j = \mathrm{softplus}(\rho_j)

    Real-support sites are emitted as ``Normal(loc, scale).to_event(...)`` (so
    :class:`~pyro.infer.TraceMeanField_ELBO` and :func:`pyro_bdl.infer.elbo_terms` use the
    analytic KL); constrained sites (a noise precision) as a Normal pushed through
    ``biject_to(support)``.

    :param model: a Pyro model whose latent sites are all global (outside every plate).
    :param init_loc_fn: where the means start; default :func:`~pyro_bdl.nn.init_to_net`
        (the network's current weights, a warm start for a pretrained net).
    :param init_scale: initial standard deviation of every factor (> 0).

    Example::

        >>> guide = AutoMeanFieldNormal(bnn.model, init_scale=1e-2)  # doctest: +SKIP
        >>> draws = guide(x)  # {"0.weight": tensor(...), ...}  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_net,
        init_scale: float = 1e-2,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"Expected init_scale > 0, but got {init_scale}.")
        self.init_loc_fn = init_loc_fn
        self._init_scale = float(init_scale)
        super().__init__(InitMessenger(init_loc_fn)(model))

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.locs = PyroModule()
        self.scales = PyroModule()
        self._transforms: dict[str, Any] = {}
        self._event_dims: dict[str, int] = {}
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            if site["cond_indep_stack"]:
                raise NotImplementedError(
                    f"AutoMeanFieldNormal supports global latent sites only, but site {name!r} "
                    "is inside a plate; use pyro.infer.autoguide.AutoNormal for local latents."
                )
            fn = site["fn"]
            value = site["value"].detach()
            if _is_real(fn.support):
                transform, unconstrained = None, value
            else:
                transform = biject_to(fn.support)
                unconstrained = transform.inv(value)
            self._transforms[name] = transform
            self._event_dims[name] = fn.event_dim + unconstrained.dim() - value.dim()
            deep_setattr(self.locs, name, PyroParam(unconstrained.clone(), constraints.real))
            deep_setattr(
                self.scales,
                name,
                PyroParam(
                    torch.full_like(unconstrained, self._init_scale), constraints.softplus_positive
                ),
            )

    def get_site_dist(self, name: str) -> dist.Distribution:
        """The factor q(W_name): a Normal, or a Normal pushed through the support's bijection."""
        loc = deep_getattr(self.locs, name)
        scale = deep_getattr(self.scales, name)
        q = dist.Normal(loc, scale)
        event_dim = self._event_dims[name]
        if event_dim:
            q = q.to_event(event_dim)
        transform = self._transforms[name]
        if transform is not None:
            q = dist.TransformedDistribution(q, transform.with_cache())
        return q

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every latent site from its factor; returns ``{site name: value}``."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return {
            name: pyro.sample(name, self.get_site_dist(name))
            for name, _ in self.prototype_trace.iter_stochastic_nodes()
        }

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Posterior medians (the means, mapped to each site's support)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        out = {}
        for name, _ in self.prototype_trace.iter_stochastic_nodes():
            loc = deep_getattr(self.locs, name)
            transform = self._transforms[name]
            out[name] = loc if transform is None else transform(loc)
        return out

    @torch.no_grad()
    def loc_scale(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{site: (loc, scale)}`` of the unconstrained Normal factors (after the first call)."""
        if self.prototype_trace is None:
            raise RuntimeError("The guide has no parameters yet: call it (or fit) once first.")
        return {
            name: (deep_getattr(self.locs, name).detach(), deep_getattr(self.scales, name).detach())
            for name, _ in self.prototype_trace.iter_stochastic_nodes()
        }


_INIT_LOCS = {"net": init_to_net, "median": init_to_median, "sample": init_to_sample}


class MeanFieldNormal:
    """Builder of the mean-field Gaussian guide: ``MeanFieldNormal(...)(model) -> AutoGuide``.

    :param init_scale: initial standard deviation of every weight (> 0). Small values start the
        fit near the network's point estimate.
    :param init_loc: ``"net"`` (the network's current weights), ``"median"`` (prior median),
        ``"sample"`` (a prior draw), or any Pyro ``init_loc_fn``.

    Example::

        >>> bnn = BNN(net, IIDPrior(dist.Normal(0., 1.)), Categorical(),  # doctest: +SKIP
        ...           guide=MeanFieldNormal(init_scale=1e-3))
    """

    def __init__(self, init_scale: float = 1e-2, init_loc: str | Callable = "net") -> None:
        if not init_scale > 0:
            raise ValueError(f"Expected init_scale > 0, but got {init_scale}.")
        if isinstance(init_loc, str):
            if init_loc not in _INIT_LOCS:
                raise ValueError(
                    f"Expected init_loc in {sorted(_INIT_LOCS)} or a callable, "
                    f"but got {init_loc!r}."
                )
        elif not callable(init_loc):
            raise TypeError(f"Expected init_loc to be a string or callable, but got {init_loc!r}.")
        self.init_scale = float(init_scale)
        self.init_loc = init_loc

    def __call__(self, model: Callable) -> AutoMeanFieldNormal:
        fn = _INIT_LOCS[self.init_loc] if isinstance(self.init_loc, str) else self.init_loc
        return AutoMeanFieldNormal(model, init_loc_fn=fn, init_scale=self.init_scale)

    def __repr__(self) -> str:
        return f"MeanFieldNormal(init_scale={self.init_scale}, init_loc={self.init_loc!r})"


def build_guide(spec: GuideLike, model: Callable) -> Callable:
    """Build the guide for ``model`` from a builder, an AutoGuide class or ``None``.

    An AutoGuide class is instantiated as ``cls(model)``, with ``init_loc_fn=init_to_net`` when the
    class accepts it (so it starts at the network's weights). ``None`` means
    :class:`MeanFieldNormal` with its defaults.

    Example::

        >>> from pyro.infer.autoguide import AutoDelta
        >>> guide = build_guide(AutoDelta, bnn.model)  # doctest: +SKIP
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
    if not callable(spec):
        raise TypeError(
            "Expected guide to be a builder model -> guide (e.g. MeanFieldNormal()), an AutoGuide "
            f"class, or None, but got {type(spec).__name__}."
        )
    guide = spec(model)
    if not callable(guide):
        raise TypeError(
            f"Expected the guide builder to return a callable guide, but got {guide!r}."
        )
    return guide
