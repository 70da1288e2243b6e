r"""Recalibration: temperature scaling and split-conformal prediction.

Both are fitted on a held-out *validation* (calibration) split, after the model is trained, and
work on a :class:`~pyro_bdl.uncertainty.Prediction` from any posterior type (``BNN.predict``, a
deep ensemble, Laplace, SWAG, SG-MCMC draws) or on plain tensors:

- :class:`TemperatureScaling` (Guo et al. 2017) fits one temperature :math:`T > 0` that
  minimises the validation NLL of the posterior predictive, and :func:`temper` applies a
  temperature. It changes confidence, never the ranking of one draw's classes.
- :class:`SplitConformalRegressor` turns point predictions or a Gaussian predictive into
  intervals, and :class:`APSConformalClassifier` (adaptive prediction sets, Romano, Sesia &
  Candès 2020) turns class probabilities into prediction sets, both with the finite-sample
  guarantee of split conformal prediction (Vovk et al. 2005; Lei et al. 2018): for exchangeable
  calibration and test data,

  .. math::

      P(y_{\text{test}} \in C(x_{\text{test}})) \ge 1 - \alpha,

  and, when the scores have no ties (continuous scores; APS with ``randomized=True``), also
  :math:`\le 1 - \alpha + 1 / (n + 1)`, with ``n`` calibration points.
  :func:`conformal_quantile` is the quantile both use; :func:`set_size` and
  :func:`set_coverage` score prediction sets (:func:`pyro_bdl.metrics.coverage` scores finite
  intervals).

**What temperature scaling tempers.** With per-draw class probabilities :math:`p_s`
(:math:`s = 1..S`), the tempered prediction is

.. math::

    p_s^{(T)} = \operatorname{softmax}(\log p_s / T), \qquad
    \bar p^{(T)} = \frac1S \sum_s p_s^{(T)},

i.e. every draw's log-probabilities are divided by :math:`T` (their logits up to a constant
that the softmax removes) and the draws are averaged afterwards, and :math:`T` minimises the
NLL of the mixture :math:`\bar p^{(T)}`, the posterior predictive that the metrics score. This
choice needs nothing but the per-draw probabilities, so it is the same for every posterior type;
it keeps the ``S`` draws, so the result is again a ``Prediction`` of the same kind whose
:meth:`~pyro_bdl.uncertainty.Prediction.decompose` still separates epistemic from aleatoric
uncertainty; and with one draw (a MAP network) it *is* Guo et al.'s temperature scaling of the
logits, :math:`\operatorname{softmax}(z / T)`. A bernoulli draw's logit
:math:`\log p_s - \log(1 - p_s)` is divided by :math:`T` the same way.

To temper the pooled predictive instead (pool-then-calibrate, Rahaman & Thiery 2021: tempering
:math:`\log \bar p`), pass the ``(N, C)`` tensor ``pred.probs``: a plain tensor is one
predictive, tempered as a single draw. The two fits generally give different temperatures, so a
:class:`TemperatureScaling` fitted on one kind of input refuses the other.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, cast, overload

import torch
from torch import Tensor

from ._checks import as_tensor, check_finite, check_float, check_real_tensor, check_seed
from .uncertainty import Prediction, check_categorical_probs

__all__ = [
    "APSConformalClassifier",
    "SplitConformalRegressor",
    "TemperatureScaling",
    "conformal_quantile",
    "set_coverage",
    "set_size",
    "temper",
]

ClassKind = Literal["categorical", "bernoulli"]

#: Points of the log-temperature grid searched before Brent's refinement.
GRID_POINTS = 21
#: Relative (and absolute) tolerance of the fitted log-temperature.
LOG_T_TOL = 1e-8
_GOLDEN_STEP = (3.0 - math.sqrt(5.0)) / 2.0


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(
            f"Expected alpha to be a float in (0, 1) (the miscoverage rate, e.g. 0.1 for 90 % "
            f"coverage), got {type(alpha).__name__}."
        )
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(
            f"Expected alpha in (0, 1) (the miscoverage rate, e.g. 0.1 for 90 % coverage), got "
            f"{alpha!r}. For a coverage level of 0.9 pass alpha=0.1."
        )
    return float(alpha)


def _classification_draws(name: str, pred: Any) -> tuple[ClassKind, Tensor, bool]:
    """``(kind, per-draw probabilities with the sample dim first, is_prediction)``.

    A plain ``(N, C)`` tensor is one categorical draw, a plain ``(N,)`` tensor one bernoulli
    draw (probability of class 1).
    """
    if isinstance(pred, Prediction):
        if pred.kind not in ("categorical", "bernoulli"):
            raise ValueError(
                f"Expected {name} to be a classification Prediction (kind 'categorical' or "
                f"'bernoulli'), got kind={pred.kind!r}. For regression use "
                "SplitConformalRegressor."
            )
        return cast(ClassKind, pred.kind), pred.samples, True
    probs = check_real_tensor(name, as_tensor(name, pred))
    if probs.dim() not in (1, 2):
        raise ValueError(
            f"Expected {name} to be a Prediction, class probabilities of shape (N, C) or "
            f"probabilities of class 1 of shape (N,), got a tensor of shape "
            f"{tuple(probs.shape)}. For per-draw probabilities (S, N, C) build "
            f"Prediction('categorical', samples={name})."
        )
    if probs.shape[0] == 0:
        raise ValueError(
            f"Expected at least one data point in {name}, got shape {tuple(probs.shape)}."
        )
    if probs.dim() == 2:
        check_categorical_probs(name, probs)
        return "categorical", probs.unsqueeze(0), False
    check_finite(name, probs)
    low, high = float(probs.min()), float(probs.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"Expected {name} in [0, 1] (probability of class 1), got values in "
            f"[{low:.3g}, {high:.3g}]. If these are logits, pass {name}=logits.sigmoid()."
        )
    return "bernoulli", probs.unsqueeze(0), False


def _labels(y: Any, kind: ClassKind, draws: Tensor) -> Tensor:
    """Integer labels for per-draw probabilities ``draws``: ``(N,)`` or, bernoulli, ``(N, ...)``
    (bernoulli labels may also be float or bool ``0``/``1``, as ``Prediction.log_prob`` takes)."""
    y = as_tensor("y", y, draws)
    if not isinstance(y, Tensor):
        raise TypeError(f"Expected labels y to be a torch.Tensor, got {type(y).__name__}.")
    shape = draws.shape[1:-1] if kind == "categorical" else draws.shape[1:]
    if y.shape != shape:
        raise ValueError(
            f"Expected labels y of shape {tuple(shape)} (one per data point of the "
            f"predictions), got shape {tuple(y.shape)}. Pass the labels of the same split."
        )
    if kind == "bernoulli" and (y.is_floating_point() or y.dtype == torch.bool):
        check_finite("y", y, hint="Remove or impute missing labels first.")
        if y.numel() and not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(
                "Expected binary labels y in {0, 1} for a bernoulli prediction, got other "
                "values. Threshold or map the labels to 0 and 1 first."
            )
        return y.long()
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(
            f"Expected integer class labels y (torch.long), got dtype {y.dtype}. Convert with "
            "y.long() (after removing any NaN)."
        )
    high = draws.shape[-1] - 1 if kind == "categorical" else 1
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > high):
        raise ValueError(
            f"Expected class labels in [0, {high}], got values in [{int(y.min())}, "
            f"{int(y.max())}]. Labels must index the columns of the probabilities."
        )
    return y.long()


def _not_fitted(what: str) -> RuntimeError:
    return RuntimeError(
        f"Expected a fitted {what}, but fit(...) was not called yet: call fit first."
    )


# --------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------


def _log_draws(kind: ClassKind, draws: Tensor) -> Tensor:
    """Per-draw log-probabilities (categorical) or logits (bernoulli); ``-inf`` for 0."""
    if kind == "categorical":
        return draws.log()
    return draws.log() - torch.log1p(-draws)


def _tempered_logs(kind: ClassKind, logs: Tensor, temperature: float) -> Tensor:
    """Tempered per-draw log-probabilities (categorical) or logits (bernoulli)."""
    scaled = logs / temperature
    return scaled.log_softmax(-1) if kind == "categorical" else scaled


def _mixture_nll(kind: ClassKind, logs: Tensor, y: Tensor, temperature: float) -> float:
    """Mean NLL of the mixture over draws at ``temperature`` (trailing dims scored jointly)."""
    tempered = _tempered_logs(kind, logs, temperature)
    if kind == "categorical":
        index = y.unsqueeze(0).expand(tempered.shape[:-1]).unsqueeze(-1)
        log_p = tempered.gather(-1, index).squeeze(-1)
    else:
        sign = 2.0 * y.to(tempered.dtype) - 1.0
        log_p = torch.nn.functional.logsigmoid(sign * tempered)
    log_p = log_p.reshape(log_p.shape[0], log_p.shape[1], -1).sum(-1)
    mixture = torch.logsumexp(log_p, 0) - math.log(log_p.shape[0])
    return float(-mixture.mean())


def _minimise_log_t(f: Any, lo: float, hi: float) -> tuple[float, float]:
    """Minimise ``f(log T)`` over ``[lo, hi]``: a grid (with ``log T = 0``), then Brent's
    method in the bracket around the best grid point. Returns ``(log T, f(log T))``, never worse
    than the best grid point."""
    grid = sorted({*torch.linspace(lo, hi, GRID_POINTS, dtype=torch.float64).tolist(), 0.0})
    grid = [g for g in grid if lo <= g <= hi]
    values = [f(g) for g in grid]
    best = min(range(len(grid)), key=lambda i: (values[i], abs(grid[i])))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    return _brent(f, a, b, grid[best], values[best])


def _brent(f: Any, a: float, b: float, x: float, fx: float) -> tuple[float, float]:
    """Brent's minimisation (parabolic steps, golden-section fallback) of ``f`` on ``[a, b]``
    from its best known point ``x`` (Press et al., Numerical Recipes, ``brent``)."""
    w = v = x
    fw = fv = fx
    d = e = 0.0
    for _ in range(200):
        mid = 0.5 * (a + b)
        tol1 = LOG_T_TOL * abs(x) + LOG_T_TOL
        if abs(x - mid) <= 2.0 * tol1 - 0.5 * (b - a):
            break
        golden = True
        if abs(e) > tol1:  # try a parabola through x, w, v
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            p = -p if q > 0.0 else p
            q = abs(q)
            e_old, e = e, d
            if abs(p) < abs(0.5 * q * e_old) and q * (a - x) < p < q * (b - x):
                d = p / q
                if (x + d) - a < 2.0 * tol1 or b - (x + d) < 2.0 * tol1:
                    d = math.copysign(tol1, mid - x)
                golden = False
        if golden:
            e = (a - x) if x >= mid else (b - x)
            d = _GOLDEN_STEP * e
        u = x + (d if abs(d) >= tol1 else math.copysign(tol1, d))
        fu = f(u)
        if fu <= fx:
            a, b = (x, b) if u >= x else (a, x)
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
        else:
            a, b = (a, u) if u >= x else (u, b)
            if fu <= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu <= fv or v in (x, w):
                v, fv = u, fu
    return x, fx


@overload
def temper(pred: Prediction, temperature: float) -> Prediction: ...


@overload
def temper(pred: Tensor, temperature: float) -> Tensor: ...


def temper(pred: Prediction | Tensor, temperature: float) -> Prediction | Tensor:
    r"""Apply a temperature to classification predictions.

    Every draw's log-probabilities are divided by ``temperature`` and renormalised,
    :math:`p_s^{(T)} = \operatorname{softmax}(\log p_s / T)` (bernoulli:
    :math:`\sigma(\operatorname{logit} p_s / T)`); see the module docstring for why the draws,
    not their average, are tempered. :math:`T > 1` softens, :math:`T < 1` sharpens; ``T = 1``
    returns the input's values exactly. Probabilities 0 and 1 stay 0 and 1.

    :param pred: A classification :class:`~pyro_bdl.uncertainty.Prediction` (kind
        ``"categorical"`` with samples ``(S, N, C)`` or ``"bernoulli"`` with ``(S, N, ...)``),
        class probabilities ``(N, C)``, or probabilities of class 1 ``(N,)``.
    :param temperature: :math:`T > 0`.
    :returns: The same kind of object and shape: a ``Prediction`` (with ``outputs=None``: the raw
        network outputs are not tempered) or a tensor.
    :raises ValueError: For a regression prediction, invalid probabilities or ``T <= 0``.

    Example::

        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
        >>> tempered = temper(logits.softmax(-1), 2.0)
        >>> torch.allclose(tempered, (logits / 2.0).softmax(-1))
        True
        >>> pred = Prediction("categorical", samples=logits.softmax(-1).expand(4, 1, 3))
        >>> temper(pred, 2.0).samples.shape
        torch.Size([4, 1, 3])
    """
    temperature = check_float("temperature", temperature)
    kind, draws, is_prediction = _classification_draws("pred", pred)
    if temperature == 1.0:
        out = draws.clone()
    else:
        tempered = _tempered_logs(kind, _log_draws(kind, draws), temperature)
        out = tempered.exp() if kind == "categorical" else tempered.sigmoid()
    if is_prediction:
        return Prediction(kind, samples=out)
    return out[0]


class TemperatureScaling:
    r"""Temperature scaling (Guo et al. 2017) of any posterior's classification predictions.

    :meth:`fit` finds the temperature :math:`T` that minimises the validation NLL of the
    posterior predictive,

    .. math::

        \hat T = \arg\min_{T} -\frac1N \sum_n \log \frac1S \sum_s
        \operatorname{softmax}(\log p_s(x_n) / T)_{y_n},

    over ``bounds``: a grid of 21 log-temperatures (``T = 1`` included), then Brent's method
    on :math:`\log T` in the bracket around the best grid point (to about ``1e-8``), about 30
    evaluations of the NLL in all, each :math:`O(SNC)`. It is deterministic and needs no
    gradients; the grid guards against the local minima the mixture NLL can have when
    ``S > 1`` (with one draw it is convex in :math:`1/T`). The fitted NLL is never above the
    NLL at ``T = 1``. Calling the fitted object applies :func:`temper`.

    A plain ``(N, C)`` / ``(N,)`` tensor is tempered as a single predictive (the pooled
    predictive when it is ``pred.probs``); the object refuses to apply a temperature fitted on a
    ``Prediction`` to a tensor, or the reverse (see the module docstring).

    :param bounds: ``(T_min, T_max)`` with ``0 < T_min < 1 < T_max``.
    :ivar temperature: The fitted :math:`\hat T` (float), ``None`` before :meth:`fit`.
    :ivar nll_before: Validation NLL at ``T = 1`` (nats per data point).
    :ivar nll_after: Validation NLL at :math:`\hat T`.

    Example::

        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> logits = 3.0 * torch.randn(2000, 4, generator=g)
        >>> y = torch.multinomial(logits.softmax(-1), 1, generator=g).squeeze(-1)
        >>> overconfident = Prediction("categorical", samples=(2.0 * logits).softmax(-1)[None])
        >>> ts = TemperatureScaling().fit(overconfident, y)
        >>> 1.8 < ts.temperature < 2.2, ts.nll_after < ts.nll_before
        (True, True)
        >>> ts(overconfident).kind
        'categorical'
    """

    def __init__(self, bounds: tuple[float, float] = (1e-2, 1e2)) -> None:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise TypeError(f"Expected bounds=(T_min, T_max), got {bounds!r}.")
        lo = check_float("bounds[0]", bounds[0])
        hi = check_float("bounds[1]", bounds[1])
        if not lo < 1.0 < hi:
            raise ValueError(
                f"Expected bounds (T_min, T_max) with 0 < T_min < 1 < T_max, got {bounds!r}; "
                "e.g. bounds=(0.01, 100)."
            )
        self.bounds = (lo, hi)
        self.temperature: float | None = None
        self.nll_before: float | None = None
        self.nll_after: float | None = None
        self._fitted_on: str | None = None

    def __repr__(self) -> str:
        t = "not fitted" if self.temperature is None else f"temperature={self.temperature:.4g}"
        return f"TemperatureScaling({t})"

    def fit(self, pred: Prediction | Tensor, y: Tensor) -> TemperatureScaling:
        """Fit the temperature on a validation split.

        :param pred: Validation predictions: a classification
            :class:`~pyro_bdl.uncertainty.Prediction`, probabilities ``(N, C)`` or ``(N,)``.
        :param y: Integer labels ``(N,)`` (bernoulli: ``{0, 1}`` labels of the samples' shape
            without the draws).
        :returns: ``self``, fitted.
        :raises ValueError: For invalid probabilities, labels out of range or of another shape.
        :raises TypeError: For float labels of a categorical prediction.
        :raises UserWarning: (a warning) if the fitted temperature is at a bound (the NLL
            still decreases beyond it, e.g. for predictions that separate the validation data
            perfectly).
        """
        kind, draws, is_prediction = _classification_draws("pred", pred)
        labels = _labels(y, kind, draws)
        logs = _log_draws(kind, draws.detach())
        lo, hi = math.log(self.bounds[0]), math.log(self.bounds[1])
        log_t, nll_after = _minimise_log_t(
            lambda t: _mixture_nll(kind, logs, labels, math.exp(t)), lo, hi
        )
        self.nll_before = _mixture_nll(kind, logs, labels, 1.0)
        self.temperature, self.nll_after = math.exp(log_t), nll_after
        self._fitted_on = "Prediction" if is_prediction else "tensor"
        at_low, at_high = log_t - lo < 1e-6, hi - log_t < 1e-6
        if at_low or at_high:
            why = (
                "the predictions separate the validation classes perfectly (too few "
                "validation points?)"
                if at_low
                else "the predictions carry no useful information about the validation "
                "labels (or do not match them), so the NLL keeps falling towards the uniform "
                "prediction"
            )
            warnings.warn(
                f"The fitted temperature {self.temperature:.4g} is at the bound of bounds="
                f"{self.bounds}: the validation NLL still decreases beyond it. Likely {why}; "
                "check the predictions and labels, use more validation data, or widen bounds.",
                UserWarning,
                stacklevel=2,
            )
        return self

    @overload
    def __call__(self, pred: Prediction) -> Prediction: ...

    @overload
    def __call__(self, pred: Tensor) -> Tensor: ...

    def __call__(self, pred: Prediction | Tensor) -> Prediction | Tensor:
        """Temper predictions with the fitted temperature (see :func:`temper`).

        :param pred: A classification Prediction, or a tensor if the fit was on a tensor.
        :returns: The tempered predictions, of the input's type and shape.
        :raises RuntimeError: Before :meth:`fit`.
        :raises ValueError: For a Prediction when the fit was on a tensor, or the reverse.
        """
        if self.temperature is None:
            raise _not_fitted("TemperatureScaling")
        got = "Prediction" if isinstance(pred, Prediction) else "tensor"
        if got != self._fitted_on:
            raise ValueError(
                f"Expected a {self._fitted_on} (the kind of input the temperature was fitted "
                f"on), got a {got}. A Prediction's draws and a plain tensor (one pooled "
                "predictive) are tempered differently: fit and apply on the same kind of input."
            )
        return temper(pred, self.temperature)


# --------------------------------------------------------------------------------------------
# Split conformal prediction
# --------------------------------------------------------------------------------------------


def conformal_quantile(scores: Tensor, alpha: float) -> float:
    r"""The split-conformal threshold of calibration ``scores``.

    The :math:`k`-th smallest of the :math:`n` scores with
    :math:`k = \lceil (n + 1)(1 - \alpha) \rceil`, i.e. the empirical quantile at level
    :math:`k / n`; ``inf`` when :math:`k > n` (fewer than :math:`1/\alpha - 1` calibration
    points: no finite threshold has the guarantee). A test point whose score is at most the
    threshold is covered with probability at least :math:`1 - \alpha`. The product
    :math:`(n + 1)(1 - \alpha)` is rounded down to an integer within ``1e-9`` of it, so
    ``alpha=0.1`` with ``n = 99`` gives ``k = 90``, not 91.

    :param scores: Non-conformity scores ``(n,)`` (finite or ``+inf``; no NaN).
    :param alpha: Miscoverage rate in ``(0, 1)``.
    :returns: The threshold (a float, possibly ``inf``).

    Example::

        >>> import torch
        >>> conformal_quantile(torch.arange(1.0, 11.0), 0.2)  # k = ceil(11 * 0.8) = 9
        9.0
        >>> conformal_quantile(torch.arange(1.0, 5.0), 0.1)  # k = 5 > n = 4
        inf
    """
    alpha = _check_alpha(alpha)
    scores = check_real_tensor("scores", scores)
    if scores.dim() != 1 or scores.numel() == 0:
        raise ValueError(
            f"Expected scores of shape (n,) with n >= 1 (one per calibration point), got shape "
            f"{tuple(scores.shape)}."
        )
    if bool(torch.isnan(scores).any()):
        raise ValueError(
            f"Expected scores without NaN, got {int(torch.isnan(scores).sum())} NaN entries. "
            "Check the predictions and targets of the calibration split."
        )
    n = scores.numel()
    k = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)
    if k > n:
        return math.inf
    return float(scores.sort().values[max(k, 1) - 1])


def _warn_infinite(n: int, alpha: float) -> None:
    warnings.warn(
        f"With n = {n} calibration points and alpha = {alpha}, ceil((n + 1)(1 - alpha)) > n: "
        "no finite threshold has the coverage guarantee, so every interval is infinite "
        f"(every set holds all classes). Use at least {math.ceil(1.0 / alpha - 1.0 - 1e-9)} "
        "calibration points, or a larger alpha.",
        UserWarning,
        stacklevel=3,
    )


def _regression_inputs(pred: Any, scale: Any, need_scale: bool) -> tuple[Tensor, Tensor | None]:
    """``(center (N,), std (N,) or None)`` from a regression Prediction or point predictions."""
    if isinstance(pred, Prediction):
        if pred.kind not in ("gaussian", "generic"):
            raise ValueError(
                f"Expected a regression Prediction (kind 'gaussian' or 'generic'), got "
                f"kind={pred.kind!r}. For classification use APSConformalClassifier."
            )
        if scale is not None:
            raise ValueError(
                "Expected scale=None with a Prediction (its predictive std is used), got a "
                "scale. Drop scale=, or pass point predictions with scale=."
            )
        n = pred.samples.shape[1]
        if pred.samples.shape[1:] not in ((n,), (n, 1)):
            raise ValueError(
                f"Expected a single-output Prediction (samples of shape (S, N) or (S, N, 1)), "
                f"got samples of shape {tuple(pred.samples.shape)}. Conformalise each output "
                "separately, e.g. with point predictions pred.mean[:, j] and "
                "scale=pred.std[:, j]."
            )
        center = pred.mean.reshape(n)
        if not need_scale:
            return center, None
        with warnings.catch_warnings():  # one draw is fine here: its std is the noise's
            warnings.filterwarnings("ignore", "Got a single posterior draw", UserWarning)
            return center, pred.std.reshape(n)
    center = check_real_tensor("loc", as_tensor("loc", pred))
    if center.dim() == 2 and center.shape[1] == 1:
        center = center.reshape(-1)
    if center.dim() != 1 or center.numel() == 0:
        raise ValueError(
            f"Expected a regression Prediction or point predictions loc of shape (N,) (or "
            f"(N, 1)) with N >= 1, got shape {tuple(center.shape)}. For posterior draws (S, N) "
            "build Prediction('gaussian', samples=draws, scale=noise_std)."
        )
    check_finite("loc", center)
    if not need_scale:
        return center, None
    if scale is None:
        raise ValueError(
            "Expected a predictive std for score='normalized', got point predictions without "
            "scale=. Pass a Prediction, or scale= (shape (N,)), or use score='abs'."
        )
    std = check_real_tensor("scale", as_tensor("scale", scale, center))
    if std.shape != center.shape and std.shape != center.shape + (1,):
        raise ValueError(
            f"Expected scale of shape {tuple(center.shape)} (one std per prediction), got shape "
            f"{tuple(std.shape)}."
        )
    return center, std.reshape(center.shape)


def _checked_std(std: Tensor) -> Tensor:
    check_finite("the predictive std", std)
    if float(std.min()) <= 0.0:
        raise ValueError(
            f"Expected a predictive std > 0 everywhere for score='normalized', got a minimum of "
            f"{float(std.min()):.3g}. A noise-free Prediction with one draw has std 0: give it "
            "a scale, or use score='abs'."
        )
    return std


def _regression_targets(y: Any, center: Tensor) -> Tensor:
    y = check_real_tensor("y", as_tensor("y", y, center), floating=False)
    if y.shape == center.shape + (1,):
        y = y.reshape(center.shape)
    if y.shape != center.shape:
        raise ValueError(
            f"Expected targets y of shape {tuple(center.shape)} (one per prediction), got shape "
            f"{tuple(y.shape)}. Pass the targets of the same split."
        )
    check_finite("y", y, hint="Remove or impute missing targets first.")
    return y.to(center.dtype)


class SplitConformalRegressor:
    r"""Split-conformal prediction intervals for regression (Lei et al. 2018).

    On a calibration split, the scores are

    - ``score="abs"``: :math:`s_i = |y_i - \hat\mu(x_i)|`, intervals
      :math:`\hat\mu(x) \pm \hat q` of constant width;
    - ``score="normalized"``: :math:`s_i = |y_i - \hat\mu(x_i)| / \hat\sigma(x_i)`, intervals
      :math:`\hat\mu(x) \pm \hat q\, \hat\sigma(x)` that adapt to the predicted uncertainty,

    with :math:`\hat\mu` the predictive mean (or the point predictions) and :math:`\hat\sigma`
    the predictive std of a :class:`~pyro_bdl.uncertainty.Prediction` (aleatoric and epistemic
    together) or ``scale=``. :math:`\hat q` is :func:`conformal_quantile` of the scores. For
    exchangeable data, :math:`P(y \in [\text{lower}, \text{upper}]) \ge 1 - \alpha` whatever
    the model, and :math:`\le 1 - \alpha + 1/(n+1)` for continuous scores.

    With too few calibration points (:math:`\lceil (n+1)(1-\alpha) \rceil > n`) the threshold
    is infinite, so are the intervals, and :meth:`fit` warns.

    :param alpha: Miscoverage rate in ``(0, 1)`` (``0.1``: 90 % intervals).
    :param score: ``"abs"`` or ``"normalized"``.
    :ivar qhat: The fitted threshold (float, possibly ``inf``), ``None`` before :meth:`fit`.
    :ivar n_calibration: Number of calibration points.

    Example::

        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(400, generator=g)
        >>> y = 2.0 * x + 0.3 * torch.randn(400, generator=g)
        >>> conformal = SplitConformalRegressor(alpha=0.1).fit(2.0 * x[:200], y[:200])
        >>> lower, upper = conformal.predict(2.0 * x[200:])
        >>> lower.shape, bool(((lower <= y[200:]) & (y[200:] <= upper)).double().mean() > 0.8)
        (torch.Size([200]), True)
    """

    def __init__(self, alpha: float = 0.1, score: Literal["abs", "normalized"] = "abs") -> None:
        self.alpha = _check_alpha(alpha)
        if score not in ("abs", "normalized"):
            raise ValueError(
                f"Expected score 'abs' or 'normalized', got {score!r}. 'normalized' divides "
                "the residuals by the predictive std."
            )
        self.score: Literal["abs", "normalized"] = score
        self.qhat: float | None = None
        self.n_calibration: int | None = None

    def __repr__(self) -> str:
        state = "not fitted" if self.qhat is None else f"qhat={self.qhat:.4g}"
        return f"SplitConformalRegressor(alpha={self.alpha}, score={self.score!r}, {state})"

    def fit(
        self, pred: Prediction | Tensor, y: Tensor, *, scale: Tensor | None = None
    ) -> SplitConformalRegressor:
        """Compute the threshold on a calibration split (not the training data).

        :param pred: A gaussian (or generic) :class:`~pyro_bdl.uncertainty.Prediction` with
            samples ``(S, N)`` or ``(S, N, 1)``, or point predictions ``(N,)``.
        :param y: Targets ``(N,)`` (or ``(N, 1)``).
        :param scale: Predictive std ``(N,)`` of point predictions, for ``"normalized"``.
        :returns: ``self``, fitted.
        :raises ValueError: For shape mismatches, NaN, no data, or a missing / zero std.
        :raises UserWarning: (a warning) if the threshold is infinite (too few calibration points).
        """
        need_scale = self.score == "normalized"
        center, std = _regression_inputs(pred, scale, need_scale)
        target = _regression_targets(y, center)
        scores = (target - center).abs()
        if std is not None:
            scores = scores / _checked_std(std)
        self.qhat = conformal_quantile(scores.detach(), self.alpha)
        self.n_calibration = center.numel()
        if math.isinf(self.qhat):
            _warn_infinite(self.n_calibration, self.alpha)
        return self

    def predict(
        self, pred: Prediction | Tensor, *, scale: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Conformal intervals for new inputs.

        :param pred: Test predictions, of the same form as in :meth:`fit`.
        :param scale: Predictive std ``(N,)`` of point predictions, for ``"normalized"``.
        :returns: ``(lower, upper)``, each ``(N,)`` (``-inf`` / ``inf`` when the threshold is).
        :raises RuntimeError: Before :meth:`fit`.
        """
        if self.qhat is None:
            raise _not_fitted("SplitConformalRegressor")
        center, std = _regression_inputs(pred, scale, self.score == "normalized")
        width = torch.full_like(center, self.qhat)
        if std is not None:
            width = width * _checked_std(std)
        return center - width, center + width


