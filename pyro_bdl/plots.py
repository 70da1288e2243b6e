"""Diagnostic plots (matplotlib): calibration, regression bands, OOD scores and ELBO traces.

Each function draws into ``ax`` when given, otherwise into a new
:class:`matplotlib.figure.Figure` with an Agg canvas (no display or pyplot state needed), and
returns the figure. Nothing is shown or closed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from pyro_bdl.metrics import ece, ood_auroc
from pyro_bdl.uncertainty import Prediction

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["elbo_trace", "regression_bands", "reliability_diagram", "uncertainty_histogram"]


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """Return ``(ax.figure, ax)``, or a new Agg-backed figure with one axes."""
    from matplotlib.figure import Figure

    if ax is not None:
        fig = ax.figure
        return (fig if isinstance(fig, Figure) else fig.figure), ax  # a SubFigure's root
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu().double()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"Expected {name} to be a 1-D sequence, got shape {array.shape}.")
    return array


def reliability_diagram(
    probs_or_prediction: Tensor | Prediction,
    y: Tensor,
    n_bins: int = 15,
    strategy: Literal["uniform", "quantile"] = "uniform",
    *,
    ax: Axes | None = None,
) -> Figure:
    """Plot accuracy against confidence per bin, with the diagonal of perfect calibration.

    Bins and the ECE (in the title) come from :func:`pyro_bdl.metrics.ece`; empty bins are not
    drawn.

    :param probs_or_prediction: Class-probability draws ``(S, N, C)`` or a classification
        :class:`~pyro_bdl.uncertainty.Prediction`.
    :param y: Integer labels ``(N,)``.
    :param n_bins: Number of confidence bins.
    :param strategy: ``"uniform"`` or ``"quantile"`` bins.
    :param ax: Axes to draw into; a new figure when ``None``.
    :returns: The figure.

    Example::

        >>> import torch
        >>> probs = torch.tensor([[[0.8, 0.2]] * 10])
        >>> fig = reliability_diagram(probs, torch.tensor([0] * 8 + [1] * 2))
        >>> import io
        >>> fig.savefig(io.BytesIO(), format="png")  # or fig.savefig("reliability.png")
    """
    result = ece(probs_or_prediction, y, n_bins=n_bins, strategy=strategy)
    fig, ax = _figure_and_axes(ax, (4.5, 4.5))
    keep = result.count > 0
    lower = result.bin_lower[keep].double().cpu().numpy()
    upper = result.bin_upper[keep].double().cpu().numpy()
    acc = result.accuracy[keep].double().cpu().numpy()
    conf = result.confidence[keep].double().cpu().numpy()
    width = np.maximum(upper - lower, 1e-3)
    ax.bar(lower, acc, width=width, align="edge", color="C0", edgecolor="k", label="accuracy")
    ax.bar(
        lower,
        conf - acc,
        bottom=acc,
        width=width,
        align="edge",
        color="C3",
        alpha=0.3,
        edgecolor="C3",
        label="gap to confidence",
    )
    ax.plot([0.0, 1.0], [0.0, 1.0], "k--", label="perfect calibration")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("confidence (max predictive probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE = {result.ece:.3f})")
    ax.legend(loc="upper left")
    return fig


def regression_bands(
    x: Tensor,
    prediction: Prediction,
    *,
    x_train: Tensor | None = None,
    y_train: Tensor | None = None,
    true_fn: Callable[[Tensor], Tensor] | None = None,
    level: float = 0.95,
    ax: Axes | None = None,
) -> Figure:
    r"""Plot a 1-D regression predictive: mean, total band and epistemic band.

    The bands are :math:`\bar\mu \pm z \sqrt{\text{aleatoric} + \text{epistemic}}` (total) and
    :math:`\bar\mu \pm z \sqrt{\text{epistemic}}` (epistemic only), with
    :math:`z = \Phi^{-1}((1 + \text{level}) / 2)` (1.96, the usual "±2σ", at level 0.95).

    :param x: Inputs ``(N,)`` or ``(N, 1)``.
    :param prediction: A gaussian :class:`~pyro_bdl.uncertainty.Prediction` with samples
        ``(S, N)`` or ``(S, N, 1)``.
    :param x_train: Optional training inputs, drawn as points with ``y_train``.
    :param y_train: Optional training targets.
    :param true_fn: Optional true function ``x -> f(x)``, drawn as a dashed line.
    :param level: Normal-quantile level of the bands.
    :param ax: Axes to draw into; a new figure when ``None``.
    :returns: The figure.

    Example::

        >>> import torch
        >>> x = torch.linspace(-1, 1, 50)
        >>> pred = Prediction("gaussian", samples=x + 0.1 * torch.randn(20, 50),
        ...                   scale=torch.full((20, 50), 0.2))
        >>> fig = regression_bands(x, pred, true_fn=lambda t: t)
    """
    if not isinstance(prediction, Prediction) or prediction.kind != "gaussian":
        raise TypeError(f"Expected a Prediction of kind 'gaussian', got {prediction!r}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"Expected level in (0, 1), got {level!r}.")
    if (x_train is None) != (y_train is None):
        raise ValueError("Expected both x_train and y_train, or neither; got only one.")
    samples = prediction.samples
    if samples.dim() == 3 and samples.shape[-1] == 1:
        samples = samples.squeeze(-1)
    if samples.dim() != 2:
        raise ValueError(
            f"Expected a 1-D output prediction with samples (S, N) or (S, N, 1), got "
            f"{tuple(prediction.samples.shape)}."
        )
    x_np = _to_numpy("x", x.reshape(-1) if isinstance(x, Tensor) and x.dim() == 2 else x)
    if x_np.shape[0] != samples.shape[1]:
        raise ValueError(
            f"Expected x with {samples.shape[1]} points (one per predicted input), got "
            f"{x_np.shape[0]}."
        )
    parts = prediction.decompose()
    z = NormalDist().inv_cdf(0.5 * (1.0 + level))
    order = np.argsort(x_np, kind="stable")
    xs = x_np[order]
    mean = _to_numpy("mean", samples.mean(0))[order]
    total = np.sqrt(_to_numpy("total", parts.total.reshape(-1)))[order]
    epistemic = np.sqrt(_to_numpy("epistemic", parts.epistemic.reshape(-1)))[order]
    pct = f"{100 * level:g} %"

    fig, ax = _figure_and_axes(ax, (6.0, 4.0))
    ax.fill_between(
        xs,
        mean - z * total,
        mean + z * total,
        color="C0",
        alpha=0.2,
        label=f"total (aleatoric + epistemic), {pct}",
    )
    ax.fill_between(
        xs,
        mean - z * epistemic,
        mean + z * epistemic,
        color="C0",
        alpha=0.45,
        label=f"epistemic, {pct}",
    )
    ax.plot(xs, mean, color="C0", label="predictive mean")
    if true_fn is not None:
        x_sorted = torch.as_tensor(xs, dtype=samples.dtype)
        truth = true_fn(x_sorted)
        ax.plot(xs, _to_numpy("true_fn(x)", truth.reshape(-1)), "k--", label="true function")
    if x_train is not None and y_train is not None:
        ax.scatter(
            _to_numpy("x_train", x_train.reshape(-1)),
            _to_numpy("y_train", y_train.reshape(-1)),
            s=10,
            color="C1",
            zorder=3,
            label="training data",
        )
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="best", fontsize="small")
    return fig


def uncertainty_histogram(
    score_in: Tensor,
    score_out: Tensor,
    label: str = "epistemic",
    *,
    bins: int = 30,
    ax: Axes | None = None,
) -> Figure:
    """Overlay histograms of an uncertainty score for in-distribution and OOD inputs.

    The title reports :func:`pyro_bdl.metrics.ood_auroc` (OOD positive, higher score = more OOD).

    :param score_in: Scores of in-distribution inputs (any shape, flattened).
    :param score_out: Scores of OOD inputs (any shape, flattened).
    :param label: Name of the score, used on the x axis.
    :param bins: Number of shared histogram bins.
    :param ax: Axes to draw into; a new figure when ``None``.
    :returns: The figure.

    Example::

        >>> import torch
        >>> fig = uncertainty_histogram(torch.rand(100), torch.rand(100) + 0.5)
    """
    auroc = ood_auroc(score_in, score_out)
    s_in = _to_numpy("score_in", score_in.reshape(-1))
    s_out = _to_numpy("score_out", score_out.reshape(-1))
    pooled = np.concatenate([s_in, s_out])
    pooled = pooled[np.isfinite(pooled)]
    low, high = (float(pooled.min()), float(pooled.max())) if pooled.size else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    fig, ax = _figure_and_axes(ax, (6.0, 4.0))
    ax.hist(s_in, bins=list(edges), density=True, alpha=0.5, color="C0", label="in-distribution")
    ax.hist(
        s_out, bins=list(edges), density=True, alpha=0.5, color="C3", label="out-of-distribution"
    )
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.set_title(f"{label}: OOD AUROC = {auroc:.3f}")
    ax.legend(loc="best")
    return fig


_HISTORY_KEYS: tuple[str, ...] = ("elbo", "loglik", "kl")


def _history_series(history: Mapping[str, Sequence[float]] | object) -> dict[str, np.ndarray]:
    series: dict[str, np.ndarray] = {}
    for key in _HISTORY_KEYS:
        if isinstance(history, Mapping):
            value = history.get(key)
        else:
            value = getattr(history, key, None)
        if value is not None:
            series[key] = _to_numpy(key, value)
    if "elbo" not in series:
        found = list(history.keys()) if isinstance(history, Mapping) else type(history).__name__
        raise ValueError(
            "Expected a history with a per-step sequence 'elbo' (and optionally 'loglik' and "
            f"'kl'), as a mapping or attributes, got {found}. Pass the record returned by "
            "BNN.fit or a dict such as {'elbo': [...], 'loglik': [...], 'kl': [...]}."
        )
    return series


def elbo_trace(
    history: Mapping[str, Sequence[float]] | object,
    *,
    ax: Axes | None = None,
) -> Figure:
    r"""Plot the per-datum ELBO and its two terms over training.

    .. math::

        \text{ELBO} = \underbrace{\mathbb E_q[\log p(y \mid W)]}_\text{loglik}
        - \underbrace{\mathrm{KL}(q \,\|\, p)}_\text{kl}

    ELBO and expected log-likelihood share the left axis; the KL term, often orders of
    magnitude smaller, is on a twin right axis.

    :param history: A mapping or an object (e.g. the fit record) with sequences ``elbo`` and
        optionally ``loglik`` and ``kl``, one value per epoch or step, in nats per datum.
    :param ax: Axes to draw into; a new figure when ``None``.
    :returns: The figure.

    Example::

        >>> fig = elbo_trace({"elbo": [-3.0, -2.0], "loglik": [-2.5, -1.6], "kl": [0.5, 0.4]})
    """
    series = _history_series(history)
    fig, ax = _figure_and_axes(ax, (6.0, 4.0))
    handles = []
    steps = np.arange(1, len(series["elbo"]) + 1)
    handles += ax.plot(steps, series["elbo"], color="C0", label="ELBO")
    if "loglik" in series:
        loglik = series["loglik"]
        handles += ax.plot(np.arange(1, len(loglik) + 1), loglik, color="C1", label="E[log lik]")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per datum")
    if "kl" in series:
        kl = series["kl"]
        ax_kl = ax.twinx()
        handles += ax_kl.plot(np.arange(1, len(kl) + 1), kl, color="C2", label="KL (right axis)")
        ax_kl.set_ylabel("KL, nats per datum")
    ax.legend(handles=handles, loc="best")
    ax.set_title("Training objective")
    return fig
