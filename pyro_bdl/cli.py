"""The ``pyro-bdl`` command: ``demo``, ``fit`` and ``quickstart``.

``pyro-bdl demo`` is the main job on embedded data (no arguments): mean-field and MC-dropout BNNs
on a 1-D toy regression and on scikit-learn's digits, a student distilled from the dropout
BNN's posterior predictive, and a report folder (Markdown, figures, ArviZ netCDF).
``pyro-bdl fit DATA.csv --target COL`` fits a BNN to a CSV file and writes the same kind of
report plus the fitted posterior. Every error a user can cause (bad CSV, bad target, an output
folder that cannot be written) ends in one line ``pyro-bdl: error: ...`` on stderr, a non-zero
exit code, and no half-written output: reports are staged and moved into place at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__

#: dtype of the data and networks the command builds (fast on CPU, same in every session).
DTYPE = torch.float32

#: Exit code of a run that failed on the user's input or output folder.
EXIT_ERROR = 1


class CLIError(Exception):
    """A problem with the user's input, reported as one line on stderr."""


# ============================================================================== argument parsing
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(low_inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (0 <= value if low_inclusive else 0 < value) and value < 1
        if not ok:
            bracket = "[0, 1)" if low_inclusive else "(0, 1)"
            raise argparse.ArgumentTypeError(f"expected a number in {bracket}, got {text!r}")
        return value

    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**31), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pyro-bdl`` (one subparser per subcommand)."""
    parser = argparse.ArgumentParser(
        prog="pyro-bdl",
        description="Bayesian deep learning as probabilistic programs in Pyro. "
        "Run `pyro-bdl demo` for the main job, `pyro-bdl COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"pyro-bdl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job: BNNs on toy regression and digits, distillation, a report folder",
        description="Fit mean-field and MC-dropout BNNs on a 1-D toy regression and on "
        "scikit-learn's 8x8 digits, distil a small student from the dropout BNN's posterior "
        "predictive, and write a report folder: report.md with the metrics table, PNG figures "
        "(regression bands, reliability diagrams, ELBO traces) and one ArviZ netCDF per BNN. "
        "About 2 minutes on 2 CPU cores; needs scikit-learn.",
    )
    demo.add_argument(
        "--out",
        default="pyro_bdl_report",
        metavar="DIR",
        help="report folder to write (default: pyro_bdl_report); a previous report there is "
        "replaced, any other non-empty folder is refused",
    )
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--quick",
        action="store_true",
        help="tiny budget (a few seconds; for tests, the numbers mean nothing)",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    fit = sub.add_parser(
        "fit",
        help="fit a BNN to a CSV file and write a report with the fitted posterior",
        description="Fit a BNN (one or more ReLU hidden layers, N(0, 1) prior on every weight) "
        "to a CSV file with a header row and numeric feature columns. Features are standardised "
        "with the training statistics; a regression target is standardised too and reported in "
        "its original units; class labels (strings or integers) are mapped to 0..K-1 in sorted "
        "order. Writes report.md, figures, model.json, the posterior (posterior.pt, for "
        "BNN.load) and an ArviZ netCDF of the test set.",
    )
    fit.add_argument("data", metavar="DATA.csv", help="CSV file with a header row")
    fit.add_argument("--target", required=True, metavar="COL", help="name of the target column")
    fit.add_argument(
        "--task",
        choices=("auto", "regression", "classification"),
        default="auto",
        help="auto (default): classification if the target is not numeric or holds at most 10 "
        "distinct integers, else regression",
    )
    fit.add_argument(
        "--guide",
        choices=("meanfield", "dropout"),
        default="meanfield",
        help="meanfield: a Gaussian per weight (default); dropout: MC dropout as VI",
    )
    fit.add_argument(
        "--dropout-p",
        type=_fraction(low_inclusive=True),
        default=0.1,
        metavar="P",
        help="drop probability of the dropout guide (default 0.1)",
    )
    fit.add_argument(
        "--epochs", type=_positive_int, default=300, help="passes over the data (default 300)"
    )
    fit.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="+",
        default=[50],
        metavar="UNITS",
        help="units per hidden layer, e.g. --hidden 64 32 (default: one layer of 50)",
    )
    fit.add_argument(
        "--lr", type=_positive_float, default=1e-2, help="Adam step size (default 0.01)"
    )
    fit.add_argument(
        "--batch-size", type=_positive_int, default=128, help="minibatch size (default 128)"
    )
    fit.add_argument(
        "--samples",
        type=_positive_int,
        default=100,
        help="posterior draws for predictions and the netCDF (default 100)",
    )
    fit.add_argument(
        "--test-fraction",
        type=_fraction(low_inclusive=True),
        default=0.2,
        metavar="F",
        help="share of rows held out for the test metrics (default 0.2; 0 scores the "
        "training rows)",
    )
    fit.add_argument(
        "--out",
        default="pyro_bdl_fit",
        metavar="DIR",
        help="report folder to write (default: pyro_bdl_fit); a previous report there is "
        "replaced, any other non-empty folder is refused",
    )
    fit.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    fit.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch intra-op threads (default 1: fastest for small networks)",
    )
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    quick = sub.add_parser(
        "quickstart",
        help="fit a mean-field BNN on a 1-D toy regression and print a small table",
        description="Fit a mean-field BNN on a 1-D toy regression with a gap in the inputs and "
        "print predictive mean and total / aleatoric / epistemic std at a few inputs.",
    )
    quick.add_argument("--epochs", type=int, default=2000, help="SVI epochs (default 2000)")
    quick.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    quick.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


# ============================================================================== quickstart
def quickstart(epochs: int = 2000, seed: int = 0, progress: bool = True) -> str:
    """Fit a small BNN on toy data and return the summary table as markdown.

    :param epochs: SVI epochs.
    :param seed: random seed.
    :param progress: show the progress bar.

    Example::

        >>> print(quickstart(epochs=50, progress=False))  # doctest: +SKIP
    """
    import pyro.distributions as dist
    from torch import nn

    from .bnn import BNN
    from .datasets import toy_regression
    from .guides import MeanFieldNormal
    from .likelihoods import HomoskedasticGaussian

    torch.manual_seed(seed)
    x, y, info = toy_regression(
        200, heteroskedastic=False, seed=seed, dtype=torch.get_default_dtype()
    )
    net = nn.Sequential(nn.Linear(1, 50), nn.Tanh(), nn.Linear(50, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=MeanFieldNormal(1e-3))
    fit = bnn.fit(x, y, epochs=epochs, lr=1e-2, num_particles=4, seed=seed, progress=progress)
    grid = torch.tensor([[-1.0], [-0.6], [0.0], [0.6], [1.0]])
    pred = bnn.predict(grid, num_samples=200, seed=seed)
    parts = pred.decompose()
    rows = [
        "| x | true mean | predictive mean | total std | aleatoric std | epistemic std |",
        "|---|---|---|---|---|---|",
    ]
    for i, xi in enumerate(grid.squeeze(-1).tolist()):
        rows.append(
            f"| {xi:+.1f} | {info.mean(grid[i]).item():+.3f} | {pred.mean[i].item():+.3f} | "
            f"{parts.total[i].sqrt().item():.3f} | {parts.aleatoric[i].sqrt().item():.3f} | "
            f"{parts.epistemic[i].sqrt().item():.3f} |"
        )
    rows.append("")
    rows.append(
        f"ELBO / datum {fit.elbo[-1]:.3f} (expected log-lik {fit.loglik[-1]:.3f}, "
        f"KL {fit.kl[-1]:.3f}); {fit.num_steps} steps in {fit.seconds:.1f} s; x = 0 is in the gap."
    )
    return "\n".join(rows)


# ============================================================================== shared pieces
@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (small networks are fastest on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _staged(out: str) -> Iterator[Any]:
    """Stage a report folder for ``out``; discard it unless the block commits it."""
    from .report import StagedFolder

    staged = StagedFolder.prepare(out)
    try:
        yield staged
    finally:
        if staged.path.exists():
            staged.discard()


def _mlp(d_in: int, hidden: Sequence[int], d_out: int, activation: type = torch.nn.ReLU) -> Any:
    """``d_in -> hidden... -> d_out`` with ``activation`` between layers, in :data:`DTYPE`."""
    from torch import nn

    layers: list[nn.Module] = []
    width = d_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation()]
        width = h
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers).to(DTYPE)


def _fit(bnn: Any, x: Any, y: Any, desc: str, progress: bool, **kwargs: Any) -> Any:
    """``bnn.fit`` with a labelled progress bar (epochs, last ELBO per datum)."""
    from tqdm.auto import tqdm

    epochs = kwargs["epochs"]
    with tqdm(total=epochs, desc=desc, unit="epoch", disable=not progress, leave=True) as bar:

        def callback(epoch: int, result: Any) -> None:
            bar.update(1)
            bar.set_postfix_str(f"ELBO/N {result.elbo[-1]:.3f}", refresh=False)

        return bnn.fit(x, y, progress=False, callback=callback, **kwargs)


def _export(bnn: Any, x: Any, y: Any, path: Path, *, samples: int, fit: Any, seed: int, **kw: Any):
    """Write the ArviZ InferenceData of ``bnn`` on ``(x, y)`` to ``path`` (netCDF)."""
    from .arviz import to_inference_data

    idata = to_inference_data(bnn, x, y, num_samples=samples, fit_result=fit, seed=seed, **kw)
    idata.to_netcdf(str(path))


def _versions() -> str:
    import pyro

    return f"pyro-bdl {__version__}, torch {torch.__version__}, pyro-ppl {pyro.__version__}"


def _count(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


# ============================================================================== demo
@dataclass(frozen=True)
class DemoBudget:
    """How much work ``pyro-bdl demo`` does (the default, or :data:`QUICK` for tests)."""

    n_regression: int = 400
    n_regression_test: int = 1000
    regression_epochs: int = 4000
    meanfield_particles: int = 8
    digits_epochs: int = 400
    student_epochs: int = 200
    digits_limit: int | None = None
    samples: int = 200
    export_samples: int = 100


#: The ``--quick`` budget: a few seconds, for tests.
QUICK = DemoBudget(
    n_regression=40,
    n_regression_test=50,
    regression_epochs=20,
    meanfield_particles=2,
    digits_epochs=2,
    student_epochs=2,
    digits_limit=150,
    samples=10,
    export_samples=8,
)

#: Distillation temperature of the demo's student.
DEMO_TEMPERATURE = 2.0


def _regression_models(budget: DemoBudget, seed: int, progress: bool) -> tuple[list, dict]:
    """Fit the mean-field and dropout BNNs of the toy regression; ``(results, data)``."""
    import pyro.distributions as dist
    from torch import nn

    from .bnn import BNN
    from .datasets import toy_regression
    from .guides import BernoulliDropout, MeanFieldNormal
    from .likelihoods import HomoskedasticGaussian
    from .metrics import coverage, gaussian_test_ll, rmse
    from .report import ModelResult

    x, y, info = toy_regression(budget.n_regression, heteroskedastic=False, seed=seed, dtype=DTYPE)
    x_test, y_test, _ = toy_regression(
        budget.n_regression_test, heteroskedastic=False, seed=seed + 1, dtype=DTYPE
    )
    grid = torch.linspace(-1.25, 1.25, 251, dtype=DTYPE).unsqueeze(-1)
    specs = [
        (
            "mean-field",
            50,
            nn.Tanh,
            MeanFieldNormal(init_scale=1e-3),
            {"lr": 3e-3, "num_particles": budget.meanfield_particles},
        ),
        ("MC dropout", 200, nn.ReLU, BernoulliDropout(p=0.05), {"lr": 1e-2}),
    ]
    results = []
    for name, width, activation, guide, opts in specs:
        torch.manual_seed(seed)
        net = _mlp(1, [width], 1, activation)
        bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(init_scale=0.5), guide)
        fit = _fit(
            bnn,
            x,
            y,
            f"regression · {name}",
            progress,
            epochs=budget.regression_epochs,
            seed=seed,
            **opts,
        )
        pred = bnn.predict(x_test, budget.samples, seed=seed)
        metrics = {
            "RMSE": rmse(pred, y_test),
            "test LL": gaussian_test_ll(pred, y_test),
            "95% coverage": coverage(pred, y_test, level=0.95),
            "noise std": float(bnn.likelihood.scale.detach()),
            "ELBO/N": fit.elbo[-1],
            "fit s": fit.seconds,
        }
        details = {
            "bnn": bnn,
            "network": f"1 → {width} → 1, {activation.__name__}",
            "guide": repr(guide),
            "grid_prediction": bnn.predict(grid, budget.samples, seed=seed),
        }
        results.append(ModelResult(name, metrics, fit, pred, details))
    data = {
        "x": x,
        "y": y,
        "x_test": x_test,
        "y_test": y_test,
        "grid": grid,
        "info": info,
        "n_test": len(y_test),
        "epochs": budget.regression_epochs,
    }
    return results, data


def _digits_models(budget: DemoBudget, seed: int, progress: bool) -> tuple[list, dict]:
    """Fit the digits BNNs and distil the student from the dropout BNN; ``(results, data)``."""
    import pyro.distributions as dist
    from pyro.infer.autoguide import AutoDelta

    from .bnn import BNN
    from .datasets import load_digits
    from .distill import Distillation, teacher_targets
    from .guides import BernoulliDropout, MeanFieldNormal
    from .likelihoods import Categorical
    from .metrics import accuracy, brier, ece, nll
    from .report import ModelResult

    data = load_digits(seed=seed, dtype=DTYPE)
    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if budget.digits_limit is not None:
        x, y = x[: budget.digits_limit], y[: budget.digits_limit]
        x_test, y_test = x_test[: budget.digits_limit], y_test[: budget.digits_limit]
    classes = len(data.class_names)
    fit_options = {"batch_size": 128, "lr": 1e-2, "seed": seed}

    def result(name: str, bnn: Any, fit: Any, num_samples: int) -> ModelResult:
        pred = bnn.predict(x_test, num_samples, seed=seed)
        metrics = {
            "accuracy": accuracy(pred, y_test),
            "NLL": nll(pred, y_test),
            "ECE": ece(pred, y_test).ece,
            "Brier": brier(pred, y_test),
            "ELBO/N": fit.elbo[-1],
            "fit s": fit.seconds,
        }
        details = {"bnn": bnn, "parameters": _count(bnn.net)}
        return ModelResult(name, metrics, fit, pred, details)

    results = []
    for name, guide in (
        ("mean-field", MeanFieldNormal(init_scale=1e-2)),
        ("MC dropout", BernoulliDropout(p=0.1)),
    ):
        torch.manual_seed(seed)
        bnn = BNN(_mlp(64, [100], classes), dist.Normal(0.0, 1.0), Categorical(), guide)
        fit = _fit(
            bnn, x, y, f"digits · {name}", progress, epochs=budget.digits_epochs, **fit_options
        )
        results.append(result(name, bnn, fit, budget.samples))

    teacher = results[-1]
    soft = teacher_targets(
        teacher.details["bnn"], x, DEMO_TEMPERATURE, num_samples=budget.samples, seed=seed
    )
    torch.manual_seed(seed)
    net = _mlp(64, [20], classes)
    student = BNN(net, dist.Normal(0.0, 1.0), Distillation(DEMO_TEMPERATURE), AutoDelta)
    fit = _fit(
        student,
        x,
        soft,
        "digits · distilled student",
        progress,
        epochs=budget.student_epochs,
        **fit_options,
    )
    distilled = result("distilled student", student, fit, 1)
    same = distilled.prediction.mean.argmax(-1) == teacher.prediction.mean.argmax(-1)
    distilled.details["agreement"] = float(same.double().mean())
    results.append(distilled)
    out = {
        "n_train": len(x),
        "x_test": x_test,
        "y_test": y_test,
        "classes": data.class_names,
        "epochs": budget.digits_epochs,
        "temperature": DEMO_TEMPERATURE,
    }
    return results, out


def run_demo(out: str, *, seed: int = 0, quick: bool = False, progress: bool = True) -> str:
    """Run the demo and write its report folder; return the summary printed by the command.

    :param out: the report folder.
    :param seed: random seed of data, initialisation and fits.
    :param quick: use the :data:`QUICK` budget.
    :param progress: show progress bars.
    :raises CLIError: if scikit-learn is missing.
    :raises OSError: if ``out`` cannot be written (nothing is left half-written).
    """
    from .report import DemoResults, metrics_table, text_table, write_demo_report

    budget = QUICK if quick else DemoBudget()
    start = time.perf_counter()
    try:
        import sklearn  # noqa: F401
    except ImportError as error:
        raise CLIError(
            "the demo's digits data needs scikit-learn: pip install scikit-learn "
            "(or the pyro-bdl[test] extra)"
        ) from error
    with _staged(out) as staged, _threads(1):
        reg_results, reg = _regression_models(budget, seed, progress)
        dig_results, dig = _digits_models(budget, seed, progress)
        exports = []
        for task, results, x_test, y_test, labels in (
            ("regression", reg_results, reg["x_test"], reg["y_test"], None),
            ("digits", dig_results[:2], dig["x_test"], dig["y_test"], list(dig["classes"])),
        ):
            for r in results:
                name = f"{task}_{'meanfield' if r.name == 'mean-field' else 'dropout'}.nc"
                _export(
                    r.details["bnn"],
                    x_test,
                    y_test,
                    staged.path / name,
                    samples=budget.export_samples,
                    fit=r.fit,
                    seed=seed,
                    class_labels=labels,
                )
                exports.append((name, f"{task}, {r.name}"))
        command = f"pyro-bdl demo --seed {seed}" + (" --quick" if quick else "")
        results = DemoResults(
            command=command,
            versions=_versions(),
            quick=quick,
            samples=budget.samples,
            regression=reg_results,
            regression_data=reg,
            digits=dig_results,
            digits_data=dig,
            exports=exports,
            seconds=time.perf_counter() - start,
        )
        write_demo_report(results, staged.path)
        target = staged.commit()
    lines = [
        f"1-D toy regression (test N = {reg['n_test']})",
        text_table(*metrics_table(reg_results, ("RMSE", "test LL", "95% coverage", "fit s"))),
        "",
        f"digits (test N = {len(dig['y_test'])}; student distilled from MC dropout at "
        f"T = {DEMO_TEMPERATURE:g})",
        text_table(*metrics_table(dig_results, ("accuracy", "NLL", "ECE", "fit s"))),
        "",
        f"report: {target / 'report.md'} ({time.perf_counter() - start:.0f} s)",
    ]
    return "\n".join(lines)


# ============================================================================== fit (CSV)
@dataclass
class CSVData:
    """A CSV file read for ``pyro-bdl fit``: numeric features and the raw target column."""

    path: Path
    features: list[str]
    x: list[list[float]]
    target: str
    y: list[str]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_csv(path: str | Path, target: str) -> CSVData:
    """Read a CSV file with a header row; every column but ``target`` must be numeric.

    :raises CLIError: for a missing or unreadable file, a malformed CSV (ragged rows, bad
        quoting, no data), a missing target column, or a non-numeric or missing feature value.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = [(n, row) for n, row in enumerate(csv.reader(f, strict=True), 1)]
    except FileNotFoundError:
        raise CLIError(f"no such file: {str(path)!r}") from None
    except IsADirectoryError:
        raise CLIError(f"{str(path)!r} is a folder, not a CSV file") from None
    except UnicodeDecodeError as error:
        raise CLIError(f"{str(path)!r} is not UTF-8 text ({error.reason})") from None
    except csv.Error as error:
        raise CLIError(f"malformed CSV {str(path)!r}: {_one_line(str(error))}") from None
    except OSError as error:
        raise CLIError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    records = [(n, row) for n, row in records if any(cell.strip() for cell in row)]
    if not records:
        raise CLIError(f"malformed CSV {str(path)!r}: the file is empty")
    header_line, header = records[0]
    names = [h.strip() for h in header]
    if any(not n for n in names):
        raise CLIError(
            f"malformed CSV {str(path)!r}: empty column name in the header (line {header_line})"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CLIError(f"malformed CSV {str(path)!r}: duplicate column name(s) {duplicates}")
    rows = records[1:]
    for n, row in rows:
        if len(row) != len(names):
            raise CLIError(
                f"malformed CSV {str(path)!r}: line {n} has {len(row)} fields, the header has "
                f"{len(names)}"
            )
    if len(rows) < 2:
        raise CLIError(f"malformed CSV {str(path)!r}: need a header and at least 2 data rows")
    if target not in names:
        raise CLIError(f"target column {target!r} not in {str(path)!r}; its columns are {names}")
    t = names.index(target)
    features = [c for c in names if c != target]
    if not features:
        raise CLIError(f"{str(path)!r} has no feature columns besides the target {target!r}")
    x: list[list[float]] = []
    y: list[str] = []
    for n, row in rows:
        values = []
        for j, cell in enumerate(row):
            if j == t:
                continue
            text = cell.strip()
            try:
                value = float(text)
            except ValueError:
                what = "is empty" if not text else f"is {text!r}"
                raise CLIError(
                    f"feature column {names[j]!r} must be numeric, but line {n} {what}"
                ) from None
            if not math.isfinite(value):
                raise CLIError(
                    f"feature column {names[j]!r} must be finite, but line {n} is {text!r}"
                )
            values.append(value)
        label = row[t].strip()
        if not label:
            raise CLIError(f"target column {target!r} is empty on line {n}")
        x.append(values)
        y.append(label)
    return CSVData(path, features, x, target, y)


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def encode_target(values: Sequence[str], task: str) -> tuple[str, Any, list[str] | None, str]:
    """Decide the task and encode the target column.

    :param values: the raw target strings.
    :param task: ``"auto"``, ``"regression"`` or ``"classification"``.
    :return: ``(task, y, classes, reason)``: y is a float tensor (regression) or long labels
        ``0..K-1`` with ``classes[k]`` the original label of ``k`` (sorted numerically if every
        label is a number, else as text).
    :raises CLIError: a non-numeric regression target, or fewer than 2 classes.
    """
    numbers = [_as_number(v) for v in values]
    numeric = all(v is not None for v in numbers)
    reason = f"--task {task}"
    if task == "auto":
        distinct = set(numbers) if numeric else set(values)
        integral = numeric and all(float(v).is_integer() for v in numbers)  # type: ignore[arg-type]
        if not numeric:
            task, reason = "classification", "auto: the target is not numeric"
        elif integral and len(distinct) <= 10:
            task = "classification"
            reason = f"auto: the target holds {len(distinct)} distinct integers"
        else:
            task, reason = "regression", "auto: the target is numeric"
    if task == "regression":
        if not numeric:
            bad = next(v for v, num in zip(values, numbers, strict=True) if num is None)
            raise CLIError(
                f"a regression target must be numeric, but the target column holds {bad!r}; "
                "pass --task classification for class labels"
            )
        return task, torch.tensor(numbers, dtype=DTYPE), None, reason
    if numeric:
        keys = sorted(set(values), key=lambda v: (float(v), v))
    else:
        keys = sorted(set(values))
    if len(keys) < 2:
        raise CLIError(f"classification needs at least 2 classes, but the target has {keys}")
    index = {k: i for i, k in enumerate(keys)}
    return task, torch.tensor([index[v] for v in values], dtype=torch.long), keys, reason


def _split(n: int, fraction: float, seed: int) -> tuple[Any, Any, bool]:
    """Random train/test indices; with ``fraction == 0`` the test set is the training set."""
    if fraction == 0:
        everything = torch.arange(n)
        return everything, everything, False
    n_test = max(1, round(fraction * n))
    if n - n_test < 2:
        raise CLIError(
            f"--test-fraction {fraction:g} leaves {n - n_test} of {n} rows for training; "
            "use a smaller fraction or more rows"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:], perm[:n_test], True


def run_fit(args: argparse.Namespace) -> str:
    """``pyro-bdl fit``: fit a BNN to a CSV file and write the report folder.

    :return: the summary printed by the command.
    :raises CLIError: for bad input (nothing is written).
    :raises OSError: if the output folder cannot be written (nothing is left half-written).
    """
    from .report import StagedFolder

    table = read_csv(args.data, args.target)
    task, y, classes, reason = encode_target(table.y, args.task)
    StagedFolder.check(args.out)  # fail before any fitting
    x = torch.tensor(table.x, dtype=DTYPE)
    train, test, held_out = _split(len(x), args.test_fraction, args.seed)
    with _staged(args.out) as staged, _threads(args.threads):
        summary = _fit_csv(
            args, table, task, reason, x, y, classes, (train, test, held_out), staged.path
        )
        target = staged.commit()
    return summary + f"\nreport: {target / 'report.md'}"


def _fit_csv(
    args: argparse.Namespace,
    table: CSVData,
    task: str,
    reason: str,
    x: Any,
    y: Any,
    classes: list[str] | None,
    split: tuple[Any, Any, bool],
    folder: Path,
) -> str:
    """Standardise, fit, score, save and report one BNN; return the printed summary."""
    import pyro.distributions as dist

    from .bnn import BNN
    from .datasets import standardize
    from .guides import BernoulliDropout, MeanFieldNormal
    from .likelihoods import Categorical, HomoskedasticGaussian
    from .metrics import accuracy, brier, coverage, ece, gaussian_test_ll, nll, rmse
    from .report import FitReport, ModelResult, metrics_table, text_table, write_fit_report
    from .uncertainty import Prediction

    train, test, held_out = split
    (x_train, x_test), x_mean, x_std = standardize(x[train], x[test])
    y_train, y_test = y[train], y[test]
    regression = task == "regression"
    y_mean, y_std = 0.0, 1.0
    if regression:
        (y_fit,), y_mean_t, y_std_t = standardize(y_train)
        y_mean, y_std = float(y_mean_t), float(y_std_t)
        likelihood: Any = HomoskedasticGaussian(init_scale=0.5)
        outputs = 1
    else:
        y_fit, likelihood, outputs = y_train, Categorical(), len(classes or [])
    if args.guide == "meanfield":
        guide: Any = MeanFieldNormal(init_scale=1e-2)
    else:
        guide = BernoulliDropout(p=args.dropout_p)
    torch.manual_seed(args.seed)
    net = _mlp(x_train.shape[1], args.hidden, outputs)
    bnn = BNN(net, dist.Normal(0.0, 1.0), likelihood, guide)
    batch = min(args.batch_size, len(x_train))
    fit = _fit(
        bnn,
        x_train,
        y_fit,
        f"fit · {args.guide}",
        not args.no_progress,
        epochs=args.epochs,
        batch_size=batch,
        lr=args.lr,
        seed=args.seed,
    )
    pred = bnn.predict(x_test, args.samples, seed=args.seed)
    name = f"BNN ({args.guide})"
    if regression:
        pred = Prediction(
            "gaussian", samples=pred.samples * y_std + y_mean, scale=pred.scale * y_std
        )
        columns = ("RMSE", "test LL", "95% coverage", "noise std", "ELBO/N")
        metrics = {
            "RMSE": rmse(pred, y_test),
            "test LL": gaussian_test_ll(pred, y_test),
            "95% coverage": coverage(pred, y_test, level=0.95),
            "noise std": float(bnn.likelihood.scale.detach()) * y_std,
            "ELBO/N": fit.elbo[-1],
        }
        mean_rmse = float((y_test - y_train.mean()).square().mean().sqrt())
        baseline = ModelResult("predict the training mean", {"RMSE": mean_rmse})
    else:
        columns = ("accuracy", "NLL", "ECE", "Brier", "ELBO/N")
        metrics = {
            "accuracy": accuracy(pred, y_test),
            "NLL": nll(pred, y_test),
            "ECE": ece(pred, y_test).ece,
            "Brier": brier(pred, y_test),
            "ELBO/N": fit.elbo[-1],
        }
        majority = int(torch.bincount(y_train, minlength=outputs).argmax())
        hit = float((y_test == majority).double().mean())
        baseline = ModelResult(f"majority class ({classes[majority]})", {"accuracy": hit})  # type: ignore[index]

    bnn.save(folder / "posterior.pt")
    meta = {
        "pyro_bdl_version": __version__,
        "data": str(table.path),
        "task": task,
        "features": table.features,
        "feature_mean": x_mean.tolist(),
        "feature_std": x_std.tolist(),
        "target": table.target,
        "target_mean": y_mean if regression else None,
        "target_std": y_std if regression else None,
        "classes": classes,
        "hidden": list(args.hidden),
        "activation": "relu",
        "outputs": outputs,
        "dtype": str(DTYPE).removeprefix("torch."),
        "guide": args.guide,
        "seed": args.seed,
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _export(
        bnn,
        x_test,
        (y_test - y_mean) / y_std if regression else y_test,
        folder / "inference_data.nc",
        samples=args.samples,
        fit=fit,
        seed=args.seed,
        class_labels=classes,
    )

    scored = f"the {len(test)} test rows" if held_out else "the training rows (none held out)"
    if regression:
        note = (
            "In the target's original units: features and target were standardised with the "
            f"training statistics (target mean {y_mean:.4g}, std {y_std:.4g}) and the "
            "predictions transformed back. Test LL is the mean log predictive density (nats); "
            "coverage the share of targets inside the central 95 % predictive interval; ELBO/N "
            "is per training row, on the standardised scale."
        )
        what = "Gaussian likelihood with a learned noise std"
    else:
        note = (
            "NLL: negative mean log predictive probability of the label (nats); ECE: expected "
            "calibration error over 15 confidence bins; ELBO/N: per training row."
        )
        what = "categorical likelihood"
    layers = " → ".join(str(d) for d in (len(table.features), *args.hidden, outputs))
    description = (
        f"ReLU network {layers} ({_count(net)} weights), N(0, 1) prior on every weight, {what}, "
        f"guide `{guide!r}`; {args.epochs} epochs of minibatches of {batch}, Adam (lr "
        f"{args.lr:g}), seed {args.seed}; {fit.seconds:.1f} s. Predictions average "
        f"{args.samples} posterior draws."
    )
    counts = torch.bincount(y, minlength=outputs).tolist() if not regression else []
    report = FitReport(
        title=table.path.name,
        intro=(
            f"Written by `pyro-bdl fit` ({_versions()}) from `{table.path}`: {len(x)} rows, "
            f"{len(table.features)} numeric features, target `{table.target}`, task **{task}** "
            f"({reason}). {len(train)} training rows; metrics on {scored}."
        ),
        model=ModelResult(name, metrics, fit, pred, {"description": description}),
        baseline=baseline,
        columns=columns,
        regression=regression,
        y_test=y_test,
        classes=None if regression else [(i, c, counts[i]) for i, c in enumerate(classes or [])],
        note=note,
        files=_files_note(args.hidden, regression),
    )
    write_fit_report(report, folder)
    return text_table(*metrics_table([report.model, baseline], columns))


def _files_note(hidden: Sequence[int], regression: bool) -> str:
    """The report's list of files and the code that reloads the posterior."""
    units = ", ".join(str(h) for h in hidden)
    standardised = " (log-likelihood of the standardised target)" if regression else ""
    return (
        "`posterior.pt`: the fitted posterior (`BNN.save`); `model.json`: the preprocessing and "
        "the architecture; `inference_data.nc`: the ArviZ InferenceData of the scored rows"
        f"{standardised}; `diagnostics.png`. Reload the posterior and predict new rows:\n\n"
        "```python\nimport json\n\nimport torch\nfrom torch import nn\n\n"
        "from pyro_bdl import BNN\n\n"
        'meta = json.load(open("model.json"))\n'
        'layers, width = [], len(meta["features"])\n'
        f"for h in [{units}]:\n"
        "    layers += [nn.Linear(width, h), nn.ReLU()]\n"
        "    width = h\n"
        'net = nn.Sequential(*layers, nn.Linear(width, meta["outputs"])).float()\n'
        'bnn = BNN.load("posterior.pt", net=net)\n'
        "x = torch.tensor(rows, dtype=torch.float32)  # (N, features) in model.json's order\n"
        'x = (x - torch.tensor(meta["feature_mean"])) / torch.tensor(meta["feature_std"])\n'
        "pred = bnn.predict(x, num_samples=100)\n```"
    )


# ============================================================================== entry point
def _error(message: str) -> int:
    print(f"pyro-bdl: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-bdl``; returns the exit code."""
    from .bnn import DivergenceError
    from .report import OutputError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "quickstart":
            print(quickstart(args.epochs, args.seed, progress=not args.no_progress))
        elif args.command == "demo":
            print(
                run_demo(args.out, seed=args.seed, quick=args.quick, progress=not args.no_progress)
            )
        elif args.command == "fit":
            print(run_fit(args))
        else:
            parser.print_help()
    except (CLIError, OutputError) as error:
        return _error(str(error))
    except DivergenceError as error:
        return _error(f"{error} (--lr sets the learning rate)")
    except OSError as error:  # e.g. the disk filled up while writing the report
        where = f"{error.filename}: " if error.filename else ""
        return _error(f"{where}{error.strerror or error}")
    except KeyboardInterrupt:
        print("pyro-bdl: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
