"""Predictive uncertainty: the :class:`Prediction` object and its decomposition.

Everything here is a pure function of posterior draws laid out with the sample dimension first
(``S`` draws, then ``N`` data points). :func:`decompose` splits the predictive uncertainty into an
aleatoric part (noise the model believes is in the data) and an epistemic part (disagreement
between posterior draws); :class:`Prediction` wraps the draws returned by ``BNN.predict``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, cast

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent

from ._checks import check_finite, check_real_tensor

__all__ = [
    "Decomposition",
    "Prediction",
    "decompose",
    "broadcast_scale",
    "check_categorical_probs",
    "check_draws_ndim",
]

PredictionKind = Literal["categorical", "bernoulli", "gaussian", "generic"]
_KINDS: tuple[str, ...] = ("categorical", "bernoulli", "gaussian", "generic")
_FIELDS: tuple[str, ...] = ("total", "aleatoric", "epistemic")


# --------------------------------------------------------------------------------------------
# Validation helpers (shared with pyro_bdl.metrics)
# --------------------------------------------------------------------------------------------


def _distinct_entries(x: Tensor) -> Tensor:
    """A view of ``x`` without its broadcast (stride-0) dimensions: the same set of values."""
    index = tuple(
        slice(0, 1) if stride == 0 and size > 1 else slice(None)
        for size, stride in zip(x.shape, x.stride(), strict=True)
    )
    return x[index]


def check_draws_ndim(name: str, x: Tensor, min_ndim: int, layout: str, exact: bool = False) -> None:
    """Raise ``ValueError`` unless draws ``x`` have ``min_ndim`` dims (at least, or exactly).

    Also requires at least one draw (``S >= 1``) and, for two or more dims, one data point.

    :param name: the argument's name, used in the message.
    :param x: draws with the sample dimension first, ``(S, N, ...)``.
    :param min_ndim: the number of dims required.
    :param layout: the expected layout for the message, e.g. ``"(S, N, C)"``.
    :param exact: require exactly ``min_ndim`` dims instead of at least.

    Example::

        >>> import torch
        >>> check_draws_ndim("probs", torch.zeros(4, 3, 2), 3, "(S, N, C)", exact=True)
        >>> check_draws_ndim("loc", torch.zeros(3), 2, "(S, N, ...)")
        Traceback (most recent call last):
        ...
        ValueError: Expected loc of shape (S, N, ...) with the sample dimension first, got shape (3,). For a single draw add the sample dimension: loc.unsqueeze(0).
    """  # noqa: E501
    bad = x.dim() != min_ndim if exact else x.dim() < min_ndim
    if bad:
        raise ValueError(
            f"Expected {name} of shape {layout} with the sample dimension first, got shape "
            f"{tuple(x.shape)}. For a single draw add the sample dimension: {name}.unsqueeze(0)."
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"Expected at least one posterior draw in {name}, got shape {tuple(x.shape)}."
        )
    if x.dim() >= 2 and x.shape[1] == 0:
        raise ValueError(
            f"Expected at least one data point in {name} (shape (S, N, ...) with N >= 1), got "
            f"shape {tuple(x.shape)}."
        )


def _prob_tol(dtype: torch.dtype, num_terms: int) -> float:
    """Tolerance for probability checks: ``max(1e-6, 2 * num_terms * eps(dtype))``."""
    return max(1e-6, 2.0 * num_terms * torch.finfo(dtype).eps)


def check_categorical_probs(name: str, probs: Tensor) -> None:
    """Raise ``ValueError`` unless ``probs`` is finite, >= 0 and sums to 1 on the last dim.

    The sums may be off by ``max(1e-6, 2 * C * eps(dtype))`` (rounding).

    :param name: the argument's name, used in the message.
    :param probs: class probabilities, classes last.

    Example::

        >>> import torch
        >>> check_categorical_probs("probs", torch.tensor([[0.5, 0.5]]))
        >>> check_categorical_probs("probs", torch.tensor([[1.0, 1.0]]))
        Traceback (most recent call last):
        ...
        ValueError: Expected probs to sum to 1 along the last (class) dimension within 1e-06, got a maximum deviation |sum - 1| = 1. If these are logits or unnormalised scores, pass probs=logits.softmax(-1).
    """  # noqa: E501
    check_finite(name, probs)
    tol = _prob_tol(probs.dtype, probs.shape[-1])
    if probs.numel() == 0:
        return
    low = float(probs.detach().min())
    if low < 0.0:
        raise ValueError(
            f"Expected {name} >= 0 (probabilities), got a minimum of {low:.3g}. "
            f"If these are logits, pass {name}=logits.softmax(-1)."
        )
    dev = float((probs.detach().sum(-1) - 1.0).abs().max())
    if dev > tol:
        raise ValueError(
            f"Expected {name} to sum to 1 along the last (class) dimension within {tol:.1g}, got "
            f"a maximum deviation |sum - 1| = {dev:.3g}. If these are logits or unnormalised "
            f"scores, pass {name}=logits.softmax(-1)."
        )


def _check_bernoulli_probs(name: str, probs: Tensor) -> None:
    """Raise ``ValueError`` unless ``probs`` is finite and inside [0, 1]."""
    check_finite(name, probs)
    if probs.numel() == 0:
        return
    low, high = float(probs.detach().min()), float(probs.detach().max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"Expected {name} in [0, 1] (probability of class 1), got values in "
            f"[{low:.3g}, {high:.3g}]. If these are logits, pass {name}=logits.sigmoid()."
        )


def broadcast_scale(scale: Tensor, loc: Tensor, name: str = "scale") -> Tensor:
    """Broadcast ``scale`` to ``loc``'s shape or raise ``ValueError`` saying both shapes.

    :param scale: per-draw noise standard deviations.
    :param loc: per-draw locations ``(S, N, ...)``.
    :param name: the argument's name, used in the message.
    :return: ``scale`` expanded to ``loc.shape`` (a view).

    Example::

        >>> import torch
        >>> broadcast_scale(torch.ones(1), torch.zeros(2, 3)).shape
        torch.Size([2, 3])
    """
    try:
        shape = torch.broadcast_shapes(scale.shape, loc.shape)
    except RuntimeError:
        shape = None
    if shape != loc.shape:
        raise ValueError(
            f"Expected {name} of shape {tuple(loc.shape)} (the shape of loc, or broadcastable to "
            f"it), got shape {tuple(scale.shape)}. Give one noise std per draw and output."
        )
    return scale.expand(loc.shape)


# --------------------------------------------------------------------------------------------
# Decomposition
# --------------------------------------------------------------------------------------------


def _xlogx(p: Tensor) -> Tensor:
    return torch.special.xlogy(p, p)


def _categorical_entropy(p: Tensor) -> Tensor:
    """Entropy in nats over the last dim, with 0 log 0 = 0."""
    return -_xlogx(p).sum(-1)


def _binary_entropy(p: Tensor) -> Tensor:
    """Entropy in nats of Bernoulli(p), with 0 log 0 = 0."""
    return -(_xlogx(p) + _xlogx(1.0 - p))


@dataclass(frozen=True)
class Decomposition:
    """Split of the predictive uncertainty into a total, an aleatoric and an epistemic part.

    Every field has one value per input, shape ``(N, ...)``; ``total = aleatoric + epistemic``.
    The fields can be read as attributes or by name.

    :param total: Total predictive uncertainty.
    :param aleatoric: Expected uncertainty under a single posterior draw (noise in the data).
    :param epistemic: Uncertainty due to disagreement between posterior draws.
    :param kind: The units: ``"entropy"`` (nats, classification) or ``"variance"`` (squared
        output units, regression).

    Example::

        >>> import torch
        >>> d = decompose(loc=torch.zeros(4, 3), scale=torch.ones(4, 3))
        >>> d["aleatoric"]
        tensor([1., 1., 1.])
        >>> d.kind
        'variance'
    """

    total: Tensor
    aleatoric: Tensor
    epistemic: Tensor
    kind: Literal["entropy", "variance"]

    def __getitem__(self, name: str) -> Tensor:
        """Return the field called ``name`` (``"total"``, ``"aleatoric"`` or ``"epistemic"``)."""
        if name not in _FIELDS:
            raise KeyError(f"Expected one of {list(_FIELDS)}, got {name!r}.")
        return getattr(self, name)

    def keys(self) -> tuple[str, ...]:
        """Return the field names, so that ``dict(decomposition)`` works."""
        return _FIELDS


def _warn_single_draw(stacklevel: int) -> None:
    warnings.warn(
        "Got a single posterior draw (S = 1): a single draw cannot measure epistemic "
        "uncertainty, so epistemic is exactly 0 and total equals aleatoric. Use more draws, "
        "e.g. bnn.predict(x, num_samples=100).",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def _decompose(
    probs: Tensor | None,
    loc: Tensor | None,
    scale: Tensor | float | None,
    kind: str | None,
    stacklevel: int,
) -> Decomposition:
    if (probs is None) == (loc is None):
        got = "both" if probs is not None else "neither"
        raise ValueError(
            f"Expected exactly one of probs= (classification) or loc= (regression), got {got}. "
            "Call decompose(probs=p) with p of shape (S, N, C), or decompose(loc=mu, scale=sigma)."
        )
    if probs is not None:
        if scale is not None:
            raise ValueError(
                "Expected scale=None with probs= (scale is the noise std of a regression), got a "
                "scale. Drop scale=, or pass loc= for a Gaussian predictive."
            )
        if kind not in (None, "categorical", "bernoulli"):
            raise ValueError(
                f"Expected kind None, 'categorical' or 'bernoulli' with probs=, got {kind!r}."
            )
        probs = check_real_tensor("probs", probs)
        if kind == "bernoulli":
            check_draws_ndim("probs", probs, 2, "(S, N, ...)")
            _check_bernoulli_probs("probs", probs)
            entropy = _binary_entropy
        else:
            check_draws_ndim("probs", probs, 3, "(S, N, C)", exact=True)
            check_categorical_probs("probs", probs)
            entropy = _categorical_entropy
        num_draws = probs.shape[0]
        total = entropy(probs.mean(0))
        aleatoric = entropy(probs).mean(0)
        if num_draws == 1:
            _warn_single_draw(stacklevel + 1)
            epistemic = torch.zeros_like(total)
        else:
            # Mutual information; mathematically >= 0, the clamp only removes rounding error.
            epistemic = (total - aleatoric).clamp_min(0.0)
        return Decomposition(total, aleatoric, epistemic, "entropy")

    if kind not in (None, "gaussian"):
        raise ValueError(f"Expected kind None or 'gaussian' with loc=, got {kind!r}.")
    loc = check_real_tensor("loc", loc)
    check_draws_ndim("loc", loc, 2, "(S, N, ...)")
    check_finite("loc", loc)
    if scale is None:
        aleatoric = torch.zeros_like(loc[0])
    else:
        if isinstance(scale, bool) or not isinstance(scale, (Tensor, int, float)):
            raise TypeError(f"Expected scale as a tensor or a number, got {type(scale).__name__}.")
        if isinstance(scale, Tensor):
            check_real_tensor("scale", scale)
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        scale = broadcast_scale(scale, loc)
        check_finite("scale", scale)
        if scale.numel() and float(scale.detach().min()) < 0.0:
            raise ValueError(
                f"Expected scale >= 0 (a standard deviation), got a minimum of "
                f"{float(scale.detach().min()):.3g}. If the network outputs an unconstrained "
                "scale, apply softplus or exp first."
            )
        aleatoric = scale.square().mean(0)
    if loc.shape[0] == 1:
        _warn_single_draw(stacklevel + 1)
    epistemic = loc.var(0, correction=0)
    return Decomposition(aleatoric + epistemic, aleatoric, epistemic, "variance")


def decompose(
    *,
    probs: Tensor | None = None,
    loc: Tensor | None = None,
    scale: Tensor | float | None = None,
    kind: Literal["categorical", "bernoulli", "gaussian"] | None = None,
) -> Decomposition:
    r"""Split the predictive uncertainty of ``S`` posterior draws into aleatoric and epistemic.

    Classification (``probs`` of shape ``(S, N, C)``, draws :math:`p_s`, mean
    :math:`\bar p = \frac1S \sum_s p_s`), in nats:

    .. math::

        \text{total} = H[\bar p], \quad
        \text{aleatoric} = \frac1S \sum_s H[p_s], \quad
        \text{epistemic} = \text{total} - \text{aleatoric} = I(y; W),

    with :math:`H[p] = -\sum_c p_c \log p_c` and :math:`0 \log 0 = 0`. The mutual information
    is non-negative in exact arithmetic; it is clamped at 0 only to remove rounding error. With
    ``kind="bernoulli"``, ``probs`` of shape ``(S, N, ...)`` is the probability of class 1 and
    :math:`H` is the binary entropy.

    Regression (``loc`` and ``scale`` of shape ``(S, N, ...)``): by the law of total variance for
    the equally weighted mixture of the ``S`` draws :math:`\mathcal N(\mu_s, \sigma_s^2)`,

    .. math::

        \text{aleatoric} = \frac1S \sum_s \sigma_s^2, \quad
        \text{epistemic} = \frac1S \sum_s (\mu_s - \bar\mu)^2, \quad
        \text{total} = \text{aleatoric} + \text{epistemic},

    i.e. the epistemic part is the *population* variance (divide by ``S``, not ``S - 1``): the
    total is exactly the variance of :math:`y` drawn from the mixture. ``scale=None`` means a
    noise-free model (aleatoric 0).

    With a single draw (``S = 1``) epistemic uncertainty cannot be measured: the epistemic part
    is exactly 0 and a :class:`UserWarning` says so.

    :param probs: Per-draw class probabilities ``(S, N, C)``, or probabilities of class 1
        ``(S, N, ...)`` with ``kind="bernoulli"``.
    :param loc: Per-draw predictive means ``(S, N, ...)``.
    :param scale: Per-draw noise standard deviations, broadcastable to ``loc``; ``None`` for 0.
    :param kind: ``"categorical"`` (default with ``probs``), ``"bernoulli"`` or ``"gaussian"``
        (default with ``loc``).
    :returns: A :class:`Decomposition` with fields of shape ``(N,)`` (categorical) or
        ``(N, ...)``.
    :raises ValueError: If both or neither of ``probs``/``loc`` are given, if shapes are wrong,
        or if the values are not valid probabilities / finite / non-negative scales.

    Example::

        >>> import torch
        >>> probs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # S=2 draws, N=1, C=2
        >>> d = decompose(probs=probs)
        >>> d.aleatoric, d.epistemic  # confident draws that disagree: all epistemic
        (tensor([0.]), tensor([0.6931]))
    """
    return _decompose(probs, loc, scale, kind, stacklevel=2)


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------


def _mixture_normal_quantile(loc: Tensor, scale: Tensor, q: float) -> Tensor:
    """Quantile ``q`` of the equal-weight mixture over dim 0 of ``Normal(loc, scale)``.

    The root lies between the smallest and largest component quantile, since the mixture CDF is
    the mean of the component CDFs. Bisection in float64 until the bracket is below
    ``1e-12 * (1 + |x|)``.
    """
    loc64, scale64 = loc.double(), scale.double()
    z = NormalDist().inv_cdf(q)
    component = loc64 + scale64 * z
    lo = component.min(0).values
    hi = component.max(0).values
    for _ in range(400):
        width = hi - lo
        if width.numel() == 0 or bool((width <= 1e-12 * (1.0 + hi.abs().maximum(lo.abs()))).all()):
            break
        mid = 0.5 * (lo + hi)
        cdf = torch.special.ndtr((mid - loc64) / scale64).mean(0)
        below = cdf < q
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return (0.5 * (lo + hi)).to(loc.dtype)


#: Default number of Monte-Carlo draws of ``y`` per posterior draw for the generic kind.
MC_DRAWS = 1000


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run the block on the global RNG seeded with ``seed``, restoring its state afterwards.

    Explicit devices keep :func:`torch.random.fork_rng` from warning about several GPUs.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _as_float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _unwrap_independent(d: Distribution) -> tuple[Distribution, int]:
    """The distribution under any ``Independent`` wrappers, and how many dims they reinterpret."""
    ndim = 0
    while isinstance(d, Independent):
        ndim += d.reinterpreted_batch_ndims
        d = d.base_dist
    return d, ndim


def _moment(d: Distribution, name: Literal["mean", "variance"]) -> Tensor | None:
    """``d.mean`` / ``d.variance``, or ``None`` where the family does not define it."""
    try:
        return getattr(d, name)
    except NotImplementedError:
        return None


def _per_draw_moments(d: Distribution, mc_draws: int, seed: int) -> tuple[Tensor, Tensor]:
    """Mean and variance of each component of ``d`` (shape ``batch + event``).

    From the family's ``mean``/``variance`` where defined; otherwise the moments of
    ``mc_draws`` draws from each component (seeded: the same numbers on every call), with the
    unbiased variance.
    """
    mean, var = _moment(d, "mean"), _moment(d, "variance")
    if mean is None or var is None:
        with _seeded(seed):
            y = _as_float(d.sample((mc_draws,)))
        mean = y.mean(0) if mean is None else mean
        var = y.var(0) if var is None else var
    shape = d.batch_shape + d.event_shape
    return _as_float(mean).expand(shape), _as_float(var).expand(shape)


def _sorted_quantile(sorted_draws: Tensor, q: float) -> Tensor:
    """Quantile ``q`` over dim 0 of sorted draws, interpolated linearly (as ``torch.quantile``)."""
    pos = q * (sorted_draws.shape[0] - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, sorted_draws.shape[0] - 1)
    frac = pos - lo
    return sorted_draws[lo] + frac * (sorted_draws[hi] - sorted_draws[lo])


def _closed_form_samples(kind: str, samples: Tensor | None) -> Tensor:
    samples = check_real_tensor("samples", samples)
    if kind == "categorical":
        check_draws_ndim("samples", samples, 3, "(S, N, C)", exact=True)
        check_categorical_probs("samples", samples)
    elif kind == "bernoulli":
        check_draws_ndim("samples", samples, 2, "(S, N, ...)")
        _check_bernoulli_probs("samples", samples)
    else:
        check_draws_ndim("samples", samples, 2, "(S, N, ...)")
        check_finite("samples", samples)
    return samples


def _generic_moments(
    samples: Tensor | None,
    scale: Tensor | None,
    dist: Distribution | Sequence[Distribution] | None,
    mc_draws: int,
    seed: int,
) -> tuple[tuple[Distribution, ...], Tensor, Tensor]:
    """Check a generic prediction's ``dist``: ``(dists, per-draw means, per-draw variances)``."""
    if samples is not None or scale is not None:
        raise ValueError(
            "Expected samples=None and scale=None for kind='generic' (both come from the "
            "per-draw distribution), got a tensor. Pass dist= only, or use "
            "Prediction.from_dist(dist)."
        )
    if dist is None:
        raise ValueError(
            "Expected dist= (the per-draw predictive distribution, batch shape (S, N, ...)) "
            "for kind='generic', got None."
        )
    dists = (dist,) if isinstance(dist, Distribution) else tuple(dist)
    if isinstance(mc_draws, bool) or not isinstance(mc_draws, int):
        raise ValueError(f"Expected mc_draws to be an int >= 2, got {mc_draws!r}.")
    if mc_draws < 2:
        raise ValueError(f"Expected mc_draws to be an int >= 2, got {mc_draws!r}.")
    if not dists:
        raise ValueError("Expected at least one per-draw distribution, got none.")
    shape: torch.Size | None = None
    for d in dists:
        if not isinstance(d, Distribution):
            raise TypeError(f"Expected dist to be a torch Distribution, got {type(d).__name__}.")
        check_draws_ndim("dist.batch_shape", torch.empty(d.batch_shape), 2, "(S, N, ...)")
        rest = d.batch_shape[1:] + d.event_shape
        if shape is not None and rest != shape:
            raise ValueError(
                "Expected per-draw distributions that differ only in the number of draws, "
                f"got batch + event shapes {tuple(shape)} and {tuple(rest)} after the draws."
            )
        shape = rest
    moments = [_per_draw_moments(d, mc_draws, seed) for d in dists]
    means = torch.cat([m for m, _ in moments])
    return dists, means, torch.cat([v for _, v in moments])


