"""``pyro-bdl demo`` and ``pyro-bdl quickstart``: the main job and a one-table check.

``pyro-bdl demo`` fits mean-field and MC-dropout BNNs on a 1-D toy regression and on
scikit-learn's digits, distils a student from the dropout BNN's posterior predictive, and writes
a report folder (Markdown, figures, ArviZ netCDF). ``pyro-bdl quickstart`` fits one BNN on toy
data and prints a table. The engine is imported inside the functions (fast ``--help``).

Example::

    >>> QUICK.regression_epochs, DemoBudget().regression_epochs
    (20, 4000)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .checks import loo_summary
from .common import (
    DTYPE,
    CLIError,
    count_parameters,
    export_netcdf,
    fit_until_converged,
    mlp,
    staged,
    threads,
    versions,
    warn,
)

if TYPE_CHECKING:
    from ..bnn import BNN, FitResult
    from .report import ModelResult
    from .training import ConvergenceRule

__all__ = [
    "DEMO_TEMPERATURE",
    "QUICK",
    "REGRESSION_DROPOUT",
    "REGRESSION_WIDTHS",
    "DemoBudget",
    "quickstart",
    "run_demo",
]


def quickstart(epochs: int = 2000, seed: int = 0, progress: bool = True) -> str:
    """Fit a small BNN on toy data and return the summary table as markdown.

    :param epochs: the most SVI epochs (the fit stops once converged, see
        :mod:`~pyro_bdl.cli.training`).
    :param seed: random seed.
    :param progress: show the progress bar.

    Example::

        >>> table = quickstart(epochs=5, progress=False)
        >>> print(table.splitlines()[0])
        | x | true mean | predictive mean | total std | aleatoric std | epistemic std |
        >>> table.count("\\n| ")  # one row per input
        5
    """
    import pyro.distributions as dist
    from torch import nn

    from ..bnn import BNN
    from ..datasets import toy_regression
    from ..guides import MeanFieldNormal
    from ..likelihoods import HomoskedasticGaussian

    torch.manual_seed(seed)
    x, y, info = toy_regression(
        200, heteroskedastic=False, seed=seed, dtype=torch.get_default_dtype()
    )
    net = nn.Sequential(nn.Linear(1, 50), nn.Tanh(), nn.Linear(50, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=MeanFieldNormal(1e-3))
    fit, rule = fit_until_converged(
        bnn, x, y, "quickstart", progress, epochs=epochs, lr=1e-2, num_particles=4, seed=seed
    )
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
    rows.append(f"fit: {rule.describe(len(fit.elbo))}")
    if not rule.converged:
        warn(f"{rule.describe(len(fit.elbo))}; pass a larger --epochs")
    return "\n".join(rows)


@dataclass(frozen=True)
class DemoBudget:
    """How much work ``pyro-bdl demo`` does (the default, or :data:`QUICK` for tests).

    :param n_regression: training points of the toy regression.
    :param n_regression_test: its test points.
    :param regression_epochs: the most full-batch epochs of each regression BNN (each fit
        stops once converged, see :mod:`~pyro_bdl.cli.training`).
    :param meanfield_particles: ELBO particles of the mean-field regression BNN.
    :param digits_epochs: the most epochs of each digits BNN.
    :param student_epochs: the most epochs of the distilled student.
    :param digits_limit: keep at most this many training and test images (``None``: all).
    :param samples: posterior draws per prediction.
    :param export_samples: posterior draws in each netCDF file.

    Example::

        >>> DemoBudget(regression_epochs=100).regression_epochs
        100
    """

    n_regression: int = 400
    n_regression_test: int = 1000
    regression_epochs: int = 4000
    meanfield_particles: int = 8
    digits_epochs: int = 400
    student_epochs: int = 200
    digits_limit: int | None = None
    samples: int = 200
    export_samples: int = 100


#: The ``--quick`` budget: a smoke test (the numbers mean nothing).
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

#: Hidden units of the toy-regression BNNs. A mean-field posterior keeps unneeded units near
#: their prior; their spread in the function counts as noise in the fit, which inflates the
#: learned noise std and the intervals (0.134 and 99.5 % coverage with 50 units, truth 0.1):
#: 20 units keep the intervals near nominal and still show the gap.
REGRESSION_WIDTHS = {"mean-field": 20, "MC dropout": 200}
#: Drop probability of the regression's MC dropout (0.05 doubled the learned noise std).
REGRESSION_DROPOUT = 0.005


def _convergence(rule: ConvergenceRule, epochs_run: int) -> dict[str, Any]:
    """The details of a fit's end: ``converged`` and the sentence for the report."""
    return {"converged": rule.converged, "convergence": rule.describe(epochs_run)}