def _class_probs(name: str, pred: Any) -> tuple[ClassKind, Tensor]:
    """The input's kind and its predictive class probabilities ``(N, C)`` (a bernoulli input as
    two classes)."""
    kind, draws, _ = _classification_draws(name, pred)
    probs = draws.mean(0)
    if kind == "bernoulli":
        if probs.dim() != 1:
            raise ValueError(
                f"Expected a single-output bernoulli prediction (samples (S, N)), got samples of "
                f"shape {tuple(draws.shape)}. Build sets per output."
            )
        probs = torch.stack([1.0 - probs, probs], dim=-1)
    return kind, probs


def _aps_parts(probs: Tensor) -> Tensor:
    """Mass of the classes ranked strictly above each class (ties: the lower index first)."""
    ordered, order = probs.sort(dim=-1, descending=True, stable=True)
    above = ordered.cumsum(-1) - ordered
    return torch.empty_like(probs).scatter_(-1, order, above)


def _uniforms(n: int, seed: int | None, stream: int, like: Tensor) -> Tensor:
    """``n`` uniforms on the CPU: from ``seed + stream``'s generator, or the global RNG."""
    gen = None if seed is None else torch.Generator().manual_seed((seed + stream) % 2**32)
    return torch.rand(n, generator=gen, dtype=torch.float64).to(like.device, like.dtype)