class Prediction:
    r"""Posterior predictive draws for ``N`` inputs, as returned by ``BNN.predict``.

    Holds one predictive parameter per posterior draw, sample dimension first, and derives the
    posterior predictive (the equally weighted mixture over the draws) from them.

    Three families have closed forms; any other family is the ``"generic"`` kind, built from its
    per-draw distributions with :meth:`from_dist` (or ``Prediction("generic", dist=d)``):

    - ``samples`` are the per-draw predictive means :math:`E[y \mid \theta_s]`, shape
      ``(S, N, ...) + event_shape`` (the family's ``mean``; where the family does not define it,
      the mean of ``mc_draws`` seeded draws of ``y``), so :attr:`mean` is the predictive mean,
      as for every kind;
    - :meth:`decompose` is the law of total variance over the mixture, as for ``"gaussian"``:
      aleatoric :math:`\frac1S \sum_s \mathrm{Var}[y \mid \theta_s]` (the family's ``variance``,
      else the unbiased variance of the seeded draws), epistemic the population variance of the
      per-draw means, total their sum (= :attr:`variance`). Where a moment does not exist (a
      Student-t with ``df <= 2``) the family's ``inf``/``nan`` is kept, never hidden;
    - :meth:`log_prob` is exact: the family's ``log_prob`` mixed over the draws;
    - :meth:`quantile` and :meth:`interval` are Monte Carlo: empirical quantiles (linear
      interpolation) of ``S * mc_draws`` draws of the mixture, drawn from the generator seeded
      with ``seed``, so repeated calls give the same numbers and the global RNG is untouched;
      the error is of order :math:`1 / \sqrt{S \cdot \text{mc\_draws}}`.

    :param kind: ``"categorical"``, ``"bernoulli"``, ``"gaussian"`` or ``"generic"``.
    :param samples: Per-draw predictive parameter: class probabilities ``(S, N, C)``
        (categorical), probability of class 1 ``(S, N, ...)`` (bernoulli) or location
        ``(S, N, ...)`` (gaussian). Not given for ``"generic"`` (computed from ``dist``).
    :param scale: Gaussian only: per-draw noise standard deviation, broadcastable to
        ``samples`` and positive; ``None`` for a noise-free predictive.
    :param outputs: Raw network outputs, kept unchanged for the user (any shape).
    :param dist: ``"generic"`` only: the per-draw predictive distribution, batch shape
        ``(S, N, ...)``, or a sequence of them split along the draws (see :meth:`cat`).
    :param mc_draws: ``"generic"`` only: Monte-Carlo draws of ``y`` per posterior draw, for the
        moments a family does not define and for quantiles.
    :param seed: ``"generic"`` only: seed of those Monte-Carlo draws.
    :raises TypeError: If ``samples``/``scale``/``outputs``/``dist`` have the wrong type.
    :raises ValueError: If ``kind`` is unknown, shapes are wrong or values invalid.

    ``pred[index]`` (an int, a slice, a boolean mask or integer positions over the N points) is
    the prediction at those points, every field indexed: its ``mean``, ``decompose()``,
    ``interval()`` and ``log_prob`` are those of the full prediction at the same points.

    The predictive density of an observation is the mixture

    .. math::

        p(y_n \mid x_n, \mathcal D) \approx \frac1S \sum_{s=1}^S p(y_n \mid \theta_{s,n}).

    Example::

        >>> import torch
        >>> pred = Prediction("gaussian", samples=torch.zeros(10, 5), scale=torch.ones(10, 5))
        >>> pred
        Prediction(kind='gaussian', num_samples=10, num_data=5, shape=(10, 5))
        >>> pred.variance
        tensor([1., 1., 1., 1., 1.])
    """

    def __init__(
        self,
        kind: PredictionKind,
        *,
        samples: Tensor | None = None,
        scale: Tensor | None = None,
        outputs: Tensor | None = None,
        dist: Distribution | Sequence[Distribution] | None = None,
        mc_draws: int = MC_DRAWS,
        seed: int = 0,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"Expected kind in {list(_KINDS)}, got {kind!r}.")
        self.dists: tuple[Distribution, ...] = ()
        self.mc_draws = mc_draws
        self.seed = seed
        self._variances: Tensor | None = None
        # generic kind, indexed: (the unindexed dists, the positions kept) -- its Monte-Carlo
        # draws are those of the unindexed prediction, indexed, so indexing commutes with them
        self._mc_source: tuple[tuple[Distribution, ...], Tensor] | None = None
        if kind == "generic":
            self.dists, samples, self._variances = _generic_moments(
                samples, scale, dist, mc_draws, seed
            )
        else:
            if dist is not None:
                raise ValueError(
                    f"Expected dist=None for kind={kind!r} (dist is the per-draw distribution of "
                    "kind='generic'), got a distribution. Use Prediction.from_dist(dist)."
                )
            samples = _closed_form_samples(kind, samples)
        if scale is not None:
            if kind != "gaussian":
                raise ValueError(
                    f"Expected scale=None for kind={kind!r} (scale is the Gaussian noise std), "
                    "got a tensor. Drop scale= or use kind='gaussian'."
                )
            scale = broadcast_scale(check_real_tensor("scale", scale), samples)
            distinct = _distinct_entries(scale).detach()  # an expanded scale: its values once
            check_finite("scale", distinct)
            if distinct.numel() and float(distinct.min()) <= 0.0:
                raise ValueError(
                    f"Expected scale > 0 (a noise standard deviation), got a minimum of "
                    f"{float(distinct.min()):.3g}. Pass scale=None for a noise-free predictive."
                )
        if outputs is not None and not isinstance(outputs, Tensor):
            raise TypeError(f"Expected outputs to be a torch.Tensor or None, got {type(outputs)}.")
        self.kind: PredictionKind = kind
        self.samples: Tensor = samples
        self.scale: Tensor | None = scale
        self.outputs: Tensor | None = outputs

    @classmethod
    def from_dist(
        cls,
        per_draw: Distribution,
        *,
        outputs: Tensor | None = None,
        closed_form: bool = True,
        mc_draws: int = MC_DRAWS,
        seed: int = 0,
    ) -> Prediction:
        r"""The Prediction of per-draw predictive distributions of any family.

        Closed forms: ``Categorical`` with batch shape ``(S, N)`` gives kind ``"categorical"``
        (``samples`` its ``probs``); ``Bernoulli`` (possibly in ``Independent``) gives
        ``"bernoulli"`` (its ``probs``); ``Normal`` (possibly in ``Independent``) gives
        ``"gaussian"`` (its ``loc`` and ``scale``). Every other family, or any family with
        ``closed_form=False``, gives the ``"generic"`` kind described in :class:`Prediction`.

        :param per_draw: the predictive distribution of each draw, batch shape ``(S, N, ...)``
            (a likelihood's ``predictive_dist(f, sample_ndim=1)``).
        :param outputs: raw network outputs, kept for the user.
        :param closed_form: use the closed forms above where they apply; ``False`` always gives
            the generic kind (to test a closed form against it).
        :param mc_draws: Monte-Carlo draws per posterior draw for the generic kind.
        :param seed: seed of the generic kind's Monte-Carlo draws.
        :returns: a :class:`Prediction`.
        :raises TypeError: if ``per_draw`` is not a distribution.
        :raises ValueError: if its batch shape is not ``(S, N, ...)``.

        Example::

            >>> import torch
            >>> from torch.distributions import Poisson
            >>> rate = torch.tensor([[1.0, 4.0], [3.0, 4.0]])  # S = 2 draws, N = 2 points
            >>> pred = Prediction.from_dist(Poisson(rate))
            >>> pred.kind, pred.mean
            ('generic', tensor([2., 4.]))
            >>> d = pred.decompose()  # aleatoric E[rate] + epistemic Var[rate] (population)
            >>> d.aleatoric, d.epistemic
            (tensor([2., 4.]), tensor([1., 0.]))
            >>> Prediction.from_dist(torch.distributions.Normal(rate, 1.0)).kind
            'gaussian'
        """
        return _prediction_of(cls, per_draw, outputs, closed_form, mc_draws, seed)

    @classmethod
    def cat(cls, parts: Sequence[Prediction]) -> Prediction:
        """One Prediction from predictions of the same inputs, concatenated along the draws.

        :param parts: predictions of one kind (chunks of draws, in order).
        :returns: a :class:`Prediction` with ``sum(p.num_samples for p in parts)`` draws; a
            generic one keeps the chunks' distributions (:attr:`dists`) and the first part's
            ``mc_draws`` and ``seed``.
        :raises ValueError: for no parts or mixed kinds.

        Example::

            >>> import torch
            >>> a = Prediction("gaussian", samples=torch.zeros(2, 3), scale=torch.ones(2, 3))
            >>> Prediction.cat([a, a]).num_samples
            4
        """
        return _concatenated(cls, parts)

    @property
    def dist(self) -> Distribution | None:
        """The per-draw predictive distribution of a generic prediction (``None`` otherwise).

        :raises ValueError: for a generic prediction concatenated from several chunks (read
            :attr:`dists` instead).
        """
        if not self.dists:
            return None
        if len(self.dists) > 1:
            raise ValueError(
                f"Expected a single per-draw distribution, got {len(self.dists)} chunks "
                "(Prediction.cat): read .dists."
            )
        return self.dists[0]

    def __repr__(self) -> str:
        family = f", family={type(self.dists[0]).__name__}" if self.dists else ""
        return (
            f"Prediction(kind={self.kind!r}, num_samples={self.num_samples}, "
            f"num_data={self.samples.shape[1]}, shape={tuple(self.samples.shape)}{family})"
        )

    @property
    def num_samples(self) -> int:
        """Number of posterior draws ``S``."""
        return self.samples.shape[0]

    def __getitem__(
        self, index: int | slice | Tensor | Sequence[int] | Sequence[bool]
    ) -> Prediction:
        """The prediction at some of the data points: every per-draw field indexed along N.

        ``samples``, ``scale``, ``outputs`` (when it has the data dim) and, for the generic
        kind, the per-draw distributions and moments are indexed along their data dimension
        (dim 1); the kind, ``mc_draws`` and ``seed`` are kept. So ``pred[i].mean``,
        ``pred[i].decompose()``, ``pred[i].interval()``, ``pred[i].log_prob(y[i])`` equal
        the full prediction's results at ``i`` (the generic kind's Monte-Carlo draws are the
        full prediction's draws at ``i``; a Gaussian interval agrees to the bisection's
        tolerance, about ``1e-12`` relative).

        :param index: an int (one point; the data dim is kept, N = 1), a slice, a boolean mask of
            length N, or integer positions (a list, an integer tensor or array) over the N points.
        :returns: a :class:`Prediction` of the same kind over the selected points, in order.
        :raises IndexError: for a position out of range or a mask of another length.
        :raises TypeError: for another kind of index (a tuple, a float).
        :raises ValueError: for an index that selects no point.

        Example::

            >>> import torch
            >>> pred = Prediction("gaussian", samples=torch.randn(50, 8), scale=torch.ones(50, 8))
            >>> part = pred[2:5]
            >>> part, torch.allclose(part.mean, pred.mean[2:5])
            (Prediction(kind='gaussian', num_samples=50, num_data=3, shape=(50, 3)), True)
            >>> pred[pred.mean > 0].kind, pred[0].samples.shape  # a mask; one point
            ('gaussian', torch.Size([50, 1]))
        """
        return _indexed(self, _positions(index, self.samples.shape[1], self.samples.device))

    @property
    def mean(self) -> Tensor:
        r"""Predictive mean :math:`\frac1S\sum_s \theta_s`: probabilities ``(N, C)`` / ``(N, ...)``
        for classification, the predictive mean ``(N, ...)`` for gaussian and generic."""
        return self.samples.mean(0)

    @property
    def probs(self) -> Tensor:
        """Predictive probabilities (alias of :attr:`mean`); classification only."""
        if self.kind in ("gaussian", "generic"):
            raise AttributeError(
                f"Prediction(kind={self.kind!r}) has no probs: use .mean and .variance (or "
                ".interval()) for a regression predictive."
            )
        return self.mean

    @property
    def variance(self) -> Tensor:
        r"""Variance of the predictive distribution, shape ``(N, ...)`` / ``(N, C)``.

        Gaussian and generic: the total predictive variance
        :math:`\frac1S\sum_s \mathrm{Var}[y \mid \theta_s] + \mathrm{Var}_s[E[y \mid \theta_s]]`.
        Classification: the variance of the class indicator, :math:`\bar p (1 - \bar p)`.
        """
        if self.kind == "gaussian":
            return _decompose(None, self.samples, self.scale, None, stacklevel=2).total
        if self.kind == "generic":
            return self._decompose_generic(stacklevel=2).total
        mean = self.mean
        return mean * (1.0 - mean)

    @property
    def std(self) -> Tensor:
        """Standard deviation of the predictive distribution (square root of :attr:`variance`)."""
        return self.variance.sqrt()

    def decompose(self) -> Decomposition:
        """Split the predictive uncertainty into total, aleatoric and epistemic parts.

        See :func:`decompose` for the formulas (entropies for classification, variances for
        gaussian); the generic kind uses the law of total variance (see :class:`Prediction`).

        :returns: A :class:`Decomposition` with fields of shape ``(N,)`` or ``(N, ...)``.
        """
        if self.kind == "gaussian":
            return _decompose(None, self.samples, self.scale, "gaussian", stacklevel=2)
        if self.kind == "generic":
            return self._decompose_generic(stacklevel=2)
        return _decompose(self.samples, None, None, self.kind, stacklevel=2)

    def _decompose_generic(self, stacklevel: int) -> Decomposition:
        assert self._variances is not None
        if self.num_samples == 1:
            _warn_single_draw(stacklevel + 1)
        aleatoric = self._variances.mean(0)
        epistemic = self.samples.var(0, correction=0)
        return Decomposition(aleatoric + epistemic, aleatoric, epistemic, "variance")

    def log_prob(self, y: Tensor) -> Tensor:
        r"""Pointwise log predictive density of the mixture over draws, shape ``(N,)``.

        .. math::

            \log p(y_n) = \operatorname{logsumexp}_s \log p(y_n \mid \theta_{s,n}) - \log S

        For outputs with trailing dims ``(N, ...)``, the log densities of one draw are summed
        over the trailing dims before mixing, giving the joint density of datum ``n``.

        :param y: Observations: class labels ``(N,)`` (integer) for categorical, labels in
            ``{0, 1}`` of shape ``(N, ...)`` for bernoulli, real values ``(N, ...)`` for gaussian,
            values in the family's support of shape ``samples.shape[1:]`` for generic.
        :returns: ``(N,)`` log densities.
        :raises ValueError: For a gaussian prediction without ``scale`` (a point mass has no
            density), or labels of the wrong shape / range.

        Example::

            >>> import torch
            >>> pred = Prediction("categorical", samples=torch.tensor([[[0.5, 0.5]], [[1.0, 0.0]]]))
            >>> pred.log_prob(torch.tensor([0])).exp()  # (0.5 + 1.0) / 2
            tensor([0.7500])
        """
        if self.kind == "gaussian" and self.scale is None:
            raise ValueError(
                "Expected a Gaussian prediction with a noise scale to evaluate log_prob, got "
                "scale=None (a noise-free predictive has no density). Build it with "
                "Prediction('gaussian', samples=loc, scale=sigma)."
            )
        y = _checked_targets(self, y)
        if self.kind == "categorical":
            index = y.unsqueeze(0).expand(self.samples.shape[:-1]).unsqueeze(-1)
            log_p = self.samples.gather(-1, index).squeeze(-1).log()
        elif self.kind == "bernoulli":
            p = self.samples
            log_p = torch.where(y == 1, p.log(), torch.log1p(-p))
        elif self.kind == "generic":
            log_p = torch.cat([d.log_prob(y) for d in self.dists])
        else:
            assert self.scale is not None
            log_p = torch.distributions.Normal(self.samples, self.scale).log_prob(y)
        log_p = log_p.reshape(self.num_samples, log_p.shape[1], -1).sum(-1)
        return torch.logsumexp(log_p, 0) - math.log(self.num_samples)

    def _require_gaussian_scale(self, what: str) -> Tensor:
        if self.kind != "gaussian":
            raise ValueError(
                f"{what} is defined for kind='gaussian' only (and for 'generic' families), got "
                f"kind={self.kind!r}. For classification use .probs (and metrics.ece for "
                "calibration)."
            )
        if self.scale is None:
            raise ValueError(
                f"Expected a noise scale for {what}, got scale=None (noise-free). Pass scale= "
                "to Prediction, or use torch.quantile(pred.samples, q, dim=0) for a credible "
                "interval of the mean function."
            )
        return self.scale

    def _sorted_mixture_draws(self) -> Tensor:
        """``S * mc_draws`` seeded draws of the mixture, sorted along dim 0 (generic kind)."""
        dists = self.dists if self._mc_source is None else self._mc_source[0]
        with _seeded(self.seed):
            draws = torch.cat([_as_float(d.sample((self.mc_draws,))) for d in dists], 1)
        if self._mc_source is not None:
            draws = draws[:, :, self._mc_source[1]]
        return draws.reshape((-1,) + draws.shape[2:]).sort(0).values

    def quantile(self, q: float) -> Tensor:
        r"""Quantile ``q`` of the mixture predictive, shape ``(N, ...)``.

        Gaussian: solves :math:`\frac1S \sum_s \Phi((x - \mu_s) / \sigma_s) = q` by vectorised
        bisection in float64 (accurate to about ``1e-12 * (1 + |x|)``). Generic: the empirical
        quantile of ``S * mc_draws`` seeded draws of the mixture (Monte Carlo).

        :param q: Probability level in ``(0, 1)``.
        :returns: ``(N, ...)`` quantiles.

        Example::

            >>> import torch
            >>> pred = Prediction("gaussian", samples=torch.zeros(1, 2), scale=torch.ones(1, 2))
            >>> pred.quantile(0.5)
            tensor([0., 0.])
        """
        scale = None if self.kind == "generic" else self._require_gaussian_scale("quantile")
        if not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
            raise ValueError(f"Expected a quantile level q in (0, 1), got {q!r}.")
        if scale is None:
            return _sorted_quantile(self._sorted_mixture_draws(), float(q))
        return _mixture_normal_quantile(self.samples, scale, float(q))

    def interval(self, level: float = 0.95) -> tuple[Tensor, Tensor]:
        r"""Central predictive interval of the mixture with probability ``level``.

        .. math::

            [\,F^{-1}(\tfrac{1 - \text{level}}2),\; F^{-1}(\tfrac{1 + \text{level}}2)\,],
            \quad F(x) = \frac1S \sum_s \Phi\!\left(\frac{x - \mu_s}{\sigma_s}\right)

        for gaussian; for generic :math:`F` is the empirical CDF of the seeded mixture draws
        (both bounds from the same draws).

        :param level: Coverage probability in ``(0, 1)``.
        :returns: ``(lower, upper)``, each ``(N, ...)``.

        Example::

            >>> import torch
            >>> pred = Prediction("gaussian", samples=torch.zeros(1, 1), scale=torch.ones(1, 1))
            >>> lower, upper = pred.interval(0.95)
            >>> round(float(upper), 4)
            1.96
        """
        if self.kind != "generic":
            self._require_gaussian_scale("interval")
        if not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
            raise ValueError(f"Expected an interval level in (0, 1), got {level!r}.")
        if self.kind == "generic":
            draws = self._sorted_mixture_draws()
            return (
                _sorted_quantile(draws, 0.5 * (1.0 - level)),
                _sorted_quantile(draws, 0.5 * (1.0 + level)),
            )
        return self.quantile(0.5 * (1.0 - level)), self.quantile(0.5 * (1.0 + level))

    def sample_y(self, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw one observation per posterior draw, shape ``(S, N, ...)``.

        Categorical draws are integer labels ``(S, N)``; bernoulli draws are ``0./1.`` floats;
        gaussian draws are ``loc + scale * eps`` (just ``loc`` when ``scale`` is ``None``);
        generic draws come from the family's ``sample`` (with a ``generator``: on the global
        RNG seeded from it, then restored).

        :param generator: Optional random generator for reproducibility.
        :returns: ``(S, N, ...)`` draws from :math:`p(y \mid \theta_s)`.
        """
        if self.kind == "generic":
            if generator is None:
                return torch.cat([d.sample() for d in self.dists])
            seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
            with _seeded(seed):
                return torch.cat([d.sample() for d in self.dists])
        if self.kind == "categorical":
            flat = self.samples.reshape(-1, self.samples.shape[-1])
            draws = torch.multinomial(flat, 1, generator=generator)
            return draws.reshape(self.samples.shape[:-1])
        if self.kind == "bernoulli":
            return torch.bernoulli(self.samples, generator=generator)
        if self.scale is None:
            return self.samples.clone()
        eps = torch.randn(
            self.samples.shape,
            generator=generator,
            dtype=self.samples.dtype,
            device=self.samples.device,
        )
        return self.samples + self.scale * eps


def _checked_targets(pred: Prediction, y: object) -> Tensor:
    """``y`` checked against a prediction's kind and shape, in the dtype its log density needs."""
    event_shape = pred.samples.shape[1:-1] if pred.kind == "categorical" else pred.samples.shape[1:]
    if not isinstance(y, Tensor):
        raise TypeError(f"Expected y to be a torch.Tensor, got {type(y).__name__}.")
    if y.is_complex():
        raise TypeError(f"Expected real-valued y, got dtype {y.dtype}.")
    if y.shape != event_shape:
        raise ValueError(
            f"Expected y of shape {tuple(event_shape)} to match the prediction "
            f"{pred!r}, got shape {tuple(y.shape)}."
        )
    check_finite("y", y)
    if pred.kind == "categorical":
        if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
            raise TypeError(
                f"Expected integer class labels for kind='categorical', got dtype {y.dtype}. "
                "Convert with y.long()."
            )
        num_classes = pred.samples.shape[-1]
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(
                f"Expected class labels in [0, {num_classes - 1}], got values in "
                f"[{int(y.min())}, {int(y.max())}]."
            )
        return y.long()
    if pred.kind == "bernoulli":
        if y.numel() and not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(
                "Expected binary labels y in {0, 1} for kind='bernoulli', got other values."
            )
        return y.to(pred.samples.dtype)
    if pred.kind == "generic":
        return y  # the family's log_prob decides the dtype and checks the support
    return y.to(pred.samples.dtype)


