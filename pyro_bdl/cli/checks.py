"""Model checks of the ``pyro-bdl`` reports: PSIS-LOO, held-out density, predictive checks.

:func:`loo_summary` runs ``az.loo`` on an export's ``log_likelihood`` group (the **training**
rows) and reads the held-out log predictive density from its ``predictions`` group;
:func:`loo_table` lays both out per row of data, :data:`LOO_NOTE` explains them, and
:func:`ppc_panel` draws a posterior predictive check. :func:`not_converged_warning` is the
report's line about a fit that did not converge. ArviZ and matplotlib are imported inside the
functions.

Example::

    >>> s = LOOSummary(-1.2, 0.05, 11.0, 353, 2, 0.8, -1.25, 89, khat_threshold=0.5)
    >>> round(s.held_out - s.elpd, 3)  # held-out minus LOO, nats per row
    -0.05
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..arviz import ArviZData

__all__ = [
    "LOO_NOTE",
    "LOOSummary",
    "loo_summary",
    "loo_table",
    "not_converged_warning",
    "ppc_panel",
]


@dataclass(frozen=True)
class LOOSummary:
    """PSIS-LOO of the training data and the held-out log predictive density, per row.

    :param elpd: ``az.loo``'s elpd, per training row (nats).
    :param se: its standard error, per training row.
    :param p_loo: the effective number of parameters.
    :param n: training rows.
    :param bad_khat: rows whose Pareto k̂ exceeds ``khat_threshold`` (their LOO estimate is
        unreliable).
    :param max_khat: the largest k̂.
    :param held_out: the held-out log predictive density per held-out row, if any.
    :param n_held_out: held-out rows.
    :param khat_threshold: ArviZ's threshold for S draws, ``min(1 - 1/log10(S), 0.7)``.
    """

    elpd: float
    se: float
    p_loo: float
    n: int
    bad_khat: int
    max_khat: float
    held_out: float | None
    n_held_out: int
    khat_threshold: float = 0.7


def loo_summary(idata: ArviZData) -> LOOSummary:
    """``az.loo`` on the training ``log_likelihood`` (k̂ counted, not warned about), and the
    held-out log predictive density from the ``predictions`` group.

    Example::

        >>> loo_summary(idata)  # doctest: +SKIP
        LOOSummary(elpd=-1.2, se=0.05, p_loo=11.3, n=353, bad_khat=0, ...)
    """
    import numpy as np

    with warnings.catch_warnings():
        # ArviZ 0.23 announces its 1.x refactor with a FutureWarning on import
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        import arviz as az
    with warnings.catch_warnings():
        # a large k̂ is reported in the summary (bad_khat), not as a warning
        warnings.simplefilter("ignore")
        loo = az.loo(idata, pointwise=True)
    elpd = float(getattr(loo, "elpd_loo", getattr(loo, "elpd", math.nan)))
    p_loo = float(getattr(loo, "p_loo", getattr(loo, "p", math.nan)))
    khat = np.asarray(loo.pareto_k).ravel()
    n = len(khat)
    draws = int(getattr(loo, "n_samples", 0)) or math.inf
    threshold = float(getattr(loo, "good_k", min(1 - 1 / math.log10(draws), 0.7)))
    held_out, n_held = None, 0
    predictions = getattr(idata, "predictions", None)
    if predictions is None and hasattr(idata, "children"):  # ArviZ 1.x: a DataTree
        predictions = idata.children.get("predictions")
    if predictions is not None and "lpd" in predictions.attrs:
        n_held = int(predictions["obs"].sizes["obs_id"])
        held_out = float(predictions.attrs["lpd"]) / n_held
    return LOOSummary(
        elpd=elpd / n,
        se=float(loo.se) / n,
        p_loo=p_loo,
        n=n,
        bad_khat=int((khat > threshold).sum()),
        max_khat=float(khat.max()),
        held_out=held_out,
        n_held_out=n_held,
        khat_threshold=threshold,
    )


def not_converged_warning(sentence: str) -> str:
    """The report's warning about a fit that did not converge.

    Example::

        >>> not_converged_warning("not converged: the limit of 3 epochs came first")
        '> **Warning: not converged: the limit of 3 epochs came first.** The numbers below ...'
    """
    return (
        f"> **Warning: {sentence}.** The numbers below describe an unfinished fit: run again "
        "with a larger `--epochs` (or without it, for the default limit)."
    )


LOO_NOTE = (
    "PSIS-LOO (`az.loo` on the netCDF's `log_likelihood` group, which holds the **training** "
    "rows) estimates the expected log predictive density of a new row from the training data "
    "alone; `p_loo` is the effective number of parameters, and the unreliable rows are those "
    "whose Pareto k̂ exceeds ArviZ's threshold min(1 - 1/log10 S, 0.7) for S draws (0.5 for "
    "100). Many of them (common for BNNs: the guide's draws are a rough stand-in for the "
    "posterior, and a few draws that fit a row badly dominate its estimate) mean that the LOO "
    "column is biased low: trust the held-out column then. "
    "The **held-out** rows are in the `predictions` and `predictions_constant_data` groups, "
    "with their log-likelihood per draw (`obs_log_lik`) and their log predictive density (the "
    "group's `lpd` attribute): it measures the same quantity on rows the fit never saw, so the "
    "two columns should agree up to noise."
)


def loo_table(rows: Sequence[tuple[str, LOOSummary, int, float]]) -> tuple[list[str], list]:
    """``(header, rows)`` of the model-check table: per model, LOO on the training rows and
    the held-out log predictive density, per row.

    :param rows: ``(model, summary, number of weights, log-density shift)``; the shift is
        subtracted from the per-row log densities (log(target std): original units).

    Example::

        >>> from pyro_bdl.cli.report import markdown_table
        >>> s = LOOSummary(-1.2, 0.05, 11.0, 353, 2, 0.8, -1.25, 89, khat_threshold=0.5)
        >>> print(markdown_table(*loo_table([("BNN", s, 611, 0.0)])))  # doctest: +ELLIPSIS
        | model | elpd_loo / row (training) | ± se | held-out lpd / row | p_loo | weights | ...
        |:--|--:|--:|--:|--:|--:|:--|--:|
        | BNN | -1.200 | 0.050 | -1.250 | 11.000 | 611 | 2 of 353 (k̂ > 0.50) | 0.800 |
    """
    header = [
        "model",
        "elpd_loo / row (training)",
        "± se",
        "held-out lpd / row",
        "p_loo",
        "weights",
        "unreliable rows",
        "max k̂",
    ]
    table = []
    for name, s, weights, shift in rows:
        held = None if s.held_out is None else s.held_out - shift
        table.append(
            [
                name,
                s.elpd - shift,
                s.se,
                held,
                s.p_loo,
                weights,
                f"{s.bad_khat} of {s.n} (k̂ > {s.khat_threshold:.2f})",
                s.max_khat,
            ]
        )
    return header, table


def ppc_panel(ax: Axes, idata: Any, title: str, *, seed: int = 0, draws: int = 50) -> None:
    """Posterior predictive check: the training targets' distribution against ``draws``
    replicated data sets (``az.plot_ppc`` on ArviZ 0.x; the same picture drawn from the
    groups' arrays on ArviZ 1.x).

    :param ax: the axes to draw on.
    :param idata: an export with ``posterior_predictive`` and ``observed_data`` groups.
    :param title: the axes' title.
    :param seed: which replicated data sets are drawn.
    :param draws: how many.

    Example::

        >>> from pyro_bdl.cli.report import new_figure
        >>> fig, axes = new_figure(1, 1, (5.0, 4.0))
        >>> ppc_panel(axes[0, 0], idata, "training rows")  # doctest: +SKIP
    """
    from ..arviz import arviz_major_version

    if arviz_major_version() == 0:
        import arviz as az

        sizes = idata.posterior_predictive.sizes
        with warnings.catch_warnings():
            # ArviZ 0.23 calls a matplotlib helper the way matplotlib 3.11 deprecates
            warnings.filterwarnings(
                "ignore",
                message="Passing a dict or None as alias_mapping",
                category=DeprecationWarning,
            )
            az.plot_ppc(
                idata,
                ax=ax,
                num_pp_samples=min(draws, sizes["chain"] * sizes["draw"]),
                random_seed=seed,
            )
    else:  # pragma: no cover - ArviZ 1.x (Python >= 3.12) has no plot_ppc on matplotlib axes
        import numpy as np

        replicated = np.asarray(idata["posterior_predictive"]["obs"]).reshape(
            -1, idata["observed_data"]["obs"].size
        )
        observed = np.asarray(idata["observed_data"]["obs"]).ravel()
        pick = np.random.default_rng(seed).choice(len(replicated), min(draws, len(replicated)))
        edges = np.histogram_bin_edges(np.concatenate([observed, replicated[pick].ravel()]), 30)
        for row in replicated[pick]:
            ax.stairs(np.histogram(row, edges, density=True)[0], edges, color="C0", alpha=0.2)
        ax.stairs(np.histogram(observed, edges, density=True)[0], edges, color="k", lw=2)
    ax.set_title(title)