class APSConformalClassifier:
    r"""Adaptive prediction sets (APS; Romano, Sesia & Candès 2020) by split conformal.

    With the classes of :math:`\hat p(x)` (the posterior predictive) sorted by decreasing
    probability, :math:`m(x, c)` the mass of the classes ranked above :math:`c` (ties: lower
    class index first) and :math:`u \sim U(0, 1)` drawn independently for every point, the score
    of a label is

    .. math::

        s(x, y, u) = m(x, y) + u\, \hat p_y(x) \quad (\text{randomized}), \qquad
        s(x, y) = m(x, y) + \hat p_y(x) \quad (\text{not}).

    :meth:`fit` sets :math:`\hat\tau` = :func:`conformal_quantile` of the calibration scores;
    :meth:`predict` returns :math:`C(x) = \{c : s(x, c, u) \le \hat\tau\}`, the most probable
    classes until their mass reaches :math:`\hat\tau`. Randomized sets have coverage in
    :math:`[1 - \alpha, 1 - \alpha + 1/(n+1)]` and may be empty; without randomization the
    set also holds the class at which the mass crosses :math:`\hat\tau` (never empty, coverage
    :math:`\ge 1 - \alpha`, usually above).

    :param alpha: Miscoverage rate in ``(0, 1)``.
    :param randomized: Draw :math:`u` (exact coverage) or use :math:`u = 1` (conservative).
    :param seed: Seed of the uniforms (``fit`` and ``predict`` use separate streams; each
        ``predict`` call restarts its stream, so it is a function of its input); ``None``
        draws from torch's global RNG.
    :ivar qhat: The fitted threshold :math:`\hat\tau` (float, possibly ``inf``).
    :ivar n_calibration: Number of calibration points.

    Example::

        >>> import torch
        >>> probs = torch.tensor([[0.7, 0.2, 0.1]] * 20)
        >>> y = torch.tensor([0] * 14 + [1] * 4 + [2] * 2)
        >>> aps = APSConformalClassifier(alpha=0.2, randomized=False).fit(probs, y)
        >>> aps.predict(probs[:1])
        tensor([[ True,  True, False]])
    """

    def __init__(self, alpha: float = 0.1, randomized: bool = True, seed: int | None = None):
        self.alpha = _check_alpha(alpha)
        if not isinstance(randomized, bool):
            raise TypeError(f"Expected randomized to be a bool, got {type(randomized).__name__}.")
        self.randomized = randomized
        self.seed = check_seed("seed", seed)
        self.qhat: float | None = None
        self.n_calibration: int | None = None
        self.num_classes: int | None = None

    def __repr__(self) -> str:
        state = "not fitted" if self.qhat is None else f"qhat={self.qhat:.4g}"
        return f"APSConformalClassifier(alpha={self.alpha}, randomized={self.randomized}, {state})"

    def _u(self, n: int, stream: int, like: Tensor) -> Tensor:
        if not self.randomized:
            return torch.ones(n, dtype=like.dtype, device=like.device)
        return _uniforms(n, self.seed, stream, like)

    def fit(self, pred: Prediction | Tensor, y: Tensor) -> APSConformalClassifier:
        """Compute the threshold on a calibration split.

        :param pred: A classification :class:`~pyro_bdl.uncertainty.Prediction` (its
            predictive probabilities are used) or probabilities ``(N, C)``.
        :param y: Integer labels ``(N,)``.
        :returns: ``self``, fitted.
        :raises ValueError: For invalid probabilities, labels out of range, shape mismatches.
        :raises TypeError: For float labels of a categorical prediction.
        :raises UserWarning: (a warning) if the threshold is infinite (too few calibration points).
        """
        kind, probs = _class_probs("pred", pred)
        probs = probs.detach()
        if kind == "bernoulli":
            labels = _labels(y, kind, probs[None, :, 1])
        else:
            labels = _labels(y, kind, probs.unsqueeze(0))
        above = _aps_parts(probs).gather(-1, labels[:, None]).squeeze(-1)
        own = probs.gather(-1, labels[:, None]).squeeze(-1)
        scores = above + self._u(len(labels), 0, probs) * own
        self.qhat = conformal_quantile(scores, self.alpha)
        self.n_calibration, self.num_classes = len(labels), probs.shape[-1]
        if math.isinf(self.qhat):
            _warn_infinite(self.n_calibration, self.alpha)
        return self

    def predict(self, pred: Prediction | Tensor) -> Tensor:
        """Prediction sets for new inputs.

        :param pred: Test predictions, of the same form as in :meth:`fit`.
        :returns: A boolean tensor ``(N, C)``: ``sets[n, c]`` is whether class ``c`` is in the
            set of point ``n``.
        :raises RuntimeError: Before :meth:`fit`.
        :raises ValueError: For another number of classes than in :meth:`fit`.
        """
        if self.qhat is None:
            raise _not_fitted("APSConformalClassifier")
        probs = _class_probs("pred", pred)[1].detach()
        if probs.shape[-1] != self.num_classes:
            raise ValueError(
                f"Expected predictions over {self.num_classes} classes (as in fit), got "
                f"{probs.shape[-1]}."
            )
        above = _aps_parts(probs)
        sets = above + self._u(probs.shape[0], 1, probs)[:, None] * probs <= self.qhat
        if not self.randomized:
            sets = sets | (above < self.qhat)
        return sets


