"""Predictive uncertainty: the :class:`Prediction` object and its decomposition.

Everything here is a pure function of posterior draws laid out with the sample dimension first
(``S`` draws, then ``N`` data points). :func:`decompose` splits the predictive uncertainty into an
aleatoric part (noise the model believes is in the data) and an epistemic part (disagreement
between posterior draws); :class:`Prediction` wraps the draws returned by ``BNN.predict``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import torch
from torch import Tensor

__all__ = ["Decomposition", "Prediction", "decompose"]

PredictionKind = Literal["categorical", "bernoulli", "gaussian"]
_KINDS: tuple[str, ...] = ("categorical", "bernoulli", "gaussian")
_FIELDS: tuple[str, ...] = ("total", "aleatoric", "epistemic")


# --------------------------------------------------------------------------------------------
# Validation helpers (shared with pyro_bdl.metrics)
# --------------------------------------------------------------------------------------------


def _check_tensor(name: str, x: object, *, floating: bool = True) -> Tensor:
    """Return ``x`` if it is a (floating-point) tensor, else raise ``TypeError``."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"Expected {name} to be a torch.Tensor, got {type(x).__name__}. "
            f"Convert it with torch.as_tensor({name}, dtype=torch.float64)."
        )
    if x.is_complex():
        raise TypeError(f"Expected real-valued {name}, got dtype {x.dtype}.")
    if floating and not x.is_floating_point():
        raise TypeError(
            f"Expected {name} to be a floating-point tensor, got dtype {x.dtype}. "
            f"Convert it with {name}.double()."
        )
    return x


def _distinct_entries(x: Tensor) -> Tensor:
    """A view of ``x`` without its broadcast (stride-0) dimensions: the same set of values."""
    index = tuple(
        slice(0, 1) if stride == 0 and size > 1 else slice(None)
        for size, stride in zip(x.shape, x.stride(), strict=True)
    )
    return x[index]


def _check_finite(name: str, x: Tensor) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinite values."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"Expected finite values in {name}, got {n_nan} NaN and {n_inf} infinite entries "
            f"out of {x.numel()}. Check the network outputs (a diverged fit gives NaN)."
        )


def _check_ndim(name: str, x: Tensor, min_ndim: int, layout: str, exact: bool = False) -> None:
    """Raise ``ValueError`` unless ``x`` has ``min_ndim`` dims (at least, or exactly)."""
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


def _check_categorical_probs(name: str, probs: Tensor) -> None:
    """Raise ``ValueError`` unless ``probs`` is finite, >= 0 and sums to 1 on the last dim."""
    _check_finite(name, probs)
    tol = _prob_tol(probs.dtype, probs.shape[-1])
    if probs.numel() == 0:
        return
    low = float(probs.min())
    if low < 0.0:
        raise ValueError(
            f"Expected {name} >= 0 (probabilities), got a minimum of {low:.3g}. "
            f"If these are logits, pass {name}=logits.softmax(-1)."
        )
    dev = float((probs.sum(-1) - 1.0).abs().max())
    if dev > tol:
        raise ValueError(
            f"Expected {name} to sum to 1 along the last (class) dimension within {tol:.1g}, got "
            f"a maximum deviation |sum - 1| = {dev:.3g}. If these are logits or unnormalised "
            f"scores, pass {name}=logits.softmax(-1)."
        )


def _check_bernoulli_probs(name: str, probs: Tensor) -> None:
    """Raise ``ValueError`` unless ``probs`` is finite and inside [0, 1]."""
    _check_finite(name, probs)
    if probs.numel() == 0:
        return
    low, high = float(probs.min()), float(probs.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"Expected {name} in [0, 1] (probability of class 1), got values in "
            f"[{low:.3g}, {high:.3g}]. If these are logits, pass {name}=logits.sigmoid()."
        )


