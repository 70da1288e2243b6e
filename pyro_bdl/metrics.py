"""Predictive performance metrics over posterior draws.

Every metric takes the raw draws with the sample dimension first (e.g. class probabilities of
shape ``(S, N, C)``) or a :class:`~pyro_bdl.uncertainty.Prediction`, and scores the posterior
predictive, i.e. the equally weighted mixture over the ``S`` draws — never the average of
per-draw scores. Scalar metrics are returned as Python ``float``.

Targets ``y`` may be tensors, numpy arrays, lists or pandas objects (integer labels become
``torch.long``, real targets take the draws' dtype). Single-output regression targets may have
shape ``(N,)`` or ``(N, 1)``, as in ``BNN.fit``.

A bernoulli :class:`~pyro_bdl.uncertainty.Prediction` is scored as a two-class categorical one
(class 1 has probability ``samples``); trailing output dims are scored as separate labels by
:func:`accuracy`, :func:`brier` and :func:`ece`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch
from torch import Tensor

from pyro_bdl._checks import as_tensor, check_finite, check_real_tensor, positive_int
from pyro_bdl.uncertainty import (
    Prediction,
    broadcast_scale,
    check_categorical_probs,
    check_draws_ndim,
)

__all__ = [
    "CalibrationResult",
    "accuracy",
    "brier",
    "coverage",
    "ece",
    "gaussian_test_ll",
    "nll",
    "ood_auroc",
    "rmse",
]


# --------------------------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------------------------


def _check_labels(y: object, num_data: int, num_classes: int) -> Tensor:
    if not isinstance(y, Tensor):
        raise TypeError(f"Expected labels y to be a torch.Tensor, got {type(y).__name__}.")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(
            f"Expected integer class labels y (torch.long), got dtype {y.dtype}. "
            "Convert with y.long()."
        )
    if y.shape != (num_data,):
        raise ValueError(
            f"Expected labels y of shape ({num_data},) to match probs, got shape {tuple(y.shape)}."
        )
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"Expected class labels in [0, {num_classes - 1}], got values in "
            f"[{int(y.min())}, {int(y.max())}]."
        )
    return y.long()


def _classification_draws(probs: Tensor | Prediction, y: object) -> tuple[Tensor, Tensor]:
    """Return class-probability draws ``(S, M, C)`` and integer labels ``(M,)``."""
    y = as_tensor("y", y, probs.samples if isinstance(probs, Prediction) else probs)
    if isinstance(probs, Prediction):
        if probs.kind in ("gaussian", "generic"):
            raise ValueError(
                "Expected a classification Prediction (kind 'categorical' or 'bernoulli'), got "
                f"kind={probs.kind!r}. Use rmse / gaussian_test_ll / coverage for regression "
                "(nll works for every kind)."
            )
        draws = probs.samples
        if probs.kind == "bernoulli":
            if not isinstance(y, Tensor):
                raise TypeError(f"Expected labels y to be a torch.Tensor, got {type(y).__name__}.")
            if y.shape != draws.shape[1:]:
                raise ValueError(
                    f"Expected labels y of shape {tuple(draws.shape[1:])} to match the "
                    f"prediction, got shape {tuple(y.shape)}."
                )
            check_finite("y", y)
            if y.numel() and not bool(((y == 0) | (y == 1)).all()):
                raise ValueError("Expected binary labels y in {0, 1}, got other values.")
            p1 = draws.reshape(draws.shape[0], -1)
            draws = torch.stack([1.0 - p1, p1], dim=-1)
            y = y.reshape(-1).long()
        return draws, _check_labels(y, draws.shape[1], draws.shape[-1])
    probs = check_real_tensor("probs", probs)
    check_draws_ndim("probs", probs, 3, "(S, N, C)", exact=True)
    check_categorical_probs("probs", probs)
    return probs, _check_labels(y, probs.shape[1], probs.shape[-1])


def _regression_draws(loc: Tensor | Prediction, y: object) -> tuple[Tensor, Tensor]:
    """Return location draws ``(S, N, ...)`` and targets ``(N, ...)``."""
    if isinstance(loc, Prediction):
        if loc.kind not in ("gaussian", "generic"):
            raise ValueError(
                f"Expected a Prediction of kind 'gaussian' (or 'generic': its predictive mean), "
                f"got kind={loc.kind!r}. Use accuracy / nll / brier / ece for classification."
            )
        loc = loc.samples
    loc = check_real_tensor("loc", loc)
    check_draws_ndim("loc", loc, 2, "(S, N, ...)")
    check_finite("loc", loc)
    y = check_real_tensor("y", as_tensor("y", y, loc))
    if y.shape == loc.shape[1:] + (1,):  # (N, 1) targets of a single output, as fit takes
        y = y.reshape(loc.shape[1:])
    if y.shape != loc.shape[1:]:
        raise ValueError(
            f"Expected targets y of shape {tuple(loc.shape[1:])} (loc without the sample "
            f"dimension), got shape {tuple(y.shape)}."
        )
    check_finite("y", y)
    return loc, y.to(loc.dtype)


def _prediction_target(prediction: Prediction, y: object) -> Any:
    """``y`` for ``prediction.log_prob``: an array-like converted, a single regression output's
    ``(N, 1)`` reshaped to ``(N,)``."""
    y = as_tensor("y", y, prediction.samples)
    if prediction.kind in ("gaussian", "generic") and isinstance(y, Tensor):
        per_datum = prediction.samples.shape[1:]
        if y.shape == per_datum + (1,):
            y = y.reshape(per_datum)
    return y


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def accuracy(probs: Tensor | Prediction, y: Tensor) -> float:
    r"""Accuracy of the posterior predictive's most probable class.

    .. math::

        \text{acc} = \frac1N \sum_n \mathbb 1[\arg\max_c \bar p_{nc} = y_n],
        \quad \bar p = \frac1S \sum_s p_s

    :param probs: Class-probability draws ``(S, N, C)`` (the sample dimension is required; add
        it with ``probs.unsqueeze(0)`` for a single deterministic prediction) or a classification
        :class:`~pyro_bdl.uncertainty.Prediction`.
    :param y: Integer labels ``(N,)``.
    :returns: The accuracy in ``[0, 1]``.

    Example::

        >>> import torch
        >>> probs = torch.tensor([[[0.9, 0.1], [0.4, 0.6]]])  # S=1, N=2, C=2
        >>> accuracy(probs, torch.tensor([0, 0]))
        0.5
    """
    draws, labels = _classification_draws(probs, y)
    return float((draws.mean(0).argmax(-1) == labels).double().mean())


def nll(
    probs: Tensor | Prediction,
    y: Tensor,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> float | Tensor:
    r"""Negative log predictive density of the labels under the mixture over draws.

    .. math::

        \text{nll} = -\frac1N \sum_n \log \frac1S \sum_s p_s(y_n)
        = -\frac1N \sum_n \left[\operatorname{logsumexp}_s \log p_s(y_n) - \log S\right]

    This is *not* the mean over draws of the per-draw NLL (which is larger, by Jensen).
    For a :class:`~pyro_bdl.uncertainty.Prediction` this is ``-prediction.log_prob(y)``
    (trailing output dims of one datum are scored jointly); with a gaussian prediction it is
    the Gaussian mixture NLL.

    :param probs: Class-probability draws ``(S, N, C)`` or a
        :class:`~pyro_bdl.uncertainty.Prediction`.
    :param y: Labels ``(N,)`` (integer for categorical) or targets.
    :param reduction: ``"mean"`` and ``"sum"`` return a float, ``"none"`` the ``(N,)`` tensor.
    :returns: The NLL in nats.

    Example::

        >>> import torch
        >>> probs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two draws that disagree
        >>> round(nll(probs, torch.tensor([0])), 4)  # -log(1/2), finite despite p_2(y) = 0
        0.6931
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"Expected reduction 'mean', 'sum' or 'none', got {reduction!r}.")
    if isinstance(probs, Prediction):
        pointwise = -probs.log_prob(_prediction_target(probs, y))
    else:
        draws, labels = _classification_draws(probs, y)
        index = labels.unsqueeze(0).expand(draws.shape[:-1]).unsqueeze(-1)
        log_p = draws.gather(-1, index).squeeze(-1).log()
        pointwise = -(torch.logsumexp(log_p, 0) - math.log(draws.shape[0]))
    if reduction == "none":
        return pointwise
    return float(pointwise.sum() if reduction == "sum" else pointwise.mean())


