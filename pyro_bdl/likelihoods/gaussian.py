"""Gaussian likelihoods: one noise scale for all data, or a scale predicted per input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.nn import PyroParam
from torch import Tensor
from torch.distributions import Distribution

from .._checks import check_float
from ..distributions.config import distribution_config, distribution_from_config
from ..nn import cast_distribution
from ..uncertainty import Prediction
from .base import PRECISION, ElementwiseLikelihood, base_distribution

__all__ = ["HomoskedasticGaussian", "HeteroskedasticGaussian"]


class _Gaussian(ElementwiseLikelihood):
    kind = "gaussian"

    def prediction(self, d: Distribution) -> Prediction:
        base = base_distribution(d, torch.distributions.Normal, type(self).__name__)
        return Prediction("gaussian", samples=base.loc, scale=base.scale.expand_as(base.loc))


class HomoskedasticGaussian(_Gaussian):
    """Gaussian likelihood with one noise scale for all data.

    The scale is fixed (``scale=float``), learned as a point estimate (``scale=None``), or given a
    prior on the precision τ = σ⁻² (``precision_prior=dist.Gamma(a, b)``), which adds the global
    latent site ``"precision"`` that the guide fits alongside the weights.

    :param scale: fixed noise standard deviation, or ``None``.
    :param precision_prior: prior on the precision (positive support); excludes ``scale``.
    :param init_scale: starting value of a learned scale.

    Example::

        >>> lik = HomoskedasticGaussian(scale=0.1)
        >>> lik.predictive_dist(torch.zeros(5, 1)).scale  # outputs (N, 1): targets (N,)
        tensor([0.1000, 0.1000, 0.1000, 0.1000, 0.1000])
    """

    def __init__(
        self,
        scale: float | None = None,
        *,
        precision_prior: Distribution | None = None,
        init_scale: float = 1.0,
        dataset_size: int | None = None,
    ) -> None:
        super().__init__(dataset_size)
        if scale is not None and precision_prior is not None:
            raise ValueError(
                "Expected either a fixed scale or a precision_prior, but got both; pass one."
            )
        if scale is not None:
            check_float("scale", scale)
        check_float("init_scale", init_scale)
        if precision_prior is not None:
            if not isinstance(precision_prior, Distribution):
                raise TypeError(
                    "Expected precision_prior to be a Distribution such as dist.Gamma(1., 1.), "
                    f"but got {type(precision_prior).__name__}."
                )
            support = precision_prior.support
            lower = getattr(support, "lower_bound", None)
            if lower is None or lower < 0 or hasattr(support, "upper_bound"):
                raise ValueError(
                    "Expected a precision prior with positive support (e.g. dist.Gamma), but got "
                    f"support {precision_prior.support}."
                )
        self.fixed_scale = None if scale is None else float(scale)
        self.precision_prior = precision_prior
        self.init_scale = float(init_scale)
        if scale is None and precision_prior is None:
            # created on the CPU, whatever torch's default device; BNN moves it to the net's
            init = torch.tensor(float(init_scale), device="cpu")
            self.scale = PyroParam(init, constraints.positive)

    def config(self) -> dict[str, Any] | None:
        prior = None
        if self.precision_prior is not None:
            prior = distribution_config(self.precision_prior)
            if prior is None:
                return None
        return {
            "scale": self.fixed_scale,
            "precision_prior": prior,
            "init_scale": self.init_scale,
            "dataset_size": self.dataset_size,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **context: Any) -> HomoskedasticGaussian:
        """Rebuild from :meth:`config` (a precision prior described as data)."""
        cfg = dict(config)
        if cfg.get("precision_prior") is not None:
            cfg["precision_prior"] = distribution_from_config(cfg["precision_prior"])
        return cls(**cfg, **context)

    def noise_scale(self, like: Tensor) -> Tensor:
        """The noise std for this call: fixed, learned, or ``precision ** -0.5`` sampled.

        :param like: a tensor whose dtype and device the scale takes.
        :return: a scalar, or ``sample_shape + (1,)`` for a sampled precision.

        Example::

            >>> HomoskedasticGaussian(scale=0.1).noise_scale(torch.zeros(3))
            tensor(0.1000)
        """
        if self.fixed_scale is not None:
            return torch.tensor(self.fixed_scale, dtype=like.dtype, device=like.device)
        if self.precision_prior is not None:
            prior = cast_distribution(self.precision_prior, like)
            # pyro.sample is typed for Pyro's distributions; a torch one works as well
            return pyro.sample(PRECISION, cast(TorchDistributionMixin, prior)).rsqrt()
        # PyroModule returns the PyroParam set in __init__ as its constrained tensor
        return cast(Tensor, self.scale).to(like)

    def predictive_dist(self, f: Tensor, sample_ndim: int = 0) -> Distribution:
        (loc,) = self._split(f, sample_ndim)
        scale = self.noise_scale(loc)
        event = loc.dim() - sample_ndim - 1
        # a sampled precision has batch shape sample_shape + (1,): already aligned with the plate
        scale = scale.reshape(scale.shape + (1,) * event) if scale.dim() else scale
        return self._event(dist.Normal(loc, scale), event)

    def prediction_from_outputs(self, f: Tensor, sample_ndim: int = 1) -> Prediction:
        """The Gaussian Prediction of stacked outputs, without building the Normal first.

        Example::

            >>> pred = HomoskedasticGaussian(0.5).prediction_from_outputs(torch.zeros(3, 4, 1))
            >>> pred.samples.shape, pred.scale[0, 0].item()
            (torch.Size([3, 4]), 0.5)
        """
        if self.precision_prior is not None:
            return super().prediction_from_outputs(f, sample_ndim)
        (loc,) = self._split(f, sample_ndim)
        return Prediction("gaussian", samples=loc, scale=self.noise_scale(loc).expand_as(loc))

    def log_density(self, f: Tensor, y: Tensor, sample_ndim: int = 0) -> Tensor:
        """Normal log density, term for term as ``torch.distributions.Normal.log_prob``.

        Example::

            >>> HomoskedasticGaussian(1.0).log_density(torch.zeros(2, 1), torch.ones(2))
            tensor([-1.4189, -1.4189])
        """
        if self.precision_prior is not None:
            return super().log_density(f, y, sample_ndim)
        (loc,) = self._split(f, sample_ndim)
        scale = self.noise_scale(loc)
        lp = -((y - loc) ** 2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))
        event = loc.dim() - sample_ndim - 1
        return lp.sum(tuple(range(-event, 0))) if event else lp

    def __repr__(self) -> str:
        if self.fixed_scale is not None:
            return f"HomoskedasticGaussian(scale={self.fixed_scale})"
        if self.precision_prior is not None:
            return f"HomoskedasticGaussian(precision_prior={self.precision_prior})"
        learned = float(cast(Tensor, self.scale).detach())  # its current value, no autograd
        return f"HomoskedasticGaussian(scale=learned, now {learned:.4g})"


class HeteroskedasticGaussian(_Gaussian):
    """Gaussian likelihood whose scale is predicted per input.

    The network outputs ``2·D`` numbers per datum: the first half is the location, the second an
    unconstrained scale mapped through ``softplus(·) + min_scale``.

    :param min_scale: lower bound added to the scale (>= 0).

    Example::

        >>> d = HeteroskedasticGaussian().predictive_dist(torch.zeros(5, 2))
        >>> d.batch_shape, d.scale[0].item() > 0.69
        (torch.Size([5]), True)
    """

    outputs_per_target = 2

    def __init__(self, min_scale: float = 1e-6, dataset_size: int | None = None) -> None:
        super().__init__(dataset_size)
        check_float("min_scale", min_scale, allow_zero=True)
        self.min_scale = float(min_scale)

    def config(self) -> dict[str, Any] | None:
        return {"min_scale": self.min_scale, "dataset_size": self.dataset_size}

    def predictive_dist(self, f: Tensor, sample_ndim: int = 0) -> Distribution:
        loc, raw = self._split(f, sample_ndim)
        scale = F.softplus(raw) + self.min_scale
        return self._event(dist.Normal(loc, scale), loc.dim() - sample_ndim - 1)
