"""Report folders of the ``pyro-bdl`` command: staged writing, Markdown, tables and figures.

A report is written into a hidden staging folder next to its destination and moved into place
only when complete (:class:`StagedFolder`), so a failed or interrupted run leaves the
destination absent or untouched. :class:`Report` collects Markdown blocks, tables and
matplotlib figures (saved as PNG) and writes ``report.md``; :func:`write_demo_report` and
:func:`write_fit_report` lay out the reports of ``pyro-bdl demo`` and ``pyro-bdl fit`` from
:class:`ModelResult` records.

Example::

    >>> staged = StagedFolder.prepare("pyro_bdl_report")  # doctest: +SKIP
    >>> report = Report("My run", staged.path)  # doctest: +SKIP
    >>> report.table(["model", "RMSE"], [["mean-field", "0.12"]])  # doctest: +SKIP
    >>> report.figure(fig, "bands.png", "Predictive bands")  # doctest: +SKIP
    >>> report.write()  # doctest: +SKIP
    >>> staged.commit()  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checks

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from torch import Tensor

    from ..bnn import FitResult
    from ..uncertainty import Prediction
    from .checks import LOOSummary

__all__ = [
    "CLASSIFICATION_COLUMNS",
    "MARKER",
    "REGRESSION_COLUMNS",
    "DemoResults",
    "FitReport",
    "ModelResult",
    "OutputError",
    "Report",
    "StagedFolder",
    "elbo_panel",
    "format_number",
    "markdown_table",
    "metrics_table",
    "new_figure",
    "observed_vs_predicted",
    "text_table",
    "write_demo_report",
    "write_fit_report",
]

#: File that marks a folder as a pyro-bdl report (which a later run may replace).
MARKER = ".pyro-bdl-report"


class OutputError(OSError):
    """The output folder cannot be used (not a folder, not writable, someone else's folder).

    Example::

        >>> StagedFolder.check("/dev/null")
        Traceback (most recent call last):
        ...
        pyro_bdl.cli.report.OutputError: output path '/dev/null' exists and is not a folder
    """


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.curdir)


class StagedFolder:
    """A folder written under a temporary name and renamed into place by :meth:`commit`.

    The staging folder sits in the destination's closest existing ancestor (same file system,
    so the final move is a rename). An existing destination is replaced only if it is empty or
    a previous pyro-bdl report (it holds :data:`MARKER`); otherwise :meth:`prepare` refuses.

    :param target: the destination folder.
    :param path: the staging folder being written.

    Example::

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     staged = StagedFolder.prepare(Path(tmp) / "out")
        ...     _ = (staged.path / "a.txt").write_text("1")
        ...     target = staged.commit()
        ...     sorted(p.name for p in target.iterdir())
        ['.pyro-bdl-report', 'a.txt']
    """

    def __init__(self, target: Path, path: Path) -> None:
        self.target = target
        self.path = path

    @classmethod
    def check(cls, target: str | os.PathLike[str]) -> Path:
        """Validate a destination without writing anything; return it as an absolute path.

        :raises OutputError: if it is a file, a folder that is not a pyro-bdl report and not
            empty, or under a file.
        """
        target = Path(target).expanduser().absolute()
        if target.exists() or target.is_symlink():
            if not target.is_dir():
                raise OutputError(f"output path {str(target)!r} exists and is not a folder")
            if any(target.iterdir()) and not (target / MARKER).is_file():
                raise OutputError(
                    f"output folder {str(target)!r} exists and is not a pyro-bdl report; choose "
                    "another --out or empty it"
                )
        base = _nearest_existing(target.parent)
        if not base.is_dir():
            raise OutputError(
                f"cannot create output folder {str(target)!r}: {str(base)!r} is not a folder"
            )
        return target

    @classmethod
    def prepare(cls, target: str | os.PathLike[str]) -> StagedFolder:
        """Check the destination and create the staging folder (this proves it is writable).

        :raises OutputError: see :meth:`check`, or if the location is not writable.
        """
        target = cls.check(target)
        base = _nearest_existing(target.parent)
        try:
            path = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=base))
            umask = os.umask(0)
            os.umask(umask)
            path.chmod(0o777 & ~umask)  # mkdtemp's 0o700 would make the report private
        except OSError as error:
            raise OutputError(
                f"cannot write output folder {str(target)!r}: {error.strerror or error}"
            ) from error
        return cls(target, path)

    def commit(self) -> Path:
        """Move the staging folder to the destination (replacing a previous report)."""
        (self.path / MARKER).write_text("written by pyro-bdl\n")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.path.parent))
            os.replace(self.target, old / "previous")
        try:
            os.replace(self.path, self.target)
        except OSError:
            if old is not None:
                os.replace(old / "previous", self.target)
                shutil.rmtree(old, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        """Remove the staging folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)