def brier(probs: Tensor | Prediction, y: Tensor) -> float:
    r"""Brier score of the posterior predictive probabilities.

    .. math::

        \text{brier} = \frac1N \sum_n \sum_c (\bar p_{nc} - \mathbb 1[y_n = c])^2

    :param probs: Class-probability draws ``(S, N, C)`` or a classification
        :class:`~pyro_bdl.uncertainty.Prediction`.
    :param y: Integer labels ``(N,)``.
    :returns: The score in ``[0, 2]`` (0 is perfect).

    Example::

        >>> import torch
        >>> brier(torch.tensor([[[0.5, 0.5]]]), torch.tensor([0]))
        0.5
    """
    draws, labels = _classification_draws(probs, y)
    mean = draws.mean(0)
    onehot = torch.nn.functional.one_hot(labels, mean.shape[-1]).to(mean.dtype)
    return float((mean - onehot).square().sum(-1).mean())


@dataclass(frozen=True)
class CalibrationResult:
    """Expected calibration error and its per-bin statistics (for reliability diagrams).

    Empty bins have ``count == 0`` and NaN ``confidence`` / ``accuracy``.

    :param ece: Expected calibration error.
    :param bin_lower: Lower bin edges ``(B,)``.
    :param bin_upper: Upper bin edges ``(B,)``.
    :param confidence: Mean confidence (max predictive probability) per bin ``(B,)``.
    :param accuracy: Fraction correct per bin ``(B,)``.
    :param count: Number of data points per bin ``(B,)``.
    """

    ece: float
    bin_lower: Tensor
    bin_upper: Tensor
    confidence: Tensor
    accuracy: Tensor
    count: Tensor


