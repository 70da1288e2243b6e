"""The :class:`Likelihood` base: exactly one ``"obs"`` site under the data plate, shared checks.

The data plate is ``pyro.plate("data", size=dataset_size, subsample=...)``, so a minibatch of B
points is scaled by ``dataset_size / B`` and the ELBO is the full-data ELBO for any minibatch.

Network outputs ``f`` have shape ``sample_shape + (N,) + out_shape``, where ``sample_shape`` are
leading draw dimensions (``sample_ndim`` of them: particles or posterior draws).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.nn import PyroModule
from torch import Tensor
from torch.distributions import Distribution, Independent

from ..registry import Configurable, from_config
from ..uncertainty import Prediction

__all__ = [
    "Likelihood",
    "ElementwiseLikelihood",
    "OBS",
    "PRECISION",
    "check_outputs",
    "base_distribution",
    "likelihood_from_config",
]

#: Name of the observation site emitted by every likelihood.
OBS = "obs"
#: Name of the noise-precision site of ``HomoskedasticGaussian`` with a precision prior.
PRECISION = "precision"

D = TypeVar("D", bound=Distribution)


def _check_finite(name: str, t: Tensor) -> None:
    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(
            f"Expected finite values in {name}, but found {bad} NaN/inf entr"
            f"{'y' if bad == 1 else 'ies'}; remove or impute them before fitting."
        )


def check_outputs(f: Any, sample_ndim: int) -> None:
    """Raise unless ``f`` are network outputs of shape ``sample_shape + (N, ...)`` with N >= 1.

    :param f: the network outputs.
    :param sample_ndim: number of leading draw dimensions of ``f``.
    :raises TypeError: if ``f`` is not a floating-point tensor.
    :raises ValueError: if it has too few dimensions or no rows.

    Example::

        >>> check_outputs(torch.zeros(3, 5, 2), sample_ndim=1)  # 3 draws, N = 5: passes
        >>> check_outputs(torch.zeros(3, 0, 2), sample_ndim=1)
        Traceback (most recent call last):
        ...
        ValueError: Expected network outputs of shape sample_shape + (N, ...) with 1 sample dim(s) and N >= 1, but got shape (3, 0, 2).
    """  # noqa: E501
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


def base_distribution(d: Distribution, cls: type[D], likelihood: str) -> D:
    """The per-draw predictive ``d`` (unwrapped from ``Independent``) as an instance of ``cls``.

    :meth:`Likelihood.prediction` uses it to read the parameters of the distribution that
    :meth:`Likelihood.predictive_dist` built.

    :param d: a predictive distribution, batch shape ``(S, N)``.
    :param cls: the distribution class the likelihood builds.
    :param likelihood: the likelihood's name, for the message.
    :raises TypeError: if ``d`` (or its base distribution) is not a ``cls``.

    Example::

        >>> import pyro.distributions as dist
        >>> d = dist.Normal(torch.zeros(2, 3), 1.0).to_event(1)
        >>> base_distribution(d, torch.distributions.Normal, "Gaussian").loc.shape
        torch.Size([2, 3])
    """
    base = d.base_dist if isinstance(d, Independent) else d
    if not isinstance(base, cls):
        raise TypeError(
            f"Expected the {likelihood} likelihood's predictive distribution to be a "
            f"{cls.__name__}, but got {type(base).__name__}; pass the distribution its "
            "predictive_dist returns."
        )
    return base


class Likelihood(PyroModule, Configurable):
    """Base class: an observation model with exactly one sample site, ``"obs"``.

    A subclass implements :meth:`predictive_dist` (the distribution of y given network outputs,
    batch shape ``sample_shape + (N,)``); everything else has a generic default:
    :meth:`check_target` checks the targets' shape and support against that distribution,
    :meth:`log_density` is its ``log_prob``, :meth:`prediction` is
    :meth:`Prediction.from_dist <pyro_bdl.uncertainty.Prediction.from_dist>` (closed forms for
    Categorical, Bernoulli and Normal, Monte Carlo otherwise). Closed forms and faster paths may
    override them; ``pyro_bdl.testing.LikelihoodContract`` checks that they agree. A new family
    is one class:

    >>> import torch
    >>> from torch.distributions import Poisson
    >>> class PoissonLikelihood(Likelihood):
    ...     def predictive_dist(self, f, sample_ndim=0):
    ...         return Poisson(f.squeeze(-1).exp())  # outputs (N, 1): log-rates
    >>> lik = PoissonLikelihood()
    >>> lik.check_target(torch.tensor([0.0, 3.0]), torch.zeros(2, 1))
    tensor([0., 3.])
    >>> pred = lik.prediction_from_outputs(torch.zeros(4, 2, 1))  # S = 4 draws, N = 2
    >>> pred.kind, pred.mean
    ('generic', tensor([1., 1.]))

    :param dataset_size: number of data points N the ELBO is scaled to. ``None`` means: the size
        ``BNN.fit`` is given, or the current batch when the model is called directly.

    Example::

        >>> from pyro_bdl.likelihoods import Categorical
        >>> lik = Categorical(dataset_size=60000)
        >>> lik(torch.zeros(2, 3), torch.tensor([0, 2]))  # emits pyro.sample("obs", ..., obs=y)
        tensor([0, 2])
    """

    config_kind = "likelihood"

    #: kind of :class:`~pyro_bdl.uncertainty.Prediction` this likelihood produces: ``"generic"``
    #: unless a subclass's predictive distribution has a closed form (set it there).
    kind: str = "generic"

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
    def predictive_dist(self, f: Tensor, sample_ndim: int = 0) -> Distribution:
        """Distribution of y given outputs ``f`` (batch shape ``f.shape[:sample_ndim + 1]``)."""
        raise NotImplementedError

    def check_target(self, y: Tensor, f: Tensor, sample_ndim: int = 0) -> Tensor:
        """Validate targets ``y`` (shape ``(N, ...)``) against outputs ``f``; return y as used.

        The generic default: :meth:`validate_target` (a finite tensor), ``N`` rows, the
        per-datum shape of :meth:`predictive_dist` (its batch shape after ``(N,)``, then its
        event shape) and values in its support. The distribution is built with every Pyro site
        inside it blocked (a sampled noise precision is not recorded twice). ``y`` is returned
        unchanged.

        :raises ValueError: for the wrong number of rows, per-datum shape or a value outside the
            support.
        """
        self.validate_target(y)
        self._check_rows(y, f, sample_ndim)
        with poutine.block():
            d = self.predictive_dist(f, sample_ndim)
        per_datum = d.batch_shape[sample_ndim + 1 :] + d.event_shape
        if y.shape[1:] != per_datum:
            raise ValueError(
                f"Expected targets y of shape (N, *{tuple(per_datum)}) to match the predictive "
                f"distribution {type(d).__name__} (batch {tuple(d.batch_shape)}, event "
                f"{tuple(d.event_shape)}), but got y of shape {tuple(y.shape)}."
            )
        support = d.support
        inside = support.check(y) if support is not None else None
        if inside is not None and y.numel() and not bool(inside.all()):
            raise ValueError(
                f"Expected targets y in the support of {type(d).__name__} ({support}), but "
                f"{int((~inside).sum())} of {inside.numel()} are outside it."
            )
        return y

    def prediction(self, d: Distribution) -> Prediction:
        """Turn per-draw predictive distributions (batch ``(S, N)``) into a Prediction.

        The generic default is :meth:`Prediction.from_dist
        <pyro_bdl.uncertainty.Prediction.from_dist>`: a closed form for Categorical, Bernoulli
        and Normal, the ``"generic"`` kind (Monte Carlo) for any other family.
        """
        return Prediction.from_dist(d)

    def prediction_from_outputs(self, f: Tensor, sample_ndim: int = 1) -> Prediction:
        """``prediction(predictive_dist(f, sample_ndim))``: the Prediction of stacked outputs.

        Subclasses may build it without the intermediate distribution (``BNN.predict`` calls it
        once per prediction, on outputs ``(S, N, ...)``).

        Example::

            >>> from pyro_bdl.likelihoods import HomoskedasticGaussian
            >>> HomoskedasticGaussian(0.5).prediction_from_outputs(torch.zeros(3, 4, 1)).kind
            'gaussian'
        """
        return self.prediction(self.predictive_dist(f, sample_ndim))

    def log_density(self, f: Tensor, y: Tensor, sample_ndim: int = 0) -> Tensor:
        """``predictive_dist(f, sample_ndim).log_prob(y)``, shape ``f.shape[:sample_ndim + 1]``.

        Subclasses may compute it without building the distribution (the trace-free SVI step
        calls it every step, on targets already checked by :meth:`check_target`).

        Example::

            >>> from pyro_bdl.likelihoods import HomoskedasticGaussian
            >>> HomoskedasticGaussian(1.0).log_density(torch.zeros(2, 1), torch.zeros(2))
            tensor([-0.9189, -0.9189])
        """
        return self.predictive_dist(f, sample_ndim).log_prob(y)

    def config(self) -> dict | None:
        """JSON-able constructor arguments (for ``BNN.save``), or ``None`` if not describable."""
        return {"dataset_size": self.dataset_size}

    def validate_target(self, y: Tensor) -> None:
        """Value checks on a whole target tensor (finite, right dtype), done once before fitting."""
        if not torch.is_tensor(y):
            raise TypeError(f"Expected y to be a torch.Tensor, but got {type(y).__name__}.")
        _check_finite("y", y)

    # -- shared machinery -----------------------------------------------------------------------
    def forward(
        self,
        f: Tensor,
        y: Tensor | None = None,
        *,
        dataset_size: int | None = None,
        sample_ndim: int = 0,
    ) -> Tensor:
        """Emit ``pyro.sample("obs", p(y | f), obs=y)`` under the data plate.

        :param f: network outputs, shape ``sample_shape + (N,) + out_shape``.
        :param y: targets, shape ``(N,) + target_shape``, or ``None`` to sample.
        :param dataset_size: overrides :attr:`dataset_size` for this call.
        :param sample_ndim: number of leading draw dimensions of ``f``.
        :return: the observed or sampled y.
        """
        check_outputs(f, sample_ndim)
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
            # pyro.sample is typed for Pyro's distributions; an observed torch one works as well
            return pyro.sample(OBS, cast(TorchDistributionMixin, d), obs=y)

    @staticmethod
    def _check_rows(y: Tensor, f: Tensor, sample_ndim: int) -> None:
        if y.dim() == 0 or y.shape[0] != f.shape[sample_ndim]:
            raise ValueError(
                f"Expected y with {f.shape[sample_ndim]} rows to match the network output of "
                f"shape {tuple(f.shape[sample_ndim:])}, but got y of shape {tuple(y.shape)}."
            )


class ElementwiseLikelihood(Likelihood):
    """Shared shape logic: ``out_shape`` is the per-datum target shape; a trailing 1 is squeezed.

    Base of likelihoods whose targets have one number per output number (``Bernoulli``) or per
    :attr:`outputs_per_target` output numbers (``HeteroskedasticGaussian``: location and scale).

    Example::

        >>> from pyro_bdl.likelihoods import HeteroskedasticGaussian
        >>> d = HeteroskedasticGaussian().predictive_dist(torch.zeros(5, 6))  # D = 3 per datum
        >>> d.batch_shape, d.event_shape
        (torch.Size([5]), torch.Size([3]))
    """

    #: how many output numbers per target number (2 for loc + scale).
    outputs_per_target = 1

    def _target_shape(self, f: Tensor, sample_ndim: int) -> torch.Size:
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

    def _split(self, f: Tensor, sample_ndim: int) -> list[Tensor]:
        """Outputs reshaped to ``sample + (N,) + target_shape``, one tensor per output kind."""
        k = self.outputs_per_target
        parts = f.chunk(k, dim=-1) if k > 1 else [f]
        shape = f.shape[: sample_ndim + 1] + self._target_shape(f, sample_ndim)
        return [p.reshape(shape) for p in parts]

    def check_target(self, y: Tensor, f: Tensor, sample_ndim: int = 0) -> Tensor:
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
        """``d.to_event(ndim)``: Pyro's ``Independent``, or ``d`` itself when ``ndim`` is 0."""
        return dist.Independent(d, ndim) if ndim else d


def likelihood_from_config(name: str, cfg: dict[str, Any]) -> Likelihood:
    """Rebuild a likelihood from ``(type name, config)``; only known classes are constructed.

    The package's own subclasses of :class:`Likelihood` are known (see
    :mod:`pyro_bdl.registry`).

    :param name: the class name, as ``BNN.save`` writes it.
    :param cfg: the likelihood's :meth:`~Likelihood.config`.
    :return: the rebuilt likelihood.
    :raises ValueError: for an unknown type name.

    Example::

        >>> import pyro_bdl.likelihoods
        >>> likelihood_from_config("HomoskedasticGaussian", {"scale": 0.5})
        HomoskedasticGaussian(scale=0.5)
    """
    likelihood: Likelihood = from_config({"type": name, "config": cfg}, "likelihood")
    return likelihood