def _check_sets(sets: Any) -> Tensor:
    if not isinstance(sets, Tensor) or sets.dtype != torch.bool or sets.dim() != 2:
        got = (
            f"dtype {sets.dtype} and shape {tuple(sets.shape)}"
            if isinstance(sets, Tensor)
            else type(sets).__name__
        )
        raise TypeError(
            f"Expected prediction sets as a boolean tensor of shape (N, C) (as "
            f"APSConformalClassifier.predict returns), got {got}."
        )
    return sets


def set_size(sets: Tensor) -> Tensor:
    """Number of classes in each prediction set.

    :param sets: Boolean sets ``(N, C)``.
    :returns: ``(N,)`` integer sizes (``sizes.double().mean()`` is the average set size).

    Example::

        >>> import torch
        >>> set_size(torch.tensor([[True, False, True], [False, False, False]]))
        tensor([2, 0])
    """
    return _check_sets(sets).sum(-1)


def set_coverage(sets: Tensor, y: Tensor) -> float:
    """Fraction of labels inside their prediction set.

    :param sets: Boolean sets ``(N, C)``.
    :param y: Integer labels ``(N,)``.
    :returns: The covered fraction in ``[0, 1]``.

    Example::

        >>> import torch
        >>> set_coverage(torch.tensor([[True, False], [True, False]]), torch.tensor([0, 1]))
        0.5
    """
    sets = _check_sets(sets)
    if sets.shape[0] == 0:
        raise ValueError("Expected at least one prediction set to compute coverage, got N = 0.")
    labels = _labels(y, "categorical", sets.unsqueeze(0))
    return float(sets.gather(-1, labels[:, None]).double().mean())