def ece(
    probs: Tensor | Prediction,
    y: Tensor,
    n_bins: int = 15,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> CalibrationResult:
    r"""Expected calibration error of the posterior predictive's top-class confidence.

    With confidence :math:`\hat c_n = \max_c \bar p_{nc}`, prediction
    :math:`\hat y_n = \arg\max_c \bar p_{nc}` and bins :math:`B_b` of the confidence,

    .. math::

        \text{ECE} = \sum_b \frac{|B_b|}N \left| \operatorname{acc}(B_b)
        - \operatorname{conf}(B_b) \right|.

    Bins are ``(lower, upper]`` (the first one also includes its lower edge). ``"uniform"``
    splits ``[0, 1]`` into ``n_bins`` equal widths; ``"quantile"`` uses the confidence quantiles
    so bins hold about equally many points.

    :param probs: Class-probability draws ``(S, N, C)`` or a classification
        :class:`~pyro_bdl.uncertainty.Prediction`.
    :param y: Integer labels ``(N,)``.
    :param n_bins: Number of bins (>= 1).
    :param strategy: ``"uniform"`` or ``"quantile"``.
    :returns: A :class:`CalibrationResult`; ``.ece`` is a float.

    Example::

        >>> import torch
        >>> probs = torch.tensor([[[0.8, 0.2]] * 10])  # 80 % confident, S=1, N=10
        >>> y = torch.tensor([0] * 6 + [1] * 4)        # but only 60 % right
        >>> round(ece(probs, y).ece, 6)
        0.2
    """
    n_bins = positive_int("n_bins", n_bins)
    if strategy not in ("uniform", "quantile"):
        raise ValueError(f"Expected strategy 'uniform' or 'quantile', got {strategy!r}.")
    draws, labels = _classification_draws(probs, y)
    if labels.numel() == 0:
        raise ValueError("Expected at least one data point to compute the ECE, got N = 0.")
    confidence, predicted = draws.mean(0).max(-1)
    correct = (predicted == labels).to(confidence.dtype)
    if strategy == "uniform":
        edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=confidence.dtype)
    else:
        levels = torch.linspace(0.0, 1.0, n_bins + 1, dtype=confidence.dtype)
        edges = torch.quantile(confidence.cpu(), levels)
    edges = edges.to(confidence.device)
    index = torch.bucketize(confidence, edges[1:-1].contiguous(), right=False)
    count = torch.bincount(index, minlength=n_bins)
    sum_conf = torch.zeros(n_bins, dtype=confidence.dtype, device=confidence.device)
    sum_acc = torch.zeros_like(sum_conf)
    sum_conf.index_add_(0, index, confidence)
    sum_acc.index_add_(0, index, correct)
    nonempty = count > 0
    safe = count.clamp_min(1).to(confidence.dtype)
    nan = torch.full_like(sum_conf, float("nan"))
    mean_conf = torch.where(nonempty, sum_conf / safe, nan)
    mean_acc = torch.where(nonempty, sum_acc / safe, nan)
    value = (sum_acc - sum_conf).abs().sum() / labels.numel()
    return CalibrationResult(
        ece=float(value),
        bin_lower=edges[:-1],
        bin_upper=edges[1:],
        confidence=mean_conf,
        accuracy=mean_acc,
        count=count,
    )