def _prediction_of(
    cls: type[Prediction],
    per_draw: Distribution,
    outputs: Tensor | None,
    closed_form: bool,
    mc_draws: int,
    seed: int,
) -> Prediction:
    """:meth:`Prediction.from_dist`'s work: a closed-form kind where one applies, else generic."""
    if not isinstance(per_draw, Distribution):
        raise TypeError(
            f"Expected per_draw to be a torch Distribution, got {type(per_draw).__name__}."
        )
    check_draws_ndim("per_draw.batch_shape", torch.empty(per_draw.batch_shape), 2, "(S, N, ...)")
    if closed_form:
        base, reinterpreted = _unwrap_independent(per_draw)
        if (
            isinstance(base, torch.distributions.Categorical)
            and not reinterpreted
            and len(base.batch_shape) == 2
        ):
            return cls("categorical", samples=base.probs, outputs=outputs)
        if isinstance(base, torch.distributions.Bernoulli):
            return cls("bernoulli", samples=base.probs, outputs=outputs)
        if isinstance(base, torch.distributions.Normal):
            scale = base.scale.expand_as(base.loc)
            return cls("gaussian", samples=base.loc, scale=scale, outputs=outputs)
    return cls("generic", dist=per_draw, outputs=outputs, mc_draws=mc_draws, seed=seed)


