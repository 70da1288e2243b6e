r"""Tempered and learned priors on the trace-free ELBO.

The trace-free estimator (:class:`~pyro_bdl.inference.elbo.TraceFreeELBO`) takes the KL of the
guide to a Gaussian prior in closed form, from a sampler the guide builds once per fit
(``guide.trace_free_sampler(priors, model)``). Two things change that prior:

* a **temperature** :math:`T` (:attr:`BayesianModel.temperature
  <pyro_bdl.model.BayesianModel.temperature>`): the tempered objective needs
  :math:`\mathbb E_q[\log q - \log p(W) / T]` instead of the KL, and for a Gaussian prior

  .. math::

      \frac 1T \log \mathcal N(w; m, s^2) = \log \mathcal N(w; m, T s^2) + c, \qquad
      c = \Bigl(1 - \frac 1T\Bigr)\Bigl(\log s + \tfrac12 \log 2\pi\Bigr) + \tfrac12 \log T,

  so it is the closed-form KL to :math:`\mathcal N(m, T s^2)` minus :math:`\sum c`
  (:func:`tempered_priors`), exactly what the traced estimator computes as
  :math:`\mathrm{KL}/T + (1/T - 1)\,\mathrm H[q]`;
* **learned prior scales** (empirical Bayes, :class:`~pyro_bdl.priors.LearnedNormalPrior`): the
  sampler is rebuilt from the current scales every step (:class:`PriorSampler`), so the KL and
  its gradient see this step's prior.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pyro.distributions as dist
import torch

from ..guides.base import normal_prior_parts

if TYPE_CHECKING:
    from ..model import BayesianModel

__all__ = ["tempered_normal", "tempered_priors", "PriorSampler"]


def tempered_normal(prior: Any, temperature: float) -> tuple[Any, torch.Tensor] | None:
    r"""A Gaussian prior raised to the power :math:`1/T`: a Gaussian and a constant.

    :param prior: ``Normal`` or ``Independent(Normal)`` (any batch shape).
    :param temperature: :math:`T > 0`.
    :return: ``(p_T, c)`` with :math:`\frac 1T \log p(w) = \log p_T(w) + c` for every ``w``:
        ``p_T`` the same family with scale :math:`\sqrt T s`, ``c`` of the prior's batch shape
        (summed over its event dimensions); ``None`` if the prior is not Gaussian.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> p = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
        >>> p_t, c = tempered_normal(p, 0.5)
        >>> w = torch.tensor([0.5, -1.0])
        >>> bool(torch.isclose(p.log_prob(w) / 0.5, p_t.log_prob(w) + c))
        True
    """
    base, ndims = prior, 0
    if isinstance(prior, torch.distributions.Independent):
        base, ndims = prior.base_dist, prior.reinterpreted_batch_ndims
    if type(base) not in (torch.distributions.Normal, dist.Normal):
        return None
    inv = 1.0 / temperature
    c = (1.0 - inv) * (base.scale.log() + 0.5 * math.log(2 * math.pi)) + 0.5 * math.log(temperature)
    c = c.expand(base.batch_shape)
    out: Any = dist.Normal(base.loc, base.scale * math.sqrt(temperature))
    if ndims:
        out = out.to_event(ndims)
        c = c.sum(tuple(range(-ndims, 0)))
    return out, c


def tempered_priors(
    priors: Mapping[str, Any], temperature: float
) -> tuple[dict[str, Any], torch.Tensor | float] | None:
    r"""Gaussian site priors raised to the power :math:`1/T`, as Gaussians and a constant.

    :param priors: ``{site: prior}``, each ``Normal`` / ``Independent(Normal)`` over the whole
        site (event shape = the site's shape), as :meth:`BayesianModel.site_priors
        <pyro_bdl.model.BayesianModel.site_priors>` gives them.
    :param temperature: :math:`T > 0`.
    :return: ``({site: N(m, T s^2) over the site}, C)`` with
        :math:`\sum_{\text{sites}} \frac 1T \log p(w) = \sum \log p_T(w) + C` for every ``w``
        (``C`` a 0-dim tensor, differentiable in learned scales; ``0.0`` at ``T = 1``, where the
        priors are returned unchanged), or ``None`` if a prior is not Gaussian.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> p = {"w": dist.Normal(torch.zeros(3), 2.0 * torch.ones(3)).to_event(1)}
        >>> tempered, c = tempered_priors(p, 0.25)
        >>> tempered["w"].base_dist.scale  # s * sqrt(T)
        tensor([1., 1., 1.])
        >>> w = torch.tensor([0.3, -1.0, 2.0])
        >>> bool(torch.isclose(p["w"].log_prob(w) / 0.25, tempered["w"].log_prob(w) + c))
        True
    """
    if temperature == 1.0:
        return dict(priors), 0.0
    out: dict[str, Any] = {}
    total: torch.Tensor | float = 0.0
    for site, prior in priors.items():
        shape = torch.Size(tuple(prior.batch_shape) + tuple(prior.event_shape))
        parts = normal_prior_parts(prior, shape)
        if parts is None:
            return None
        made = tempered_normal(dist.Normal(*parts).to_event(len(shape)), temperature)
        assert made is not None  # a Gaussian
        out[site], c = made
        total = total + c.sum()
    return out, total


class PriorSampler:
    """The guide's trace-free sampler for the model's current (tempered) priors.

    ``source()`` returns ``(sampler, C)``: ``guide.trace_free_sampler(priors, model)`` built on
    :func:`tempered_priors` of ``model.site_priors()`` at the model's temperature, and the
    constant ``C`` to subtract from its KL. A model with learned prior scales
    (:attr:`learned`) is rebuilt every step, so the KL sees each step's scales.

    :param model: the :class:`~pyro_bdl.model.BayesianModel`.
    :param make: ``guide.trace_free_sampler``.

    Example::

        >>> model = bnn.bayesian_model  # doctest: +SKIP
        >>> sampler, offset = PriorSampler(model, bnn.guide.trace_free_sampler)()  # doctest: +SKIP
    """

    def __init__(self, model: BayesianModel, make: Callable[..., Any]) -> None:
        self.model, self.make = model, make
        self.temperature = model.temperature
        #: the prior's learned parameters (empty: the sampler is built once)
        self.learned = model.prior_parameters()

    def __call__(self) -> tuple[Any, torch.Tensor | float]:
        """``(sampler or None, C)`` for the current priors (``None``: not Gaussian / no sampler)."""
        made = tempered_priors(self.model.site_priors(), self.temperature)
        if made is None:
            return None, 0.0
        priors, offset = made
        return self.make(priors, self.model), offset

    def follows_learned(self) -> bool:
        """Whether the sampler's KL has a gradient for every learned prior parameter (a guide
        whose sampler keeps a copy of the prior could not learn it on the trace-free path).

        Builds and runs one sampler with gradients on, without touching the random stream.
        """
        if not self.learned:
            return True
        with torch.enable_grad(), self.model.side_effect_free():
            sampler, offset = self()
            if sampler is None:
                return False
            _, kl = sampler(())
        if kl is None or not kl.requires_grad:
            return False
        grads = torch.autograd.grad(kl, self.learned, allow_unused=True)
        return all(g is not None for g in grads)