# --------------------------------------------------------------------------------------------
# Regression
# --------------------------------------------------------------------------------------------


def rmse(loc: Tensor | Prediction, y: Tensor) -> float:
    r"""Root mean squared error of the predictive mean.

    .. math::

        \text{rmse} = \sqrt{\frac1N \sum_n (\bar\mu_n - y_n)^2}, \quad
        \bar\mu = \frac1S \sum_s \mu_s

    (averaged over every element of ``(N, ...)``).

    :param loc: Location draws ``(S, N, ...)`` or a gaussian
        :class:`~pyro_bdl.uncertainty.Prediction`.
    :param y: Targets ``(N, ...)``.
    :returns: The RMSE in the units of ``y``.

    Example::

        >>> import torch
        >>> rmse(torch.tensor([[0.0, 2.0], [2.0, 2.0]]), torch.tensor([1.0, 0.0]))
        1.4142135381698608
    """
    draws, target = _regression_draws(loc, y)
    return float((draws.mean(0) - target).square().mean().sqrt())


def gaussian_test_ll(
    loc: Tensor | Prediction,
    y: Tensor,
    tau: float | None = None,
    scale: Tensor | None = None,
) -> float:
    r"""Average test log-likelihood of the Gaussian mixture predictive (Gal & Ghahramani 2016).

    With model precision ``tau`` (homoskedastic noise :math:`\tau^{-1}`) and ``T`` draws
    :math:`\hat y_t`:

    .. math::

        \text{ll} = \frac1N \sum_n \left[\operatorname{logsumexp}_t
        \left(-\tfrac12 \tau (y_n - \hat y_{tn})^2\right) - \log T
        - \tfrac12 \log 2\pi + \tfrac12 \log \tau\right].

    With per-draw ``scale`` :math:`\sigma_{tn}` instead, the general mixture log density
    :math:`\log \frac1T \sum_t \mathcal N(y_n \mid \hat y_{tn}, \sigma_{tn}^2)` is averaged.
    Trailing output dims of one datum are scored jointly (log densities summed per draw).

    :param loc: Location draws ``(T, N, ...)`` or a gaussian
        :class:`~pyro_bdl.uncertainty.Prediction` (whose ``scale`` is used unless ``tau`` is given
        and the prediction has none).
    :param y: Targets ``(N, ...)``.
    :param tau: Model precision (> 0); give exactly one of ``tau`` and ``scale``.
    :param scale: Per-draw noise std, broadcastable to ``loc``.
    :returns: The average log-likelihood in nats (higher is better).

    Example::

        >>> import torch
        >>> loc = torch.zeros(5, 3)
        >>> round(gaussian_test_ll(loc, torch.zeros(3), tau=1.0), 4)  # -0.5 log(2 pi)
        -0.9189
    """
    if isinstance(loc, Prediction):
        if loc.kind == "generic":
            raise ValueError(
                "Expected a gaussian Prediction, got kind='generic' (not a Gaussian mixture): "
                "score it with -nll(pred, y), the mean log density of its own family."
            )
        if scale is not None:
            raise ValueError(
                "Expected scale=None with a Prediction (its own .scale is used), got a scale. "
                "Pass the raw draws instead: gaussian_test_ll(pred.samples, y, scale=sigma)."
            )
        if tau is None:
            if loc.scale is None:
                raise ValueError(
                    "Expected tau= for a noise-free Prediction (scale=None), got neither; pass "
                    "the model precision, e.g. gaussian_test_ll(pred, y, tau=10.0)."
                )
            scale = loc.scale
        elif loc.scale is not None:
            raise ValueError(
                "Expected exactly one of tau and scale, got tau= and a Prediction with a scale. "
                "Drop tau= to use the prediction's scale."
            )
    draws, target = _regression_draws(loc, y)
    if (tau is None) == (scale is None):
        raise ValueError(
            "Expected exactly one of tau= (model precision) and scale= (per-draw noise std), got "
            f"{'both' if tau is not None else 'neither'}."
        )
    num_draws = draws.shape[0]
    if tau is not None:
        if isinstance(tau, bool) or not isinstance(tau, (int, float)):
            raise TypeError(f"Expected tau as a number (a precision), got {type(tau).__name__}.")
        tau_f = float(tau)
        if not math.isfinite(tau_f) or tau_f <= 0.0:
            raise ValueError(f"Expected tau > 0 (a precision), got {tau_f!r}.")
        sq = (target - draws).square().reshape(num_draws, draws.shape[1], -1)
        dim = sq.shape[-1]
        log_p = -0.5 * tau_f * sq.sum(-1)
        ll = (
            torch.logsumexp(log_p, 0)
            - math.log(num_draws)
            + dim * (-0.5 * math.log(2.0 * math.pi) + 0.5 * math.log(tau_f))
        )
        return float(ll.mean())
    assert scale is not None
    scale = broadcast_scale(check_real_tensor("scale", scale), draws)
    check_finite("scale", scale)
    if scale.numel() and float(scale.min()) <= 0.0:
        raise ValueError(f"Expected scale > 0, got a minimum of {float(scale.min()):.3g}.")
    pred = Prediction("gaussian", samples=draws, scale=scale)
    return float(pred.log_prob(target).mean())