def _concatenated(cls: type[Prediction], parts: Sequence[Prediction]) -> Prediction:
    """:meth:`Prediction.cat`'s work."""
    if not parts:
        raise ValueError("Expected at least one Prediction to concatenate, got none.")
    kinds = {p.kind for p in parts}
    if len(kinds) != 1:
        raise ValueError(f"Expected predictions of one kind, got kinds {sorted(kinds)}.")
    first = parts[0]
    outs = [p.outputs for p in parts]
    outputs = None if any(o is None for o in outs) else torch.cat(cast(list[Tensor], outs))
    if first.kind == "generic":
        dists = [d for p in parts for d in p.dists]
        return cls("generic", dist=dists, outputs=outputs, mc_draws=first.mc_draws, seed=first.seed)
    scales = [p.scale for p in parts]
    if any(s is None for s in scales) and not all(s is None for s in scales):
        raise ValueError("Expected every part with a scale, or none, got a mix.")
    scale = None if scales[0] is None else torch.cat(cast(list[Tensor], scales))
    samples = torch.cat([p.samples for p in parts])
    return cls(first.kind, samples=samples, scale=scale, outputs=outputs)


def _positions(index: object, n: int, device: torch.device) -> Tensor:
    """A 1-D tensor of the positions (in ``[0, n)``) that ``index`` selects of ``n`` points."""
    expected = (
        f"an int, a slice, a boolean mask of length {n} or integer positions in [-{n}, {n}) "
        "over the data points"
    )
    if isinstance(index, (tuple, bool)) or index is None or index is Ellipsis:
        raise TypeError(
            f"Expected {expected}, got {index!r}. A Prediction is indexed over its data points "
            "only; index the draws through pred.samples."
        )
    try:
        positions = torch.arange(n, device=device)[index]  # type: ignore[index]
    except IndexError as e:
        raise IndexError(f"Expected {expected}, got {_describe_index(index)}: {e}") from e
    except (TypeError, RuntimeError, ValueError) as e:
        raise TypeError(f"Expected {expected}, got {_describe_index(index)}: {e}") from e
    if positions.dim() > 1:
        raise TypeError(f"Expected {expected}, got a {positions.dim()}-D index.")
    positions = positions.reshape(-1)
    if positions.numel() == 0:
        raise ValueError(
            f"Expected an index that selects at least one of the {n} data points, got "
            f"{_describe_index(index)}, which selects none."
        )
    return positions


