"""The dropout variational factor of one weight, and its KL to a Gaussian prior.

:class:`MaskedWeight` is q(W) = M diag(z) with keep masks z ~ Bernoulli(1 - p) (or relaxed,
concrete masks); its KL to a Gaussian prior is registered with ``torch.distributions.kl``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution, constraints
from torch.distributions import register_kl

__all__ = ["MaskedWeight", "binary_entropy", "relaxed_keep_mask"]


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = -p log p - (1 - p) log(1 - p), elementwise (0 at p = 0 and 1).

    Example::

        >>> binary_entropy(torch.tensor([0.5, 1.0])).abs()
        tensor([0.6931, 0.0000])
    """
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


class MaskedWeight(TorchDistribution):
    r"""The dropout variational factor of one weight: a point at :math:`M\,\mathrm{diag}(z)`.

    .. math:: W = M\,\mathrm{diag}(z), \qquad z_k \sim \mathrm{Bernoulli}(1 - p)

    with one :math:`z_k` per input unit (axis ``mask_dim`` of ``W``: the columns of a linear weight,
    the input channels of a convolution). ``mask_dim=None`` is a point mass at ``M`` (how biases are
    treated). With ``temperature`` the mask is the relaxed (concrete) Bernoulli of Gal et al.
    (2017), reparameterised in ``p``. ``per_example=True`` returns ``M`` itself: the masks are then
    drawn per data point by :class:`PerExampleMasks` on the layer inputs.

    ``log_prob(value)`` is :math:`\log q(z)` of the mask drawn by the last ``rsample`` (the
    density of W relative to the counting measure over masks), so a Monte-Carlo KL
    :math:`\log q - \log p` is unbiased for :math:`\mathbb E_q[-\log p(W)] - K\,H(p)`. Against
    a Gaussian prior the KL is computed in closed form (registered with
    :func:`torch.distributions.kl_divergence`).

    :param loc: the variational parameter M (shape = the parameter's shape).
    :param p: drop probability, a 0-dim tensor in [0, 1).
    :param mask_dim: axis of ``loc`` carrying the input units, or ``None``.
    :param temperature: concrete relaxation temperature, or ``None`` for hard masks.
    :param per_example: emit M and leave the masking to :class:`PerExampleMasks`.

    Example::

        >>> q = MaskedWeight(torch.ones(2, 3), torch.tensor(0.5), mask_dim=1)
        >>> w = q.rsample()  # each column of ones is kept or zeroed
        >>> bool(((w == 0) | (w == 1)).all())
        True
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        p: torch.Tensor,
        mask_dim: int | None,
        *,
        temperature: float | None = None,
        per_example: bool = False,
        batch_shape: Sequence[int] = (),
        validate_args: bool | None = None,
    ) -> None:
        self.loc, self.p, self.mask_dim = loc, p, mask_dim
        self.temperature, self.per_example = temperature, per_example
        self._mask: torch.Tensor | None = None
        super().__init__(torch.Size(batch_shape), loc.shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, len(self.event_shape))

    @property
    def num_units(self) -> int:
        """K, the number of input units that are dropped together (0 for a point mass)."""
        return 0 if self.mask_dim is None else self.loc.shape[self.mask_dim]

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> MaskedWeight:
        return MaskedWeight(
            self.loc,
            self.p,
            self.mask_dim,
            temperature=self.temperature,
            per_example=self.per_example,
            batch_shape=batch_shape,
        )

    def with_per_example_masks(self) -> MaskedWeight:
        """The same factor with the masking left to the layer inputs."""
        return MaskedWeight(
            self.loc,
            self.p,
            self.mask_dim,
            temperature=self.temperature,
            per_example=True,
            batch_shape=self.batch_shape,
        )

    @property
    def mean(self) -> torch.Tensor:
        keep = 1 - self.p if self.mask_dim is not None else 1.0
        return (keep * self.loc).expand(self.batch_shape + self.event_shape)

    def rsample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        if self.mask_dim is None or self.per_example:
            return self.loc.expand(shape + self.event_shape)
        k = self.num_units
        keep = (1 - self.p).expand(shape + (k,))
        if self.temperature is None:
            z = torch.bernoulli(keep.detach())
        else:
            z = relaxed_keep_mask(
                self.p,
                torch.rand(shape + (k,), dtype=self.loc.dtype, device=self.loc.device),
                self.temperature,
            )
        self._mask = z
        ndim = len(self.event_shape)
        view = shape + (1,) * self.mask_dim + (k,) + (1,) * (ndim - self.mask_dim - 1)
        mask = z.reshape(view)
        return self.loc * mask

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self.mask_dim is None:
            return torch.zeros(self.batch_shape, dtype=self.loc.dtype, device=self.loc.device)
        if self.per_example or self.temperature is not None or self._mask is None:
            raise ValueError(
                "The dropout factor has no tractable log-density here: per-example or relaxed "
                "(concrete) masks need a Gaussian prior, whose KL is closed form. Use a Normal "
                "prior, or BernoulliDropout(estimator='per_particle') for other priors."
            )
        return dist.Bernoulli(1 - self.p).log_prob(self._mask).sum(-1)


def relaxed_keep_mask(p: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""Concrete relaxation of a keep indicator :math:`1 - \mathrm{Bernoulli}(p)` (Gal et al. 2017).

    .. math::

        \tilde z = 1 - \sigma\!\left(\frac{\log p - \log(1-p) + \log u - \log(1-u)}{t}\right)

    :param p: drop probability (broadcasts against ``u``).
    :param u: uniform noise in (0, 1).
    :param temperature: t > 0 (0.1 in the paper).

    Example::

        >>> relaxed_keep_mask(torch.tensor(0.5), torch.tensor([1e-6, 0.5, 1 - 1e-6]), 0.1)
        tensor([1.0000, 0.5000, 0.0000])
    """
    eps = torch.finfo(u.dtype).eps
    logit = torch.log(p + eps) - torch.log1p(-p + eps) + torch.log(u + eps) - torch.log1p(-u + eps)
    return 1 - torch.sigmoid(logit / temperature)


def _kl_masked_normal(q: MaskedWeight, prior: Any) -> torch.Tensor:
    base, ndims = prior, 0
    if isinstance(prior, torch.distributions.Independent):
        base, ndims = prior.base_dist, prior.reinterpreted_batch_ndims
    if type(base) not in (torch.distributions.Normal, dist.Normal) or ndims != len(q.event_shape):
        raise NotImplementedError
    keep = 1 - q.p if q.mask_dim is not None else torch.ones_like(q.p)
    m, mu, var = q.loc, base.loc, base.scale**2
    # E_q[-log N(W; mu, var)] with E[z] = E[z^2] = 1 - p
    cross = 0.5 * torch.log(2 * math.pi * var) + (keep * m**2 - 2 * keep * mu * m + mu**2) / (
        2 * var
    )
    if ndims:
        cross = cross.sum(tuple(range(-ndims, 0)))
    entropy = q.num_units * binary_entropy(q.p) if q.mask_dim is not None else 0.0
    return (cross - entropy).expand(torch.broadcast_shapes(q.batch_shape, prior.batch_shape))


register_kl(MaskedWeight, torch.distributions.Independent)(_kl_masked_normal)
register_kl(MaskedWeight, torch.distributions.Normal)(_kl_masked_normal)