@overload
def coverage(lower: Tensor, upper: Tensor, y: Tensor, /) -> float: ...


@overload
def coverage(prediction: Prediction, y: Tensor, /, *, level: float = 0.95) -> float: ...


def coverage(*args: Tensor | Prediction, level: float | None = None) -> float:
    r"""Fraction of targets inside a predictive interval.

    .. math::

        \text{coverage} = \frac1N \sum_n \mathbb 1[\ell_n \le y_n \le u_n]

    Call it as ``coverage(lower, upper, y)`` with interval bounds, or as
    ``coverage(prediction, y, level=0.95)`` to use the central mixture interval
    :meth:`~pyro_bdl.uncertainty.Prediction.interval` of a gaussian prediction (Monte Carlo for a
    generic one). A calibrated
    predictive covers about ``level`` of the targets.

    :param args: ``(lower, upper, y)`` tensors of one shape, or ``(prediction, y)``.
    :param level: Interval probability, only with a prediction (default 0.95).
    :returns: The covered fraction in ``[0, 1]``.

    Example::

        >>> import torch
        >>> coverage(torch.zeros(4), torch.ones(4), torch.tensor([0.5, 1.0, 2.0, -1.0]))
        0.5
    """
    if args and isinstance(args[0], Prediction):
        if len(args) != 2:
            raise TypeError(
                f"Expected coverage(prediction, y, level=...), got {len(args)} positional args."
            )
        prediction, y = args
        assert isinstance(prediction, Prediction)
        lower, upper = prediction.interval(0.95 if level is None else level)
        _, target = _regression_draws(prediction, y)
    else:
        if len(args) != 3:
            raise TypeError(
                f"Expected coverage(lower, upper, y) or coverage(prediction, y), got "
                f"{len(args)} positional args."
            )
        if level is not None:
            raise ValueError(
                "Expected level= only with a Prediction; with explicit bounds the level is "
                "already fixed by lower and upper."
            )
        args = (*args[:2], as_tensor("y", args[2], args[0]))
        lower, upper, target = (
            check_real_tensor(name, value)
            for name, value in zip(("lower", "upper", "y"), args, strict=True)
        )
        if not lower.shape == upper.shape == target.shape:
            raise ValueError(
                f"Expected lower, upper and y of one shape, got {tuple(lower.shape)}, "
                f"{tuple(upper.shape)} and {tuple(target.shape)}."
            )
        for name, value in (("lower", lower), ("upper", upper), ("y", target)):
            check_finite(name, value)
        if lower.numel() and bool((lower > upper).any()):
            raise ValueError("Expected lower <= upper everywhere, got some lower > upper.")
    if target.numel() == 0:
        raise ValueError("Expected at least one target to compute coverage, got none.")
    inside = (lower <= target) & (target <= upper)
    return float(inside.double().mean())


