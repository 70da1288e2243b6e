"""The ELBO split into its two terms, for any model/guide pair.

:func:`elbo_terms` estimates

.. math::

    \\mathcal L = \\underbrace{\\mathbb E_q[\\log p(y \\mid x, W)]}_{\\text{loglik}}
    - \\underbrace{\\mathrm{KL}(q(W) \\,\\|\\, p(W))}_{\\text{kl}}

in nats, with the data term scaled to the data set by the data plate. It is the estimator of
:class:`pyro.infer.TraceMeanField_ELBO` (the KL in closed form wherever
:func:`torch.distributions.kl_divergence` knows the pair, Monte Carlo otherwise), returned term by
term, which Pyro's ELBO classes do not do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from torch.distributions import kl_divergence

__all__ = ["ELBOTerms", "elbo_terms", "PARTICLE_PLATE"]

PARTICLE_PLATE = "num_particles_vectorized"


@dataclass(frozen=True)
class ELBOTerms:
    """The two terms of an ELBO estimate (scalars, nats, for the whole data set)."""

    loglik: torch.Tensor
    kl: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        """``loglik - kl``."""
        return self.loglik - self.kl

    @property
    def loss(self) -> torch.Tensor:
        """``kl - loglik``, the quantity SVI minimises."""
        return self.kl - self.loglik


def _site_log_prob_sum(site: dict[str, Any]) -> torch.Tensor:
    lp = site["fn"].log_prob(site["value"])
    return scale_and_mask(lp, site["scale"], site["mask"]).sum()


def _one_trace_pair(
    model: Callable, guide: Callable, args: tuple, kwargs: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    loglik = torch.zeros(())
    kl = torch.zeros(())
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        if site["is_observed"]:
            loglik = loglik + _site_log_prob_sum(site)
            continue
        gsite = guide_trace.nodes.get(name)
        if gsite is None:  # a model latent the guide does not cover: sampled from the prior
            continue
        try:
            k = kl_divergence(gsite["fn"], site["fn"])
        except NotImplementedError:
            kl = kl + _site_log_prob_sum(gsite) - _site_log_prob_sum(site)
        else:
            kl = kl + scale_and_mask(k, gsite["scale"], gsite["mask"]).sum()
    for name, gsite in guide_trace.nodes.items():  # auxiliary guide sites contribute log q
        if gsite["type"] == "sample" and name not in model_trace.nodes:
            kl = kl + _site_log_prob_sum(gsite)
    return loglik, kl


def elbo_terms(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_particles: int = 1,
    vectorize_particles: bool = True,
    max_plate_nesting: int = 1,
    **kwargs: Any,
) -> ELBOTerms:
    """Estimate the expected log-likelihood and the KL of a model/guide pair.

    With ``vectorize_particles`` the particles are drawn under a plate at dim
    ``-(max_plate_nesting + 1)``, exactly as :class:`~pyro.infer.Trace_ELBO` does, so the same
    seed gives the same draws and the same estimate as Pyro's ELBO.

    :param model: Pyro model.
    :param guide: Pyro guide with reparameterised sites.
    :param num_particles: number of draws averaged.
    :param vectorize_particles: draw all particles in one vectorised pass.
    :param max_plate_nesting: plates of the model (1 for a :class:`~pyro_bdl.BNN`).
    :return: :class:`ELBOTerms` with scalar ``loglik`` and ``kl`` (nats, full data set).

    Example::

        >>> terms = elbo_terms(bnn.model, bnn.guide, x, y, num_particles=8)  # doctest: +SKIP
        >>> loss = terms.loss; loss.backward()  # doctest: +SKIP
    """
    if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
        raise ValueError(f"Expected num_particles to be a positive int, but got {num_particles!r}.")
    if vectorize_particles and num_particles > 1:
        plate = pyro.plate(PARTICLE_PLATE, num_particles, dim=-(max_plate_nesting + 1))
        loglik, kl = _one_trace_pair(plate(model), plate(guide), args, kwargs)
        return ELBOTerms(loglik / num_particles, kl / num_particles)
    pairs = [_one_trace_pair(model, guide, args, kwargs) for _ in range(num_particles)]
    return ELBOTerms(
        sum(p[0] for p in pairs) / num_particles, sum(p[1] for p in pairs) / num_particles
    )