def _regression_models(
    budget: DemoBudget, seed: int, progress: bool
) -> tuple[list[ModelResult], dict[str, Any]]:
    """Fit the mean-field and dropout BNNs of the toy regression; ``(results, data)``."""
    import pyro.distributions as dist
    from torch import nn

    from ..bnn import BNN
    from ..datasets import toy_regression
    from ..guides import BernoulliDropout, MeanFieldNormal
    from ..likelihoods import HomoskedasticGaussian
    from ..metrics import coverage, gaussian_test_ll, rmse
    from .report import ModelResult

    x, y, info = toy_regression(budget.n_regression, heteroskedastic=False, seed=seed, dtype=DTYPE)
    x_test, y_test, _ = toy_regression(
        budget.n_regression_test, heteroskedastic=False, seed=seed + 1, dtype=DTYPE
    )
    grid = torch.linspace(-1.25, 1.25, 251, dtype=DTYPE).unsqueeze(-1)
    specs: list[tuple[str, int, type[nn.Module], MeanFieldNormal | BernoulliDropout, dict]] = [
        (
            "mean-field",
            REGRESSION_WIDTHS["mean-field"],
            nn.Tanh,
            MeanFieldNormal(init_scale=1e-3),
            {"lr": 1e-2, "num_particles": budget.meanfield_particles},
        ),
        (
            "MC dropout",
            REGRESSION_WIDTHS["MC dropout"],
            nn.ReLU,
            BernoulliDropout(p=REGRESSION_DROPOUT),
            {"lr": 1e-2},
        ),
    ]
    results = []
    for name, width, activation, guide, opts in specs:
        torch.manual_seed(seed)
        net = mlp(1, [width], 1, activation)
        bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(init_scale=0.5), guide)
        fit, rule = fit_until_converged(
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
            "parameters": count_parameters(net),
            **_convergence(rule, len(fit.elbo)),
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


def _digits_models(
    budget: DemoBudget, seed: int, progress: bool
) -> tuple[list[ModelResult], dict[str, Any]]:
    """Fit the digits BNNs and distil the student from the dropout BNN; ``(results, data)``."""
    import pyro.distributions as dist
    from pyro.infer.autoguide import AutoDelta

    from ..bnn import BNN
    from ..datasets import load_digits
    from ..distill import Distillation, teacher_targets
    from ..guides import BernoulliDropout, MeanFieldNormal
    from ..likelihoods import Categorical
    from ..metrics import accuracy, brier, ece, nll
    from .report import ModelResult

    data = load_digits(seed=seed, dtype=DTYPE)
    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if budget.digits_limit is not None:
        x, y = x[: budget.digits_limit], y[: budget.digits_limit]
        x_test, y_test = x_test[: budget.digits_limit], y_test[: budget.digits_limit]
    classes = len(data.class_names)
    fit_options: dict[str, Any] = {"batch_size": 128, "lr": 1e-2, "seed": seed}

    def result(
        name: str, bnn: BNN, fitted: tuple[FitResult, ConvergenceRule], num_samples: int
    ) -> ModelResult:
        fit, rule = fitted
        pred = bnn.predict(x_test, num_samples, seed=seed)
        metrics = {
            "accuracy": accuracy(pred, y_test),
            "NLL": float(nll(pred, y_test)),  # a float for reduction="mean"
            "ECE": ece(pred, y_test).ece,
            "Brier": brier(pred, y_test),
            "ELBO/N": fit.elbo[-1],
            "fit s": fit.seconds,
        }
        details = {
            "bnn": bnn,
            "parameters": count_parameters(bnn.net),
            **_convergence(rule, len(fit.elbo)),
        }
        return ModelResult(name, metrics, fit, pred, details)

    results = []
    for name, guide in (
        ("mean-field", MeanFieldNormal(init_scale=1e-2)),
        ("MC dropout", BernoulliDropout(p=0.1)),
    ):
        torch.manual_seed(seed)
        bnn = BNN(mlp(64, [100], classes), dist.Normal(0.0, 1.0), Categorical(), guide)
        fitted = fit_until_converged(
            bnn, x, y, f"digits · {name}", progress, epochs=budget.digits_epochs, **fit_options
        )
        results.append(result(name, bnn, fitted, budget.samples))

    teacher = results[-1]
    soft = teacher_targets(
        teacher.details["bnn"], x, DEMO_TEMPERATURE, num_samples=budget.samples, seed=seed
    )
    torch.manual_seed(seed)
    net = mlp(64, [20], classes)
    student = BNN(net, dist.Normal(0.0, 1.0), Distillation(DEMO_TEMPERATURE), AutoDelta)
    fitted = fit_until_converged(
        student,
        x,
        soft,
        "digits · distilled student",
        progress,
        epochs=budget.student_epochs,
        **fit_options,
    )
    distilled = result("distilled student", student, fitted, 1)
    student_top = distilled.require_prediction().mean.argmax(-1)
    same = student_top == teacher.require_prediction().mean.argmax(-1)
    distilled.details["agreement"] = float(same.double().mean())
    results.append(distilled)
    out = {
        "n_train": len(x),
        "x": x,
        "y": y,
        "x_test": x_test,
        "y_test": y_test,
        "classes": data.class_names,
        "epochs": budget.digits_epochs,
        "temperature": DEMO_TEMPERATURE,
    }
    return results, out


def _baselines(reg: dict[str, Any], dig: dict[str, Any]) -> dict[str, ModelResult]:
    """Ridge regression on the toy data, logistic regression on the digits, on the test sets."""
    from ..metrics import accuracy, brier, coverage, ece, gaussian_test_ll, nll, rmse
    from .baselines import logistic_regression, ridge
    from .report import ModelResult

    lin = ridge(reg["x"], reg["y"], reg["x_test"])
    pred, y_test = lin.prediction, reg["y_test"]
    assert pred.scale is not None  # a Gaussian predictive
    regression = ModelResult(
        "ridge regression",
        {
            "RMSE": rmse(pred, y_test),
            "test LL": gaussian_test_ll(pred, y_test),
            "95% coverage": coverage(pred, y_test, level=0.95),
            "noise std": float(pred.scale.flatten()[0]),
        },
        details={"description": lin.description},
    )
    log = logistic_regression(dig["x"], dig["y"], dig["x_test"], len(dig["classes"]))
    pred, y_test = log.prediction, dig["y_test"]
    digits = ModelResult(
        "logistic regression",
        {
            "accuracy": accuracy(pred, y_test),
            "NLL": float(nll(pred, y_test)),  # a float for reduction="mean"
            "ECE": ece(pred, y_test).ece,
            "Brier": brier(pred, y_test),
        },
        details={"description": log.description},
    )
    return {"regression": regression, "digits": digits}


def run_demo(out: str, *, seed: int = 0, quick: bool = False, progress: bool = True) -> str:
    """Run the demo and write its report folder; return the summary printed by the command.

    :param out: the report folder.
    :param seed: random seed of data, initialisation and fits.
    :param quick: use the :data:`QUICK` budget.
    :param progress: show progress bars.
    :raises CLIError: if scikit-learn is missing.
    :raises OSError: if ``out`` cannot be written (nothing is left half-written).

    Example::

        >>> print(run_demo("pyro_bdl_report", quick=True, progress=False))  # doctest: +SKIP
        1-D toy regression (test N = 50)
        model        RMSE  test LL  95% coverage  fit s
        ...
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
    with staged(out) as folder, threads(1):
        reg_results, reg = _regression_models(budget, seed, progress)
        dig_results, dig = _digits_models(budget, seed, progress)
        exports = []
        for task, models, data, labels in (
            ("regression", reg_results, reg, None),
            ("digits", dig_results[:2], dig, list(dig["classes"])),
        ):
            for r in models:
                name = f"{task}_{'meanfield' if r.name == 'mean-field' else 'dropout'}.nc"
                idata = export_netcdf(
                    r.details["bnn"],
                    (data["x"], data["y"]),
                    folder.path / name,
                    samples=budget.export_samples,
                    fit=r.fit,
                    seed=seed,
                    class_labels=labels,
                    held_out=(data["x_test"], data["y_test"]),
                )
                r.details["idata"], r.details["loo"] = idata, loo_summary(idata)
                exports.append((name, f"{task}, {r.name}"))
        for task, models in (("regression", reg_results), ("digits", dig_results)):
            for r in models:
                if not r.details["converged"] and not quick:  # --quick: nothing converges
                    warn(f"{task}, {r.name}: {r.details['convergence']}")
        command = f"pyro-bdl demo --seed {seed}" + (" --quick" if quick else "")
        results = DemoResults(
            baselines=_baselines(reg, dig),
            command=command,
            versions=versions(),
            quick=quick,
            samples=budget.samples,
            regression=reg_results,
            regression_data=reg,
            digits=dig_results,
            digits_data=dig,
            exports=exports,
            seconds=time.perf_counter() - start,
        )
        write_demo_report(results, folder.path)
        target = folder.commit()
    lines = [
        f"1-D toy regression (test N = {reg['n_test']})",
        text_table(
            *metrics_table(
                [*reg_results, results.baselines["regression"]],
                ("RMSE", "test LL", "95% coverage", "noise std", "fit s"),
            )
        ),
        "",
        f"digits (test N = {len(dig['y_test'])}; student distilled from MC dropout at "
        f"T = {DEMO_TEMPERATURE:g})",
        text_table(
            *metrics_table(
                [*dig_results, results.baselines["digits"]], ("accuracy", "NLL", "ECE", "fit s")
            )
        ),
        "",
        f"report: {target / 'report.md'} ({time.perf_counter() - start:.0f} s)",
    ]
    return "\n".join(lines)
