r"""A Normal observed through the moments of a Gaussian target (regression distillation).

:class:`ExpectedNormal` is the predictive distribution of
:class:`~pyro_bdl.likelihoods.distillation.GaussianDistillation`: the student's expected log
density under the teacher's Gaussian predictive, in closed form.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor
from torch.distributions.utils import broadcast_all

from .._checks import check_observation

__all__ = ["ExpectedNormal", "check_moments"]


def check_moments(name: str, y: Tensor) -> None:
    """Raise ``ValueError`` unless ``y[..., 1]`` (the teacher's variance) is >= 0.

    :param name: how the message names ``y``.
    :param y: Gaussian moments ``(..., 2)``: ``y[..., 0]`` the mean, ``y[..., 1]`` the variance.

    Example::

        >>> check_moments("y", torch.tensor([[0.3, 0.1], [-1.0, 0.0]]))  # passes
    """
    if y.numel() and float(y[..., 1].min()) < 0:
        raise ValueError(
            f"Expected the teacher's predictive variances {name}[..., 1] >= 0 (y[..., 0] is the "
            f"mean, y[..., 1] the variance), but got a minimum of {float(y[..., 1].min()):.3g}."
        )


class _MeanAndVariance(constraints.Constraint):
    """Gaussian moments ``(..., 2)``: a real mean and a variance >= 0."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        return torch.isfinite(value).all(-1) & (value[..., 1] >= 0)


class ExpectedNormal(TorchDistribution):
    r"""A Normal observed through the moments of a Gaussian target (regression distillation).

    An observation is a pair ``value[..., :] = (m, s²)``, the mean and variance of the teacher's
    Gaussian predictive; it is scored by the student's expected log density under it,

    .. math::

        \log p(m, s^2 \mid \mu, \sigma)
        = \mathbb E_{y \sim \mathcal N(m, s^2)}\left[\log \mathcal N(y; \mu, \sigma^2)\right]
        = -\tfrac12 \log(2 \pi \sigma^2) - \frac{(m - \mu)^2 + s^2}{2 \sigma^2}.

    A point observation :math:`y` is the pair :math:`(y, 0)`, for which this is
    ``Normal(mu, sigma).log_prob(y)``; :meth:`rsample` returns such pairs.

    :param loc: the student's mean :math:`\mu`, shape ``batch_shape``.
    :param scale: the student's standard deviation :math:`\sigma > 0`, broadcastable with ``loc``.

    Example::

        >>> d = ExpectedNormal(torch.zeros(3), torch.ones(3))
        >>> d.batch_shape, d.event_shape
        (torch.Size([3]), torch.Size([2]))
        >>> d.log_prob(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        tensor([-0.9189, -1.4189, -1.4189])
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = _MeanAndVariance()
    has_rsample = True

    def __init__(
        self, loc: Tensor | float, scale: Tensor | float, *, validate_args: bool | None = None
    ) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, torch.Size((2,)), validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> ExpectedNormal:
        new = self._get_checked_instance(ExpectedNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        super(ExpectedNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        value = check_observation(value, self.loc)
        if self._validate_args:
            check_moments("value", value)
            self._validate_sample(value)
        m, s2 = value[..., 0], value[..., 1]
        var = self.scale**2
        return -0.5 * torch.log(2 * math.pi * var) - ((m - self.loc) ** 2 + s2) / (2 * var)

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))[:-1]
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        y = self.loc + self.scale * eps
        return torch.stack([y, torch.zeros_like(y)], dim=-1)

    @property
    def mean(self) -> Tensor:
        return torch.stack([self.loc, torch.zeros_like(self.loc)], dim=-1)

    @property
    def variance(self) -> Tensor:
        return torch.stack([self.scale**2, torch.zeros_like(self.scale)], dim=-1)