def format_number(value: object, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` decimals, ``None`` and NaN as an em dash.

    :param value: the cell; anything but a float or ``None`` is printed with :func:`str`.
    :param digits: decimals of a float.

    Example::

        >>> format_number(0.12345), format_number(1.25, 1), format_number(None), format_number(7)
        ('0.123', '1.2', '—', '7')
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def _cells(rows: Sequence[Sequence[object]], digits: Sequence[int] | None) -> list[list[str]]:
    if digits is None:
        return [[format_number(v) for v in row] for row in rows]
    return [[format_number(v, d) for v, d in zip(row, digits, strict=True)] for row in rows]


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], digits: Sequence[int] | None = None
) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned).

    :param header: column names.
    :param rows: cells; floats are printed with ``digits[i]`` decimals (default 3).

    Example::

        >>> print(markdown_table(["model", "RMSE"], [["a", 0.5]]))
        | model | RMSE |
        |:--|--:|
        | a | 0.500 |
    """
    cells = _cells(rows, digits)
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(header))
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("--:" if n else ":--" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], digits: Sequence[int] | None = None
) -> str:
    """A plain-text table with aligned columns, for the terminal (arguments as
    :func:`markdown_table`).

    Example::

        >>> print(text_table(["model", "RMSE"], [["a", 0.5]]))
        model   RMSE
        a      0.500
    """
    cells = [list(header), *_cells(rows, digits)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        for i in range(len(header))
    ]
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


class Report:
    """A Markdown report assembled block by block, written as ``report.md`` into ``folder``.

    :param title: the level-1 heading.
    :param folder: where ``report.md`` and the figures go.

    Example::

        >>> report = Report("My run", Path("."))
        >>> report.table(["model", "RMSE"], [["mean-field", 0.12]])
        >>> print("\\n\\n".join(report.blocks))
        # My run
        <BLANKLINE>
        | model | RMSE |
        |:--|--:|
        | mean-field | 0.120 |
        >>> report.write()  # doctest: +SKIP
        PosixPath('report.md')
    """

    def __init__(self, title: str, folder: Path) -> None:
        self.folder = Path(folder)
        self.blocks: list[str] = [f"# {title}"]

    def text(self, markdown: str) -> None:
        """Append a Markdown paragraph (or any block)."""
        self.blocks.append(markdown.strip())

    def heading(self, title: str, level: int = 2) -> None:
        """Append a heading."""
        self.blocks.append(f"{'#' * level} {title}")

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[object]],
        digits: Sequence[int] | None = None,
    ) -> None:
        """Append a table (see :func:`markdown_table`)."""
        self.blocks.append(markdown_table(header, rows, digits))

    def figure(self, fig: Figure, filename: str, caption: str) -> Path:
        """Save ``fig`` as PNG in the report folder and embed it with a caption."""
        path = self.folder / filename
        fig.savefig(path, dpi=100)
        self.blocks.append(f"![{caption}]({filename})\n\n*{caption}*")
        return path

    def write(self, filename: str = "report.md") -> Path:
        """Write the report; return its path."""
        path = self.folder / filename
        path.write_text("\n\n".join(self.blocks) + "\n", encoding="utf-8")
        return path


# ============================================================================== figures
def new_figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A constrained-layout Agg figure and its 2-D array of axes (no pyplot state).

    :param nrows: rows of axes.
    :param ncols: columns of axes.
    :param size: the figure's ``(width, height)`` in inches.

    Example::

        >>> fig, axes = new_figure(1, 2, (8.0, 3.0))
        >>> axes.shape
        (1, 2)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def elbo_panel(ax: Axes, fit: FitResult, title: str) -> None:
    """:func:`pyro_bdl.plots.elbo_trace` of a fit, per epoch, titled.

    :param ax: the axes to draw on.
    :param fit: the fit record.
    :param title: the axes' title.

    Example::

        >>> fig, axes = new_figure(1, 1, (5.0, 4.0))
        >>> elbo_panel(axes[0, 0], bnn.fit(x, y, epochs=100), "mean-field")  # doctest: +SKIP
    """
    from ..plots import elbo_trace

    elbo_trace(fit, ax=ax)
    ax.set_xlabel("epoch")
    ax.set_title(title)


def observed_vs_predicted(ax: Axes, y: Tensor, prediction: Prediction) -> None:
    """Predictive means with 95 % intervals against the observed targets ``(N,)``.

    :param ax: the axes to draw on.
    :param y: the observed targets ``(N,)``.
    :param prediction: a regression prediction at the same ``N`` inputs.

    Example::

        >>> import torch
        >>> from pyro_bdl import Prediction
        >>> pred = Prediction("gaussian", samples=torch.randn(10, 5), scale=torch.ones(10, 5))
        >>> fig, axes = new_figure(1, 1, (5.0, 4.0))
        >>> observed_vs_predicted(axes[0, 0], torch.randn(5), pred)
        >>> axes[0, 0].get_xlabel(), axes[0, 0].get_ylabel()
        ('observed', 'predicted')
    """
    lower, upper = prediction.interval(0.95)
    mean = prediction.mean
    ax.errorbar(
        y.double().numpy(),
        mean.double().numpy(),
        yerr=[(mean - lower).double().numpy(), (upper - mean).double().numpy()],
        fmt="o",
        ms=3,
        alpha=0.6,
        label="prediction, 95 % interval",
    )
    low = float(min(y.min(), lower.min()))
    high = float(max(y.max(), upper.max()))
    ax.plot([low, high], [low, high], "k--", label="y = prediction")
    ax.set_xlabel("observed")
    ax.set_ylabel("predicted")
    ax.set_title("Test targets")
    ax.legend(loc="best")


# ============================================================================== results
@dataclass
class ModelResult:
    """One fitted model of a report: its name, metrics and what the figures need.

    :param name: row label, e.g. ``"mean-field"``.
    :param metrics: ``{column: value}``; ``"fit s"`` is printed to 0.1 s, others to 3 decimals.
    :param fit: the fit record (ELBO trace).
    :param prediction: the test-set prediction (reliability diagrams, intervals).
    :param details: anything else the report shows (architecture, guide, ...).

    Example::

        >>> baseline = ModelResult("predict the training mean", {"RMSE": 1.3})
        >>> baseline.metrics["RMSE"], baseline.fit is None
        (1.3, True)
    """

    name: str
    metrics: Mapping[str, float | None]
    fit: FitResult | None = None
    prediction: Prediction | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def require_fit(self) -> FitResult:
        """:attr:`fit`, which a training figure needs.

        :raises ValueError: if this result has no fit record (a baseline).
        """
        if self.fit is None:
            raise ValueError(f"model {self.name!r} has no fit record to plot")
        return self.fit

    def require_prediction(self) -> Prediction:
        """:attr:`prediction`, which a reliability or interval figure needs.

        :raises ValueError: if this result has no prediction (a baseline).

        Example::

            >>> ModelResult("majority class", {"accuracy": 0.3}).require_prediction()
            Traceback (most recent call last):
            ...
            ValueError: model 'majority class' has no prediction to plot
        """
        if self.prediction is None:
            raise ValueError(f"model {self.name!r} has no prediction to plot")
        return self.prediction


def metrics_table(
    results: Sequence[ModelResult], columns: Sequence[str]
) -> tuple[list[str], list[list[object]], list[int]]:
    """``(header, rows, digits)`` of a metrics table, for :func:`markdown_table`.

    :param results: one row per model.
    :param columns: the metrics to show; a model without one gets an em dash.

    Example::

        >>> rows = [ModelResult("a", {"RMSE": 0.5, "fit s": 12.34}), ModelResult("b", {})]
        >>> print(text_table(*metrics_table(rows, ["RMSE", "fit s"])))
        model   RMSE  fit s
        a      0.500   12.3
        b          —      —
    """
    header = ["model", *columns]
    rows: list[list[object]] = [[r.name, *(r.metrics.get(c) for c in columns)] for r in results]
    return header, rows, [0, *(1 if c == "fit s" else 3 for c in columns)]


REGRESSION_COLUMNS = ("RMSE", "test LL", "95% coverage", "noise std", "ELBO/N", "fit s")
CLASSIFICATION_COLUMNS = ("accuracy", "NLL", "ECE", "Brier", "ELBO/N", "fit s")

_METRICS_NOTE = (
    "RMSE and test LL (mean log predictive density, nats) are in the target's units; coverage "
    "is the share of test targets inside the central 95 % predictive interval; NLL is the "
    "negative mean log predictive probability of the label (nats); ECE the expected "
    "calibration error over 15 confidence bins; ELBO/N the last epoch's ELBO per training "
    "point (nats); fit s the wall time of the fit."
)


# ============================================================================== demo report
@dataclass
class DemoResults:
    """Everything the ``pyro-bdl demo`` report shows.

    :param command: the command line that reproduces the run.
    :param versions: library versions, one line.
    :param quick: whether the tiny test budget was used.
    :param samples: posterior draws per prediction.
    :param regression: the regression models; ``details`` holds ``"network"``, ``"guide"`` and
        ``"grid_prediction"`` (a Prediction on ``regression_data["grid"]``).
    :param regression_data: ``x``, ``y`` (training), ``grid``, ``info`` (the
        :class:`~pyro_bdl.datasets.ToyInfo`), ``n_test``, ``epochs``.
    :param digits: the classifiers, the distilled student last; ``details`` holds
        ``"parameters"`` (and ``"agreement"`` with the teacher for the student).
    :param digits_data: ``n_train``, ``y_test``, ``classes``, ``epochs``, ``temperature``.
    :param exports: ``(file name, description)`` of each netCDF written; the models of those
        files hold ``details["idata"]`` (the export) and ``details["loo"]`` (its
        :class:`~pyro_bdl.cli.checks.LOOSummary`).
    :param seconds: wall time of the run.
    :param baselines: the linear baselines, ``{"regression": ..., "digits": ...}``
        (``details["description"]``: one line).

    Every BNN's ``details`` hold ``"converged"`` and ``"convergence"`` (one sentence).

    :func:`~pyro_bdl.cli.demo.run_demo` builds one and passes it to :func:`write_demo_report`.
    """

    command: str
    versions: str
    quick: bool
    samples: int
    regression: list[ModelResult]
    regression_data: dict[str, Any]
    digits: list[ModelResult]
    digits_data: dict[str, Any]
    exports: list[tuple[str, str]]
    seconds: float
    baselines: dict[str, ModelResult] = field(default_factory=dict)


def _demo_checks(report: Report, r: DemoResults) -> None:
    """The demo report's model checks: LOO against held-out density, PPCs, test fit."""
    exported = [
        (task, m)
        for task, models in (("regression", r.regression), ("digits", r.digits))
        for m in models
        if "loo" in m.details
    ]
    if not exported:
        return
    report.heading("Model checks")
    rows = [
        (f"{task}, {m.name}", m.details["loo"], m.details["parameters"], 0.0)
        for task, m in exported
    ]
    report.table(*checks.loo_table(rows))
    report.text(checks.LOO_NOTE)
    fig, axes = new_figure(2, 2, (11.0, 8.0))
    for ax, (task, m) in zip(axes.ravel(), exported, strict=False):
        checks.ppc_panel(ax, m.details["idata"], f"{task} · {m.name}")
        ax.set_xlabel("y" if task == "regression" else "class label")
    for ax in axes.ravel()[len(exported) :]:
        ax.set_visible(False)
    report.figure(
        fig,
        "ppc.png",
        "Posterior predictive checks on the training rows: the distribution of the observed "
        "targets (black) against data sets replicated from the posterior predictive (blue), "
        "drawn by ArviZ.",
    )
    fig, axes = new_figure(1, len(r.regression), (5.5 * len(r.regression), 4.5))
    for ax, m in zip(axes[0], r.regression, strict=True):
        observed_vs_predicted(ax, r.regression_data["y_test"], m.require_prediction())
        ax.set_title(f"{m.name}: coverage {m.metrics['95% coverage']:.3f}")
    report.figure(
        fig,
        "regression_test.png",
        "Toy regression, test set: predicted against observed targets with 95 % predictive "
        "intervals.",
    )


def write_demo_report(results: DemoResults, folder: Path) -> Path:
    """Write ``report.md`` and its figures for ``pyro-bdl demo``; return the report's path.

    :param results: what the report shows.
    :param folder: the (staged) report folder.

    Example::

        >>> write_demo_report(results, staged.path)  # doctest: +SKIP
        PosixPath('.../report.md')
    """
    from ..plots import regression_bands, reliability_diagram

    r, reg, dig = results, results.regression_data, results.digits_data
    report = Report("pyro-bdl demo", folder)
    report.text(
        f"Written by `{r.command}` ({r.versions}). Every network is an ordinary "
        "`nn.Sequential` with a N(0, 1) prior on all its weights and biases; guides are fitted "
        "by SVI with Adam, and predictions average over posterior draws "
        f"({r.samples} per input)."
        + ("\n\n**Quick budget: these numbers are not meaningful.**" if r.quick else "")
    )

    unfinished = [
        f"{task}, {m.name}"
        for task, models in (("regression", r.regression), ("digits", r.digits))
        for m in models
        if not m.details.get("converged", True)
    ]
    if unfinished:
        report.text(checks.not_converged_warning(f"not converged: {'; '.join(unfinished)}"))

    report.heading("Summary")
    extra = [r.baselines[k] for k in ("regression",) if k in r.baselines]
    report.text("1-D toy regression, test set:")
    report.table(*metrics_table([*r.regression, *extra], REGRESSION_COLUMNS))
    report.text("Digits, test set:")
    extra = [r.baselines[k] for k in ("digits",) if k in r.baselines]
    report.table(*metrics_table([*r.digits, *extra], CLASSIFICATION_COLUMNS))
    lines = "; ".join(b.details["description"] for b in r.baselines.values())
    report.text(_METRICS_NOTE + (f" Linear baselines ({lines})." if lines else ""))

    report.heading("1-D toy regression")
    info = reg["info"]
    report.text(
        f"{len(reg['y'])} training points y = sin(4x) + 0.1·ε on [-1, 1] with no inputs in the "
        f"gap {info.gap}; {reg['n_test']} test points from the same distribution (another "
        f"seed). Gaussian likelihood with a learned noise std; at most {reg['epochs']} "
        "full-batch epochs, until the ELBO converges (the step size is cut by 3 at each "
        "plateau; the fourth plateau ends the fit)."
    )
    report.table(
        ["model", "network", "guide", "noise std (true 0.1)", "fit"],
        [
            [
                m.name,
                m.details["network"],
                f"`{m.details['guide']}`",
                m.metrics["noise std"],
                m.details.get("convergence", "—"),
            ]
            for m in r.regression
        ],
    )
    report.text(
        "A learned noise std above the truth widens every interval: with a mean-field or "
        "dropout posterior, the spread of the network's function over the training inputs is "
        "partly fitted as noise, and counted again in the predictive. Wider networks (more "
        "units left at the prior) or higher drop rates make this worse; the coverage column "
        "above shows how close to 95 % the intervals come."
    )
    fig, axes = new_figure(1, len(r.regression), (6.0 * len(r.regression), 4.2))
    for ax, m in zip(axes[0], r.regression, strict=True):
        regression_bands(
            reg["grid"],
            m.details["grid_prediction"],
            x_train=reg["x"],
            y_train=reg["y"],
            true_fn=info.mean,
            ax=ax,
        )
        ax.set_title(m.name)
    report.figure(
        fig,
        "regression_bands.png",
        "Predictive mean with 95 % bands: total (light) and epistemic (dark). The inputs in "
        f"{info.gap} and beyond ±1 are away from the data.",
    )

    report.heading("Digits and distillation")
    teacher, student = r.digits[-2], r.digits[-1]
    n_classes = len(dig["classes"])
    report.text(
        f"scikit-learn's 8x8 digits: {dig['n_train']} training and {len(dig['y_test'])} test "
        f"images (stratified split), a 64 → 100 → {n_classes} ReLU network "
        f"({teacher.details['parameters']} weights), categorical likelihood, at most "
        f"{dig['epochs']} epochs of minibatches of 128 (the same convergence rule). "
        + " ".join(f"{m.name}: {m.details['convergence']}." for m in r.digits[:2])
    )
    share = student.details["parameters"] / teacher.details["parameters"]
    report.text(
        f"The **distilled student** is a 64 → 20 → {n_classes} ReLU network "
        f"({student.details['parameters']} weights, {share:.0%} of the teacher) trained with "
        "the `Distillation` likelihood on the MC-dropout BNN's posterior-predictive "
        f"probabilities at temperature T = {dig['temperature']:g} (`teacher_targets`: "
        f"probabilities averaged over {r.samples} weight draws), with a point-mass guide "
        "(`AutoDelta`, a MAP network): one forward pass per prediction instead of "
        f"{r.samples}. It agrees with the teacher's top class on "
        f"{student.details['agreement']:.1%} of the test images."
    )
    fig, axes = new_figure(1, len(r.digits), (4.5 * len(r.digits), 4.5))
    for ax, m in zip(axes[0], r.digits, strict=True):
        reliability_diagram(m.require_prediction(), dig["y_test"], ax=ax)
        ax.set_title(f"{m.name}: ECE {m.metrics['ECE']:.3f}")
    report.figure(
        fig,
        "reliability.png",
        "Reliability diagrams on the digits test set: accuracy against confidence per bin; "
        "bars below the diagonal are over-confident.",
    )

    report.heading("Training")
    cols = max(len(r.regression), len(r.digits))
    fig, axes = new_figure(2, cols, (5.0 * cols, 7.5))
    for row, (task, models) in enumerate((("regression", r.regression), ("digits", r.digits))):
        for i in range(cols):
            if i < len(models):
                elbo_panel(axes[row, i], models[i].require_fit(), f"{task} · {models[i].name}")
            else:
                axes[row, i].set_visible(False)
    report.figure(
        fig,
        "elbo_traces.png",
        "ELBO per datum (nats) and its expected log-likelihood term per epoch; the KL term on "
        "the right axis.",
    )

    _demo_checks(report, r)

    report.heading("ArviZ files")
    report.text(
        "One netCDF per BNN. The **training** rows: `posterior` (`obs_mean`, the per-draw "
        "predictive mean), `posterior_predictive`, `log_likelihood` (pointwise, what "
        "`az.loo`/`az.compare` read), `observed_data` and `constant_data`. The **test** rows: "
        "`predictions` (draws of y, `obs_mean`, the per-draw log-likelihood `obs_log_lik` and "
        "the attribute `lpd`, their log predictive density) and `predictions_constant_data` "
        "(inputs `x`, targets `obs`). Plus `variational` (guide parameters, ELBO trace). Open "
        "one with `arviz.from_netcdf(path)`."
    )
    report.table(["file", "model"], [[f"`{n}`", d] for n, d in r.exports])
    report.text(f"Wall time of the run: {r.seconds:.0f} s.")
    return report.write()


# ============================================================================== fit report
@dataclass
class FitReport:
    """Everything the ``pyro-bdl fit`` report shows.

    :param title: the data file's name.
    :param intro: the opening paragraph (data, task, split).
    :param model: the BNN's row; ``details`` holds ``"description"`` (one paragraph).
    :param baselines: the linear baseline (``details["description"]``) and the trivial
        predictor (training mean or majority class).
    :param regression: whether the task is regression.
    :param y_test: test targets in original units (regression) or labels.
    :param classes: ``(label, class name, rows)`` per class (classification).
    :param note: paragraph under the metrics table.
    :param files: paragraph describing the files and how to reload the model.
    :param convergence: one sentence on how the fit ended.
    :param converged: whether it converged (else the report opens with a warning).
    :param idata: the exported InferenceData (training rows; held-out rows as predictions).
    :param loo: its :class:`~pyro_bdl.cli.checks.LOOSummary`.
    :param target_shift: log(target std) for regression (log densities of the standardised
        target minus it are in the target's units), else 0.
    :param parameters: the number of weights of the network.

    :func:`~pyro_bdl.cli.fit_csv.run_fit` builds one and passes it to :func:`write_fit_report`.
    """

    title: str
    intro: str
    model: ModelResult
    baselines: list[ModelResult]
    regression: bool
    y_test: Tensor
    classes: list[tuple[int, str, int]] | None
    note: str
    files: str
    convergence: str
    converged: bool
    idata: Any
    loo: LOOSummary
    target_shift: float
    parameters: int

    @property
    def columns(self) -> tuple[str, ...]:
        """The metric columns of the report's table."""
        return (
            ("RMSE", "test LL", "95% coverage", "noise std", "ELBO/N", "fit s")
            if self.regression
            else ("accuracy", "NLL", "ECE", "Brier", "ELBO/N", "fit s")
        )


def write_fit_report(results: FitReport, folder: Path) -> Path:
    """Write ``report.md``, ``diagnostics.png`` and ``checks.png`` for ``pyro-bdl fit``;
    return the report's path.

    :param results: what the report shows.
    :param folder: the (staged) report folder.

    Example::

        >>> write_fit_report(report, staged.path)  # doctest: +SKIP
        PosixPath('.../report.md')
    """
    from ..plots import reliability_diagram

    r = results
    report = Report(f"pyro-bdl fit: {r.title}", folder)
    if not r.converged:
        report.text(checks.not_converged_warning(r.convergence))
    report.text(r.intro)
    report.heading("Metrics")
    rows = [r.model, *r.baselines]
    report.table(*metrics_table(rows, r.columns))
    linear = r.baselines[0]
    report.text(
        f"{r.note} The linear baseline is {linear.details['description']}, fitted to the same "
        "standardised features: a BNN that does no better than it does not earn its keep."
    )
    if r.classes is not None:
        report.heading("Classes", 3)
        report.table(["label", "class", "rows"], [[i, f"`{c}`", n] for i, c, n in r.classes])
    report.heading("Model")
    report.text(r.model.details["description"])
    fig, axes = new_figure(1, 2, (11.0, 4.5))
    elbo_panel(axes[0, 0], r.model.require_fit(), "Training objective")
    if r.regression:
        observed_vs_predicted(axes[0, 1], r.y_test, r.model.require_prediction())
        caption = "ELBO trace; observed against predicted test targets with 95 % intervals."
    else:
        reliability_diagram(r.model.require_prediction(), r.y_test, ax=axes[0, 1])
        caption = "ELBO trace; reliability diagram of the test predictions."
    report.figure(fig, "diagnostics.png", caption)

    report.heading("Model checks")
    shift = r.target_shift
    report.table(*checks.loo_table([(r.model.name, r.loo, r.parameters, shift)]))
    units = (
        " Per-row log densities are in the target's units (the netCDF holds the standardised "
        f"target: subtract log(target std) = {shift:.4g} from its log densities)."
        if r.regression
        else ""
    )
    report.text(checks.LOO_NOTE + units)
    fig, axes = new_figure(1, 1, (6.0, 4.2))
    checks.ppc_panel(axes[0, 0], r.idata, "Posterior predictive check, training rows")
    if r.regression:
        axes[0, 0].set_xlabel("standardised target")
    else:
        axes[0, 0].set_xlabel("class label")
    report.figure(
        fig,
        "checks.png",
        "Posterior predictive check: the distribution of the training targets (black) against "
        "data sets replicated from the posterior predictive (blue), drawn by ArviZ.",
    )
    report.heading("Files")
    report.text(r.files)
    return report.write()