# --------------------------------------------------------------------------------------------
# Out-of-distribution detection
# --------------------------------------------------------------------------------------------


def _average_ranks(x: Tensor) -> Tensor:
    """1-based ranks of ``x`` with ties given the mean of the ranks they span."""
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # last rank of each group of tied values
    group_rank = ends - 0.5 * (counts.double() - 1.0)
    return group_rank[inverse]


def ood_auroc(score_in: Tensor, score_out: Tensor) -> float:
    r"""Area under the ROC curve for separating out-of-distribution inputs by a score.

    OOD inputs are the positive class and a higher score means "more OOD" (e.g. the epistemic
    uncertainty). Computed exactly from ranks (Mann–Whitney U), ties counting one half:

    .. math::

        \text{AUROC} = \frac{1}{n_\text{in} n_\text{out}} \sum_{i, j}
        \left(\mathbb 1[s^\text{out}_j > s^\text{in}_i]
        + \tfrac12 \mathbb 1[s^\text{out}_j = s^\text{in}_i]\right)
        = \frac{R_\text{out} - n_\text{out}(n_\text{out} + 1)/2}{n_\text{in} n_\text{out}}

    with :math:`R_\text{out}` the sum of the OOD scores' ranks in the pooled sample.

    :param score_in: Scores of in-distribution inputs (any shape, flattened).
    :param score_out: Scores of OOD inputs (any shape, flattened).
    :returns: The AUROC in ``[0, 1]``; 0.5 is chance.

    Example::

        >>> import torch
        >>> ood_auroc(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.3, 0.9]))
        0.9166666666666666
    """
    score_in = check_real_tensor("score_in", score_in, floating=False).reshape(-1)
    score_out = check_real_tensor("score_out", score_out, floating=False).reshape(-1)
    for name, s in (("score_in", score_in), ("score_out", score_out)):
        if s.numel() == 0:
            raise ValueError(f"Expected at least one score in {name}, got none.")
        if s.is_floating_point() and bool(torch.isnan(s).any()):
            raise ValueError(
                f"Expected no NaN in {name}, got {int(torch.isnan(s).sum())} NaN scores."
            )
    pooled = torch.cat([score_in.double(), score_out.double()])
    ranks = _average_ranks(pooled)
    n_in, n_out = score_in.numel(), score_out.numel()
    rank_sum_out = ranks[n_in:].sum()
    return float((rank_sum_out - n_out * (n_out + 1) / 2.0) / (n_in * n_out))
