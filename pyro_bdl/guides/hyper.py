r"""Trace-free draws and KL of a mean-field guide over a hierarchical prior's hyper-sites.

:class:`~pyro_bdl.guides.AutoMeanFieldNormal` covers a positive hyper-site (a scale) with a
Normal on its unconstrained value pushed through ``biject_to(support)`` (a log-normal). Its KL
to a half-Cauchy or inverse-gamma hyperprior has no closed form: per draw it is estimated as
:math:`\log q(h) - \log p(h)` -- exactly the Monte Carlo term the traced estimator
(:func:`~pyro_bdl.infer.elbo_terms`) computes for that site, from the same random numbers --
while the real sites (a non-centred prior's standard-normal ``"{site}_z"``) keep the closed-form
Gaussian KL of the plain mean-field sampler.

Measured cost per step (1-50-1 tanh net, N = 128, float64, shared 2-core CPU): IID N(0, 1)
3.8 ms trace-free; ``LayerScalePrior()`` 7.8 ms trace-free against 20.9 ms traced;
``HorseshoePrior(0.1)`` 11.3 ms against 28.5 ms; a centred prior (traced only) 16.6 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from pyro.distributions import constraints
from pyro.distributions.transforms import biject_to
from torch.distributions import Distribution, Normal

from .base import deep_getattr, normal_prior_parts

__all__ = ["ConstrainedSitesSampler", "constrained_sites_sampler"]


def constrained_sites_sampler(
    guide: Any,
    transforms: Mapping[str, Any],
    priors: Mapping[str, Any] | None,
    make_inner: Callable[[Any, Mapping[str, Any]], Any],
) -> ConstrainedSitesSampler | None:
    """The trace-free sampler of a mean-field guide with constrained sites, or ``None``.

    Applies when every constrained site (a hyper-site) comes before every real one in the
    model (so the random stream is the guide's), each constrained site has a prior (any
    distribution with a ``log_prob``) and each real site a Gaussian prior.

    :param guide: the :class:`~pyro_bdl.guides.AutoMeanFieldNormal` (its ``locs``/``scales``).
    :param transforms: ``{site: transform to the support, or None for a real site}`` in the
        guide's site order.
    :param priors: ``{site: prior}`` (``model.site_priors()``), or ``None`` for draws only.
    :param make_inner: ``(guide, {real site: (loc, scale) or None}) -> sampler`` of the real
        sites (the plain mean-field sampler).
    :return: a :class:`ConstrainedSitesSampler`, or ``None`` (the traced estimator is used).

    Example::

        >>> sampler = constrained_sites_sampler(guide, transforms, None, make)  # doctest: +SKIP
    """
    names = list(transforms)
    constrained = [n for n in names if transforms[n] is not None]
    real = [n for n in names if transforms[n] is None]
    if not real or names != constrained + real:
        return None
    if priors is None:
        return ConstrainedSitesSampler(
            guide, transforms, constrained, None, make_inner(guide, {n: None for n in real})
        )
    if set(priors) != set(names) or any(
        not isinstance(priors[n], Distribution) for n in constrained
    ):
        return None
    parts = {}
    for n in real:
        part = normal_prior_parts(priors[n], deep_getattr(guide.locs, n).shape)
        if part is None:
            return None
        parts[n] = part
    hyper = {n: priors[n] for n in constrained}
    return ConstrainedSitesSampler(guide, transforms, constrained, hyper, make_inner(guide, parts))


class ConstrainedSitesSampler:
    """Draws every site (constrained ones first) and the KL: Monte Carlo for the constrained
    sites, the inner sampler's closed form for the real ones.

    ``sampler(sample_shape=(), with_kl=True) -> ({site: draw of shape sample_shape + site
    shape}, KL as a 0-dim tensor or None)``, as :class:`~pyro_bdl.inference.TraceFreeELBO`
    and :class:`~pyro_bdl.inference.GuidePosterior` call it.

    Example::

        >>> draws, kl = sampler((4,))  # doctest: +SKIP
    """

    #: no per-example noise
    input_fns = None

    def __init__(
        self,
        guide: Any,
        transforms: Mapping[str, Any],
        constrained: list[str],
        priors: Mapping[str, Distribution] | None,
        inner: Any,
    ) -> None:
        self.constrained = list(constrained)
        self.transforms = {n: transforms[n] for n in constrained}
        self.locs = {n: deep_getattr(guide.locs, n).unconstrained() for n in constrained}
        self.rhos = {n: deep_getattr(guide.scales, n).unconstrained() for n in constrained}
        self.priors = priors
        self.inner = inner
        self.names = self.constrained + list(inner.names)
        self.params = list(self.locs.values()) + list(self.rhos.values()) + list(inner.params)
        self.softplus = biject_to(constraints.softplus_positive)

    def __call__(
        self, sample_shape: tuple[int, ...] = (), with_kl: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """``({site: draw of shape sample_shape + site shape}, KL or None)``."""
        lead = tuple(sample_shape)
        draws: dict[str, torch.Tensor] = {}
        mc: torch.Tensor | None = None
        for n in self.constrained:
            loc, scale = self.locs[n], self.softplus(self.rhos[n])
            eps = torch.empty(lead + tuple(loc.shape), dtype=loc.dtype, device=loc.device)
            u = loc + eps.normal_() * scale
            t = self.transforms[n]
            h = t(u)
            draws[n] = h
            if with_kl:
                if self.priors is None:
                    raise RuntimeError("This sampler was built without priors: it has no KL.")
                log_q = Normal(loc, scale).log_prob(u).sum() - t.log_abs_det_jacobian(u, h).sum()
                term = log_q - self.priors[n].log_prob(h).sum()
                mc = term if mc is None else mc + term
        inner_draws, inner_kl = self.inner(sample_shape, with_kl)
        draws.update(inner_draws)
        if not with_kl:
            return draws, None
        particles = 1
        for d in lead:
            particles *= d
        assert mc is not None and inner_kl is not None
        return draws, inner_kl + mc / particles