def _broadcast_scale(scale: Tensor, loc: Tensor, name: str = "scale") -> Tensor:
    """Broadcast ``scale`` to ``loc``'s shape or raise ``ValueError`` saying both shapes."""
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
        probs = _check_tensor("probs", probs)
        if kind == "bernoulli":
            _check_ndim("probs", probs, 2, "(S, N, ...)")
            _check_bernoulli_probs("probs", probs)
            entropy = _binary_entropy
        else:
            _check_ndim("probs", probs, 3, "(S, N, C)", exact=True)
            _check_categorical_probs("probs", probs)
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
    loc = _check_tensor("loc", loc)
    _check_ndim("loc", loc, 2, "(S, N, ...)")
    _check_finite("loc", loc)
    if scale is None:
        aleatoric = torch.zeros_like(loc[0])
    else:
        if isinstance(scale, bool) or not isinstance(scale, (Tensor, int, float)):
            raise TypeError(f"Expected scale as a tensor or a number, got {type(scale).__name__}.")
        if isinstance(scale, Tensor):
            _check_tensor("scale", scale)
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        scale = _broadcast_scale(scale, loc)
        _check_finite("scale", scale)
        if scale.numel() and float(scale.min()) < 0.0:
            raise ValueError(
                f"Expected scale >= 0 (a standard deviation), got a minimum of "
                f"{float(scale.min()):.3g}. If the network outputs an unconstrained scale, "
                "apply softplus or exp first."
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


class Prediction:
    r"""Posterior predictive draws for ``N`` inputs, as returned by ``BNN.predict``.

    Holds one predictive parameter per posterior draw, sample dimension first, and derives the
    posterior predictive (the equally weighted mixture over the draws) from them.

    :param kind: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
    :param samples: Per-draw predictive parameter: class probabilities ``(S, N, C)``
        (categorical), probability of class 1 ``(S, N, ...)`` (bernoulli) or location
        ``(S, N, ...)`` (gaussian).
    :param scale: Gaussian only: per-draw noise standard deviation, broadcastable to
        ``samples`` and positive; ``None`` for a noise-free predictive.
    :param outputs: Raw network outputs, kept unchanged for the user (any shape).
    :raises TypeError: If ``samples``/``scale``/``outputs`` are not tensors.
    :raises ValueError: If ``kind`` is unknown, shapes are wrong or values invalid.

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
        samples: Tensor,
        scale: Tensor | None = None,
        outputs: Tensor | None = None,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"Expected kind in {list(_KINDS)}, got {kind!r}.")
        samples = _check_tensor("samples", samples)
        if kind == "categorical":
            _check_ndim("samples", samples, 3, "(S, N, C)", exact=True)
            _check_categorical_probs("samples", samples)
        elif kind == "bernoulli":
            _check_ndim("samples", samples, 2, "(S, N, ...)")
            _check_bernoulli_probs("samples", samples)
        else:
            _check_ndim("samples", samples, 2, "(S, N, ...)")
            _check_finite("samples", samples)
        if scale is not None:
            if kind != "gaussian":
                raise ValueError(
                    f"Expected scale=None for kind={kind!r} (scale is the Gaussian noise std), "
                    "got a tensor. Drop scale= or use kind='gaussian'."
                )
            scale = _broadcast_scale(_check_tensor("scale", scale), samples)
            distinct = _distinct_entries(scale).detach()  # an expanded scale: its values once
            _check_finite("scale", distinct)
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

    def __repr__(self) -> str:
        return (
            f"Prediction(kind={self.kind!r}, num_samples={self.num_samples}, "
            f"num_data={self.samples.shape[1]}, shape={tuple(self.samples.shape)})"
        )

    @property
    def num_samples(self) -> int:
        """Number of posterior draws ``S``."""
        return self.samples.shape[0]

    @property
    def mean(self) -> Tensor:
        r"""Predictive mean :math:`\frac1S\sum_s \theta_s`: probabilities ``(N, C)`` / ``(N, ...)``
        for classification, the predictive mean ``(N, ...)`` for gaussian."""
        return self.samples.mean(0)

    @property
    def probs(self) -> Tensor:
        """Predictive probabilities (alias of :attr:`mean`); classification only."""
        if self.kind == "gaussian":
            raise AttributeError(
                "Prediction(kind='gaussian') has no probs: use .mean and .variance (or "
                ".interval()) for a regression predictive."
            )
        return self.mean

    @property
    def variance(self) -> Tensor:
        r"""Variance of the predictive distribution, shape ``(N, ...)`` / ``(N, C)``.

        Gaussian: the total predictive variance :math:`\overline{\sigma^2} + \mathrm{Var}_s[\mu_s]`.
        Classification: the variance of the class indicator, :math:`\bar p (1 - \bar p)`.
        """
        if self.kind == "gaussian":
            return _decompose(None, self.samples, self.scale, None, stacklevel=2).total
        mean = self.mean
        return mean * (1.0 - mean)

    @property
    def std(self) -> Tensor:
        """Standard deviation of the predictive distribution (square root of :attr:`variance`)."""
        return self.variance.sqrt()

    def decompose(self) -> Decomposition:
        """Split the predictive uncertainty into total, aleatoric and epistemic parts.

        See :func:`decompose` for the formulas (entropies for classification, variances for
        gaussian).

        :returns: A :class:`Decomposition` with fields of shape ``(N,)`` or ``(N, ...)``.
        """
        if self.kind == "gaussian":
            return _decompose(None, self.samples, self.scale, "gaussian", stacklevel=2)
        return _decompose(self.samples, None, None, self.kind, stacklevel=2)

    def _check_y(self, y: object) -> Tensor:
        event_shape = (
            self.samples.shape[1:-1] if self.kind == "categorical" else self.samples.shape[1:]
        )
        if not isinstance(y, Tensor):
            raise TypeError(f"Expected y to be a torch.Tensor, got {type(y).__name__}.")
        if y.is_complex():
            raise TypeError(f"Expected real-valued y, got dtype {y.dtype}.")
        if y.shape != event_shape:
            raise ValueError(
                f"Expected y of shape {tuple(event_shape)} to match the prediction "
                f"{self!r}, got shape {tuple(y.shape)}."
            )
        _check_finite("y", y)
        if self.kind == "categorical":
            if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
                raise TypeError(
                    f"Expected integer class labels for kind='categorical', got dtype {y.dtype}. "
                    "Convert with y.long()."
                )
            num_classes = self.samples.shape[-1]
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
                raise ValueError(
                    f"Expected class labels in [0, {num_classes - 1}], got values in "
                    f"[{int(y.min())}, {int(y.max())}]."
                )
            return y.long()
        if self.kind == "bernoulli":
            if y.numel() and not bool(((y == 0) | (y == 1)).all()):
                raise ValueError(
                    "Expected binary labels y in {0, 1} for kind='bernoulli', got other values."
                )
            return y.to(self.samples.dtype)
        return y.to(self.samples.dtype)

    def log_prob(self, y: Tensor) -> Tensor:
        r"""Pointwise log predictive density of the mixture over draws, shape ``(N,)``.

        .. math::

            \log p(y_n) = \operatorname{logsumexp}_s \log p(y_n \mid \theta_{s,n}) - \log S

        For outputs with trailing dims ``(N, ...)``, the log densities of one draw are summed
        over the trailing dims before mixing, giving the joint density of datum ``n``.

        :param y: Observations: class labels ``(N,)`` (integer) for categorical, labels in
            ``{0, 1}`` of shape ``(N, ...)`` for bernoulli, real values ``(N, ...)`` for gaussian.
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
        y = self._check_y(y)
        if self.kind == "categorical":
            index = y.unsqueeze(0).expand(self.samples.shape[:-1]).unsqueeze(-1)
            log_p = self.samples.gather(-1, index).squeeze(-1).log()
        elif self.kind == "bernoulli":
            p = self.samples
            log_p = torch.where(y == 1, p.log(), torch.log1p(-p))
        else:
            assert self.scale is not None
            log_p = torch.distributions.Normal(self.samples, self.scale).log_prob(y)
        log_p = log_p.reshape(self.num_samples, log_p.shape[1], -1).sum(-1)
        return torch.logsumexp(log_p, 0) - math.log(self.num_samples)

    def _require_gaussian_scale(self, what: str) -> Tensor:
        if self.kind != "gaussian":
            raise ValueError(
                f"{what} is defined for kind='gaussian' only, got kind={self.kind!r}. For "
                "classification use .probs (and metrics.ece for calibration)."
            )
        if self.scale is None:
            raise ValueError(
                f"Expected a noise scale for {what}, got scale=None (noise-free). Pass scale= "
                "to Prediction, or use torch.quantile(pred.samples, q, dim=0) for a credible "
                "interval of the mean function."
            )
        return self.scale

    def quantile(self, q: float) -> Tensor:
        r"""Quantile ``q`` of the Gaussian mixture predictive, shape ``(N, ...)``.

        Solves :math:`\frac1S \sum_s \Phi((x - \mu_s) / \sigma_s) = q` by vectorised bisection
        in float64 (accurate to about ``1e-12 * (1 + |x|)``).

        :param q: Probability level in ``(0, 1)``.
        :returns: ``(N, ...)`` quantiles.

        Example::

            >>> import torch
            >>> pred = Prediction("gaussian", samples=torch.zeros(1, 2), scale=torch.ones(1, 2))
            >>> pred.quantile(0.5)
            tensor([0., 0.])
        """
        scale = self._require_gaussian_scale("quantile")
        if not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
            raise ValueError(f"Expected a quantile level q in (0, 1), got {q!r}.")
        return _mixture_normal_quantile(self.samples, scale, float(q))

    def interval(self, level: float = 0.95) -> tuple[Tensor, Tensor]:
        r"""Central predictive interval of the Gaussian mixture with probability ``level``.

        .. math::

            [\,F^{-1}(\tfrac{1 - \text{level}}2),\; F^{-1}(\tfrac{1 + \text{level}}2)\,],
            \quad F(x) = \frac1S \sum_s \Phi\!\left(\frac{x - \mu_s}{\sigma_s}\right)

        :param level: Coverage probability in ``(0, 1)``.
        :returns: ``(lower, upper)``, each ``(N, ...)``.

        Example::

            >>> import torch
            >>> pred = Prediction("gaussian", samples=torch.zeros(1, 1), scale=torch.ones(1, 1))
            >>> lower, upper = pred.interval(0.95)
            >>> round(float(upper), 4)
            1.96
        """
        self._require_gaussian_scale("interval")
        if not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
            raise ValueError(f"Expected an interval level in (0, 1), got {level!r}.")
        return self.quantile(0.5 * (1.0 - level)), self.quantile(0.5 * (1.0 + level))

    def sample_y(self, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw one observation per posterior draw, shape ``(S, N, ...)``.

        Categorical draws are integer labels ``(S, N)``; bernoulli draws are ``0./1.`` floats;
        gaussian draws are ``loc + scale * eps`` (just ``loc`` when ``scale`` is ``None``).

        :param generator: Optional random generator for reproducibility.
        :returns: ``(S, N, ...)`` draws from :math:`p(y \mid \theta_s)`.
        """
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