def _describe_index(index: object) -> str:
    if isinstance(index, Tensor):
        return f"a tensor of dtype {index.dtype} and shape {tuple(index.shape)}"
    return repr(index) if len(repr(index)) <= 60 else f"a {type(index).__name__}"


def _indexed(pred: Prediction, positions: Tensor) -> Prediction:
    """:meth:`Prediction.__getitem__`'s work: a shallow copy with every per-point field indexed."""
    n = pred.samples.shape[1]
    out = copy.copy(pred)
    out.samples = pred.samples[:, positions]
    out.scale = None if pred.scale is None else pred.scale[:, positions]
    if pred.outputs is not None:
        if pred.outputs.dim() < 2 or pred.outputs.shape[1] != n:
            raise ValueError(
                f"Expected outputs of shape (S, N, ...) with N = {n} to index them with the "
                f"prediction, got shape {tuple(pred.outputs.shape)}; drop them with "
                "pred.outputs = None first."
            )
        out.outputs = pred.outputs[:, positions]
    if pred.kind == "generic":
        assert pred._variances is not None  # a generic prediction has its moments
        out._variances = pred._variances[:, positions]
        out.dists = tuple(_indexed_dist(d, positions) for d in pred.dists)
        source, kept = pred._mc_source or (pred.dists, None)
        out._mc_source = (source, positions if kept is None else kept[positions])
    return out


def _indexed_dist(d: Distribution, positions: Tensor) -> Distribution:
    """``d`` (batch shape ``(S, N, ...)``) at some of its N points: the same family, rebuilt from
    its parameters (``arg_constraints``) broadcast to the batch shape and indexed along dim 1."""
    if isinstance(d, Independent):
        base = _indexed_dist(d.base_dist, positions)
        return Independent(base, d.reinterpreted_batch_ndims)
    try:
        full = d.expand(d.batch_shape)
        if type(full) is not type(d):
            raise TypeError(f"{type(d).__name__}.expand returned a {type(full).__name__}")
        names = list(d.arg_constraints)
        if {"probs", "logits"} <= set(names):  # one of the two, as the family was built
            names.remove("logits" if "probs" in full.__dict__ else "probs")
        params = {name: getattr(full, name)[:, positions] for name in names}
        return type(d)(**params)
    except (TypeError, ValueError, AttributeError, IndexError, NotImplementedError) as e:
        raise ValueError(
            f"Expected a per-draw distribution that can be rebuilt from its parameters "
            f"(arg_constraints) to index a generic Prediction, but {type(d).__name__} cannot "
            f"({e}). Index the per-draw moments instead: pred.samples[:, index]."
        ) from e
