"""Likelihoods p(y | f_W(x)): each emits exactly one ``"obs"`` site under the data plate.

The data plate is ``pyro.plate("data", size=dataset_size, subsample=...)``, so a minibatch of B
points is scaled by ``dataset_size / B`` and the ELBO is the full-data ELBO for any minibatch.

Network outputs ``f`` have shape ``sample_shape + (N,) + out_shape``, where ``sample_shape`` are
leading draw dimensions (``sample_ndim`` of them: particles or posterior draws).
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam
from torch.distributions import Distribution

from .nn import cast_distribution, check_float
from .uncertainty import Prediction

__all__ = [
    "Likelihood",
    "Categorical",
    "Bernoulli",
    "HomoskedasticGaussian",
    "HeteroskedasticGaussian",
    "OBS",
    "PRECISION",
]

#: Name of the observation site emitted by every likelihood.
OBS = "obs"
#: Name of the noise-precision site of :class:`HomoskedasticGaussian` with a precision prior.
PRECISION = "precision"


def _check_finite(name: str, t: torch.Tensor) -> None:
    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(
            f"Expected finite values in {name}, but found {bad} NaN/inf entr"
            f"{'y' if bad == 1 else 'ies'}; remove or impute them before fitting."
        )


def _check_outputs(f: Any, sample_ndim: int) -> None:
    if not torch.is_tensor(f):
        raise TypeError(
            f"Expected network outputs f as a torch.Tensor, but got {type(f).__name__}."
        )
    if not f.is_floating_point():
        raise TypeError(f"Expected floating-point network outputs, but got dtype {f.dtype}.")
    if f.dim() < sample_ndim + 1 or f.shape[sample_ndim] == 0:
        raise ValueError(
            f"Expected network outputs of shape sample_shape + (N, ...) with {sample_ndim} sample "
            f"dim(s) and N >= 1, but got shape {tuple(f.shape)}."
        )


class Likelihood(PyroModule):
    """Base class: an observation model with exactly one sample site, ``"obs"``.

    Subclasses implement :meth:`predictive_dist` (the distribution of y given network outputs,
    batch shape ``sample_shape + (N,)``), :meth:`check_target` and :meth:`prediction`.

    :param dataset_size: number of data points N the ELBO is scaled to. ``None`` means: the size
        ``BNN.fit`` is given, or the current batch when the model is called directly.

    Example::

        >>> lik = Categorical(dataset_size=60000)
        >>> # inside a model: lik(logits, y) emits pyro.sample("obs", ..., obs=y)
    """

    #: kind of :class:`~pyro_bdl.uncertainty.Prediction` this likelihood produces.
    kind: str = ""

    def __init__(self, dataset_size: int | None = None) -> None:
        super().__init__()
        if dataset_size is not None and (
            isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1
        ):
            raise ValueError(
                f"Expected dataset_size to be a positive int, but got {dataset_size!r}."
            )
        self.dataset_size = dataset_size

    # -- the one method a subclass really needs -------------------------------------------------
    def predictive_dist(self, f: torch.Tensor, sample_ndim: int = 0) -> Distribution:
        """Distribution of y given outputs ``f`` (batch shape ``f.shape[:sample_ndim + 1]``)."""
        raise NotImplementedError

    def check_target(self, y: torch.Tensor, f: torch.Tensor, sample_ndim: int = 0) -> torch.Tensor:
        """Validate targets ``y`` (shape ``(N, ...)``) against outputs ``f``; return y as used."""
        raise NotImplementedError

    def prediction(self, d: Distribution) -> Prediction:
        """Turn per-draw predictive distributions (batch ``(S, N)``) into a Prediction."""
        raise NotImplementedError

    def prediction_from_outputs(self, f: torch.Tensor, sample_ndim: int = 1) -> Prediction:
        """``prediction(predictive_dist(f, sample_ndim))``: the Prediction of stacked outputs.

        Subclasses may build it without the intermediate distribution (``BNN.predict`` calls it
        once per prediction, on outputs ``(S, N, ...)``).

        Example::

            >>> HomoskedasticGaussian(0.5).prediction_from_outputs(torch.zeros(3, 4, 1)).kind
            'gaussian'
        """
        return self.prediction(self.predictive_dist(f, sample_ndim))

    def log_density(self, f: torch.Tensor, y: torch.Tensor, sample_ndim: int = 0) -> torch.Tensor:
        """``predictive_dist(f, sample_ndim).log_prob(y)``, shape ``f.shape[:sample_ndim + 1]``.

        Subclasses may compute it without building the distribution (the trace-free SVI step
        calls it every step, on targets already checked by :meth:`check_target`).

        Example::

            >>> HomoskedasticGaussian(1.0).log_density(torch.zeros(2, 1), torch.zeros(2))
            tensor([-0.9189, -0.9189])
        """
        return self.predictive_dist(f, sample_ndim).log_prob(y)

    def config(self) -> dict | None:
        """JSON-able constructor arguments (for ``BNN.save``), or ``None`` if not describable."""
        return {"dataset_size": self.dataset_size}

    def validate_target(self, y: torch.Tensor) -> None:
        """Value checks on a whole target tensor (finite, right dtype), done once before fitting."""
        if not torch.is_tensor(y):
            raise TypeError(f"Expected y to be a torch.Tensor, but got {type(y).__name__}.")
        _check_finite("y", y)

    # -- shared machinery -----------------------------------------------------------------------
    def forward(
        self,
        f: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        dataset_size: int | None = None,
        sample_ndim: int = 0,
    ) -> torch.Tensor:
        """Emit ``pyro.sample("obs", p(y | f), obs=y)`` under the data plate.

        :param f: network outputs, shape ``sample_shape + (N,) + out_shape``.
        :param y: targets, shape ``(N,) + target_shape``, or ``None`` to sample.
        :param dataset_size: overrides :attr:`dataset_size` for this call.
        :param sample_ndim: number of leading draw dimensions of ``f``.
        :return: the observed or sampled y.
        """
        _check_outputs(f, sample_ndim)
        if y is not None:
            y = self.check_target(y, f, sample_ndim)
        d = self.predictive_dist(f, sample_ndim)
        n = f.shape[sample_ndim]
        size = dataset_size or self.dataset_size or n
        if size < n:
            raise ValueError(
                f"Expected dataset_size >= the batch size, but got dataset_size={size} for a "
                f"batch of {n} points."
            )
        with pyro.plate("data", size=size, subsample=torch.arange(n, device=f.device), dim=-1):
            return pyro.sample(OBS, d, obs=y)

    @staticmethod
    def _check_rows(y: torch.Tensor, f: torch.Tensor, sample_ndim: int) -> None:
        if y.dim() == 0 or y.shape[0] != f.shape[sample_ndim]:
            raise ValueError(
                f"Expected y with {f.shape[sample_ndim]} rows to match the network output of "
                f"shape {tuple(f.shape[sample_ndim:])}, but got y of shape {tuple(y.shape)}."
            )


class Categorical(Likelihood):
    """Categorical likelihood on logits: the network outputs ``(N, C)``; labels are ``(N,)`` longs.

    Example::

        >>> lik = Categorical()
        >>> d = lik.predictive_dist(torch.zeros(4, 3))
        >>> d.batch_shape
        torch.Size([4])
    """

    kind = "categorical"

    def predictive_dist(self, f: torch.Tensor, sample_ndim: int = 0) -> Distribution:
        if f.dim() != sample_ndim + 2:
            raise ValueError(
                "Expected network outputs of shape (N, num_classes) for a Categorical likelihood, "
                f"but got per-draw shape {tuple(f.shape[sample_ndim:])}."
            )
        return dist.Categorical(logits=f)

    def validate_target(self, y: torch.Tensor) -> None:
        super().validate_target(y)
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(
                f"Expected integer class labels (torch.long) for a Categorical likelihood, but got "
                f"dtype {y.dtype}; convert with y.long() if the values are whole numbers."
            )
        if y.numel() and y.min() < 0:
            raise ValueError(f"Expected class labels >= 0, but got min label {y.min().item()}.")

    def check_target(self, y: torch.Tensor, f: torch.Tensor, sample_ndim: int = 0) -> torch.Tensor:
        self.validate_target(y)
        self._check_rows(y, f, sample_ndim)
        if y.dim() != 1:
            raise ValueError(f"Expected labels of shape (N,), but got shape {tuple(y.shape)}.")
        c = f.shape[-1]
        if y.numel() and y.max() >= c:
            raise ValueError(
                f"Expected class labels in [0, {c - 1}] for a network with {c} outputs, but got "
                f"label {y.max().item()}."
            )
        return y

    def prediction(self, d: Distribution) -> Prediction:
        return Prediction("categorical", samples=d.probs)

    def log_density(self, f: torch.Tensor, y: torch.Tensor, sample_ndim: int = 0) -> torch.Tensor:
        """Categorical log mass, as ``torch.distributions.Categorical(logits=f).log_prob``."""
        log_pmf = f - f.logsumexp(dim=-1, keepdim=True)
        index = y.long().unsqueeze(-1).expand(log_pmf.shape[:-1] + (1,))
        return log_pmf.gather(-1, index).squeeze(-1)


class _ElementwiseLikelihood(Likelihood):
    """Shared shape logic: ``out_shape`` is the per-datum target shape; a trailing 1 is squeezed."""

    #: how many output numbers per target number (2 for loc + scale).
    outputs_per_target = 1

    def _target_shape(self, f: torch.Tensor, sample_ndim: int) -> torch.Size:
        out = f.shape[sample_ndim + 1 :]
        k = self.outputs_per_target
        if k > 1:
            if not out or out[-1] % k:
                raise ValueError(
                    f"Expected the network's last output dim to be a multiple of {k} "
                    f"({type(self).__name__}: location and unconstrained scale), but got "
                    f"per-datum output shape {tuple(out)}."
                )
            out = out[:-1] + (out[-1] // k,)
        return out[:-1] if out and out[-1] == 1 else out

    def _split(self, f: torch.Tensor, sample_ndim: int) -> list[torch.Tensor]:
        """Outputs reshaped to ``sample + (N,) + target_shape``, one tensor per output kind."""
        k = self.outputs_per_target
        parts = f.chunk(k, dim=-1) if k > 1 else [f]
        shape = f.shape[: sample_ndim + 1] + self._target_shape(f, sample_ndim)
        return [p.reshape(shape) for p in parts]

    def check_target(self, y: torch.Tensor, f: torch.Tensor, sample_ndim: int = 0) -> torch.Tensor:
        self.validate_target(y)
        self._check_rows(y, f, sample_ndim)
        target = self._target_shape(f, sample_ndim)
        got = y.shape[1:]
        if got and got[-1] == 1 and got[:-1] == target:
            y = y.reshape(y.shape[:1] + target)
        elif got != target:
            raise ValueError(
                f"Expected targets y of shape (N, *{tuple(target)}) to match the network's "
                f"per-datum output {tuple(f.shape[sample_ndim + 1 :])}, but got y with per-datum "
                f"shape {tuple(y.shape[1:])}."
            )
        if not y.is_floating_point():
            y = y.to(f.dtype)
        return y

    @staticmethod
    def _event(d: Distribution, ndim: int) -> Distribution:
        return d.to_event(ndim) if ndim else d


class Bernoulli(_ElementwiseLikelihood):
    """Bernoulli likelihood on logits: outputs ``(N,)``, ``(N, 1)`` or ``(N, D)``; y in {0, 1}.

    Example::

        >>> Bernoulli().predictive_dist(torch.zeros(5, 1)).batch_shape
        torch.Size([5])
    """

    kind = "bernoulli"

    def validate_target(self, y: torch.Tensor) -> None:
        super().validate_target(y)
        if y.numel() and not ((y == 0) | (y == 1)).all():
            raise ValueError(
                "Expected binary targets in {0, 1} for a Bernoulli likelihood, but got values "
                f"{torch.unique(y)[:5].tolist()}..."
            )

    def predictive_dist(self, f: torch.Tensor, sample_ndim: int = 0) -> Distribution:
        (logits,) = self._split(f, sample_ndim)
        return self._event(dist.Bernoulli(logits=logits), logits.dim() - sample_ndim - 1)

    def prediction(self, d: Distribution) -> Prediction:
        base = d.base_dist if isinstance(d, dist.Independent) else d
        return Prediction("bernoulli", samples=base.probs)


class _Gaussian(_ElementwiseLikelihood):
    kind = "gaussian"

    def prediction(self, d: Distribution) -> Prediction:
        base = d.base_dist if isinstance(d, dist.Independent) else d
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
        >>> lik.predictive_dist(torch.zeros(5, 1)).scale
        tensor(0.1000)
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
            self.scale = PyroParam(torch.tensor(float(init_scale)), constraints.positive)

    def config(self) -> dict | None:
        prior = None
        if self.precision_prior is not None:
            from .priors import distribution_config

            prior = distribution_config(self.precision_prior)
            if prior is None:
                return None
        return {
            "scale": self.fixed_scale,
            "precision_prior": prior,
            "init_scale": self.init_scale,
            "dataset_size": self.dataset_size,
        }

    def noise_scale(self, like: torch.Tensor) -> torch.Tensor:
        """The noise std for this call: fixed, learned, or ``precision ** -0.5`` sampled."""
        if self.fixed_scale is not None:
            return torch.tensor(self.fixed_scale, dtype=like.dtype, device=like.device)
        if self.precision_prior is not None:
            prior = cast_distribution(self.precision_prior, like)
            return pyro.sample(PRECISION, prior).rsqrt()
        return self.scale.to(like)

    def predictive_dist(self, f: torch.Tensor, sample_ndim: int = 0) -> Distribution:
        (loc,) = self._split(f, sample_ndim)
        scale = self.noise_scale(loc)
        event = loc.dim() - sample_ndim - 1
        # a sampled precision has batch shape sample_shape + (1,): already aligned with the plate
        scale = scale.reshape(scale.shape + (1,) * event) if scale.dim() else scale
        return self._event(dist.Normal(loc, scale), event)

    def prediction_from_outputs(self, f: torch.Tensor, sample_ndim: int = 1) -> Prediction:
        """The Gaussian Prediction of stacked outputs, without building the Normal first."""
        if self.precision_prior is not None:
            return super().prediction_from_outputs(f, sample_ndim)
        (loc,) = self._split(f, sample_ndim)
        return Prediction("gaussian", samples=loc, scale=self.noise_scale(loc).expand_as(loc))

    def log_density(self, f: torch.Tensor, y: torch.Tensor, sample_ndim: int = 0) -> torch.Tensor:
        """Normal log density, term for term as ``torch.distributions.Normal.log_prob``."""
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
        return "HomoskedasticGaussian(scale=learned)"


class HeteroskedasticGaussian(_Gaussian):
    """Gaussian likelihood whose scale is predicted per input.

    The network outputs ``2·D`` numbers per datum: the first half is the location, the second an
    unconstrained scale mapped through ``softplus(·) + min_scale``.

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

    def config(self) -> dict | None:
        return {"min_scale": self.min_scale, "dataset_size": self.dataset_size}

    def predictive_dist(self, f: torch.Tensor, sample_ndim: int = 0) -> Distribution:
        loc, raw = self._split(f, sample_ndim)
        scale = F.softplus(raw) + self.min_scale
        return self._event(dist.Normal(loc, scale), loc.dim() - sample_ndim - 1)


def likelihood_from_config(name: str, cfg: dict) -> Likelihood:
    """Rebuild a likelihood from ``(type name, config)``; only known classes are constructed.

    Subclasses of :class:`Likelihood` defined anywhere in ``pyro_bdl`` are known.

    :raises ValueError: for an unknown type name.
    """
    known = {
        c.__name__: c for c in _all_subclasses(Likelihood) if c.__module__.startswith("pyro_bdl")
    }
    if name not in known:
        raise ValueError(f"Expected a likelihood type among {sorted(known)}, but got {name!r}.")
    cfg = dict(cfg)
    if cfg.get("precision_prior") is not None:
        from .priors import distribution_from_config

        cfg["precision_prior"] = distribution_from_config(cfg["precision_prior"])
    return known[name](**cfg)


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out
