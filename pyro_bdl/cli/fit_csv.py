"""``pyro-bdl fit DATA.csv --target COL``: fit a BNN to a CSV file and write its report.

The report folder holds ``report.md``, ``diagnostics.png``, ``model.json`` (preprocessing and
architecture), the fitted posterior ``posterior.pt`` (reload both with
:func:`~pyro_bdl.cli.saved.load_fit`) and an ArviZ netCDF: the training rows' pointwise
log-likelihood (for ``az.loo``) and the test rows as ``predictions``. Bad input fails before
anything is fitted or written.

Example::

    >>> from pyro_bdl.cli.parser import build_parser
    >>> args = build_parser().parse_args(["fit", "house.csv", "--target", "price"])
    >>> print(run_fit(args))  # doctest: +SKIP
    model                      RMSE  test LL  95% coverage  noise std  ELBO/N
    BNN (meanfield)            ...
    ridge regression           ...
    predict the training mean  ...
    fit: converged after ... epochs ...
    report: .../pyro_bdl_fit/report.md
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._version import __version__
from .checks import loo_summary
from .common import (
    DTYPE,
    count_parameters,
    export_netcdf,
    fit_until_converged,
    mlp,
    staged,
    threads,
    versions,
    warn,
)
from .csv_io import CSVData, encode_target, read_csv, split_rows

if TYPE_CHECKING:
    from torch import Tensor

    from ..bnn import BNN
    from ..uncertainty import Prediction
    from .report import ModelResult
    from .training import ConvergenceRule

__all__ = ["run_fit"]


def run_fit(args: argparse.Namespace) -> str:
    """``pyro-bdl fit``: fit a BNN to a CSV file and write the report folder.

    :param args: the options of ``pyro-bdl fit`` (see :func:`~pyro_bdl.cli.parser.build_parser`).
    :return: the summary printed by the command. A fit that did not converge is also reported
        as one line ``pyro-bdl: warning: ...`` on stderr.
    :raises ~pyro_bdl.cli.common.CLIError: for bad input (nothing is written).
    :raises OSError: if the output folder cannot be written (nothing is left half-written).

    Example::

        >>> from pyro_bdl.cli.parser import build_parser
        >>> args = build_parser().parse_args(["fit", "iris.csv", "--target", "species"])
        >>> print(run_fit(args))  # doctest: +SKIP
        model                    accuracy  NLL  ECE  Brier  ELBO/N
        BNN (meanfield)          ...
        logistic regression      ...
        majority class (setosa)  ...
        fit: converged after ... epochs ...
        report: .../pyro_bdl_fit/report.md
    """
    from .report import StagedFolder

    table = read_csv(args.data, args.target, features=args.features, drop=args.drop)
    task, y, classes, reason = encode_target(table.y, args.task)
    StagedFolder.check(args.out)  # fail before any fitting
    split = split_rows(len(table.x), args.test_fraction, args.seed)
    data = _Data.make(table, task, y, classes, split)
    with staged(args.out) as folder, threads(args.threads):
        summary, rule = _fit_csv(args, data, reason, folder.path)
        target = folder.commit()
    if not rule.converged:
        warn(f"{rule.describe(data.epochs_run)}; pass a larger --epochs (see report.md)")
    return summary + f"\nreport: {target / 'report.md'}"


@dataclass
class _Data:
    """The standardised split of a CSV file (regression targets standardised too)."""

    table: CSVData
    task: str
    classes: list[str] | None
    train: Tensor
    test: Tensor
    held_out: bool
    x_train: Tensor
    x_test: Tensor
    x_mean: Tensor
    x_std: Tensor
    y: Tensor
    y_fit: Tensor  # the training targets as the BNN sees them (standardised for regression)
    y_mean: float = 0.0
    y_std: float = 1.0
    epochs_run: int = 0

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def outputs(self) -> int:
        return 1 if self.classes is None else len(self.classes)

    @classmethod
    def make(
        cls,
        table: CSVData,
        task: str,
        y: Tensor,
        classes: list[str] | None,
        split: tuple[Tensor, Tensor, bool],
    ) -> _Data:
        from ..datasets import standardize

        train, test, held_out = split
        x = torch.tensor(table.x, dtype=DTYPE)
        (x_train, x_test), x_mean, x_std = standardize(x[train], x[test])
        data = cls(
            table, task, classes, train, test, held_out, x_train, x_test, x_mean, x_std, y, y[train]
        )
        if data.regression:
            (data.y_fit,), y_mean, y_std = standardize(y[train])
            data.y_mean, data.y_std = float(y_mean), float(y_std)
        return data


def prior_choice(prior: str, regression: bool) -> str:
    """``--prior auto`` resolved: ``"fan-in"`` for regression, ``"unit"`` for classification.

    Example::

        >>> prior_choice("auto", True), prior_choice("auto", False), prior_choice("unit", True)
        ('fan-in', 'unit', 'unit')
    """
    if prior != "auto":
        return prior
    return "fan-in" if regression else "unit"


def _bnn(args: argparse.Namespace, data: _Data) -> tuple[BNN, str]:
    """The BNN of the options, and its one-line description."""
    import pyro.distributions as dist

    from ..bnn import BNN
    from ..guides import BernoulliDropout, MeanFieldNormal
    from ..likelihoods import Categorical, HomoskedasticGaussian, Likelihood
    from ..priors import IIDPrior, LayerwiseNormalPrior, Prior

    likelihood: Likelihood
    if data.regression:
        likelihood, what = HomoskedasticGaussian(init_scale=0.5), "Gaussian likelihood with a "
        what += "learned noise std"
    else:
        likelihood, what = Categorical(), "categorical likelihood"
    guide = (
        MeanFieldNormal(init_scale=1e-2)
        if args.guide == "meanfield"
        else BernoulliDropout(p=args.dropout_p)
    )
    prior: Prior
    if prior_choice(args.prior, data.regression) == "fan-in":
        prior, prior_text = LayerwiseNormalPrior("radford"), "N(0, 1/fan-in)"
    else:
        prior, prior_text = IIDPrior(dist.Normal(0.0, 1.0)), "N(0, 1)"
    torch.manual_seed(args.seed)
    net = mlp(data.x_train.shape[1], args.hidden, data.outputs)
    layers = " → ".join(str(d) for d in (len(data.table.features), *args.hidden, data.outputs))
    kind = (
        f"ReLU network {layers}"
        if args.hidden
        else f"linear model {layers} (Bayesian {'linear' if data.regression else 'logistic'} "
        "regression)"
    )
    description = (
        f"{kind} ({count_parameters(net)} weights), {prior_text} prior on every weight and "
        f"bias, {what}, guide `{guide!r}`"
    )
    return BNN(net, prior, likelihood, guide), description


def _score(
    pred: Prediction, y_test: Tensor, regression: bool, noise: float | None
) -> dict[str, float | None]:
    """The metrics of one model on the test rows (regression: original units)."""
    from ..metrics import accuracy, brier, coverage, ece, gaussian_test_ll, nll, rmse

    if regression:
        return {
            "RMSE": rmse(pred, y_test),
            "test LL": gaussian_test_ll(pred, y_test),
            "95% coverage": coverage(pred, y_test, level=0.95),
            "noise std": noise,
        }
    return {
        "accuracy": accuracy(pred, y_test),
        "NLL": float(nll(pred, y_test)),  # a float for reduction="mean"
        "ECE": ece(pred, y_test).ece,
        "Brier": brier(pred, y_test),
    }


def _baselines(data: _Data) -> list[ModelResult]:
    """The linear baseline and the trivial one, scored on the test rows."""
    from ..uncertainty import Prediction
    from .baselines import logistic_regression, ridge
    from .report import ModelResult

    y_train, y_test = data.y[data.train], data.y[data.test]
    if data.regression:
        fit = ridge(data.x_train, y_train, data.x_test)
        pred = fit.prediction
        assert pred.scale is not None  # a Gaussian predictive
        noise = float(pred.scale.flatten()[0])
        linear = ModelResult("ridge regression", _score(pred, y_test, True, noise), None, pred)
        mean = y_train.double().mean()
        trivial_pred = Prediction(
            "gaussian",
            samples=mean.expand(1, len(y_test)).clone(),
            scale=y_train.double().std().expand(1, len(y_test)).clone(),
        )
        trivial = ModelResult("predict the training mean", _score(trivial_pred, y_test, True, None))
    else:
        fit = logistic_regression(data.x_train, y_train, data.x_test, data.outputs)
        linear = ModelResult(
            "logistic regression", _score(fit.prediction, y_test, False, None), None, fit.prediction
        )
        names = data.classes or []
        majority = int(torch.bincount(y_train, minlength=data.outputs).argmax())
        hit = float((y_test == majority).double().mean())
        trivial = ModelResult(f"majority class ({names[majority]})", {"accuracy": hit})
    linear.details["description"] = fit.description
    return [linear, trivial]


def _fit_csv(
    args: argparse.Namespace, data: _Data, reason: str, folder: Path
) -> tuple[str, ConvergenceRule]:
    """Fit, score, save and report one BNN; return the printed summary and the rule."""
    from ..uncertainty import Prediction
    from .report import FitReport, ModelResult, metrics_table, text_table, write_fit_report

    bnn, description = _bnn(args, data)
    batch = min(args.batch_size, len(data.x_train))
    fit, rule = fit_until_converged(
        bnn,
        data.x_train,
        data.y_fit,
        f"fit · {args.guide}",
        not args.no_progress,
        epochs=args.epochs,
        batch_size=batch,
        lr=args.lr,
        seed=args.seed,
    )
    data.epochs_run = len(fit.elbo)
    pred = bnn.predict(data.x_test, args.samples, seed=args.seed)
    y_test = data.y[data.test]
    noise = None
    if data.regression:
        assert pred.scale is not None  # a Gaussian likelihood predicts a noise std
        pred = Prediction(
            "gaussian",
            samples=pred.samples * data.y_std + data.y_mean,
            scale=pred.scale * data.y_std,
        )
        noise = float(bnn.likelihood.scale.detach()) * data.y_std
    metrics = {
        **_score(pred, y_test, data.regression, noise),
        "ELBO/N": fit.elbo[-1],
        "fit s": fit.seconds,
    }
    bnn.save(folder / "posterior.pt")
    (folder / "model.json").write_text(
        json.dumps(_meta(args, data), indent=2) + "\n", encoding="utf-8"
    )
    idata = export_netcdf(
        bnn,
        (data.x_train, data.y_fit),
        folder / "inference_data.nc",
        samples=args.samples,
        fit=fit,
        seed=args.seed,
        class_labels=data.classes,
        held_out=(
            data.x_test,
            (y_test - data.y_mean) / data.y_std if data.regression else y_test,
        )
        if data.held_out
        else None,
    )
    description += (
        f"; at most {'the default limit of ' if args.epochs is None else ''}"
        f"{fit_limit(args, data)} epochs of minibatches of {batch}, Adam (initial step size "
        f"{args.lr:g}), seed {args.seed}: {rule.describe(data.epochs_run)}; "
        f"{fit.seconds:.1f} s. Predictions average {args.samples} posterior draws."
    )
    model = ModelResult(f"BNN ({args.guide})", metrics, fit, pred, {"description": description})
    report = FitReport(
        title=data.table.path.name,
        intro=_intro(data, reason),
        model=model,
        baselines=_baselines(data),
        regression=data.regression,
        y_test=y_test,
        classes=_class_counts(data),
        note=_note(data),
        files=_files_note(args.seed, args.samples),
        convergence=rule.describe(data.epochs_run),
        converged=rule.converged,
        idata=idata,
        loo=loo_summary(idata),
        target_shift=_log_std(data),
        parameters=count_parameters(bnn.net),
    )
    write_fit_report(report, folder)
    columns = report.columns[:-1]  # the terminal's table without "fit s"
    table = text_table(*metrics_table([model, *report.baselines], columns))
    return table + f"\nfit: {rule.describe(data.epochs_run)}", rule


def fit_limit(args: argparse.Namespace, data: _Data) -> int:
    """The epoch limit of the fit (``--epochs``, or the default of
    :func:`~pyro_bdl.cli.training.plan`)."""
    from .training import plan

    return plan(len(data.x_train), args.batch_size, args.epochs).epochs


def _log_std(data: _Data) -> float:
    """log(target std): log densities of the standardised target minus this are in the
    target's units."""
    import math

    return math.log(data.y_std) if data.regression else 0.0


def _meta(args: argparse.Namespace, data: _Data) -> dict[str, Any]:
    """The contents of ``model.json``."""
    return {
        "pyro_bdl_version": __version__,
        "data": str(data.table.path),
        "task": data.task,
        "features": data.table.features,
        "feature_mean": data.x_mean.tolist(),
        "feature_std": data.x_std.tolist(),
        "target": data.table.target,
        "target_mean": data.y_mean if data.regression else None,
        "target_std": data.y_std if data.regression else None,
        "classes": data.classes,
        "hidden": list(args.hidden),
        "activation": "relu",
        "outputs": data.outputs,
        "dtype": str(DTYPE).removeprefix("torch."),
        "guide": args.guide,
        "prior": prior_choice(args.prior, data.regression),
        "seed": args.seed,
        "samples": args.samples,
        "test_rows": sorted(data.test.tolist()) if data.held_out else [],
    }


def _intro(data: _Data, reason: str) -> str:
    table = data.table
    scored = (
        f"the {len(data.test)} test rows" if data.held_out else "the training rows (none held out)"
    )
    notes = "".join(f" {n}" for n in table.notes)
    return (
        f"Written by `pyro-bdl fit` ({versions()}) from `{table.path}`: {len(table.x)} rows, "
        f"{len(table.features)} numeric features, target `{table.target}`, task "
        f"**{data.task}** ({reason}). {len(data.train)} training rows; metrics on {scored}."
        f"{notes}"
    )


def _class_counts(data: _Data) -> list[tuple[int, str, int]] | None:
    if data.regression:
        return None
    counts = torch.bincount(data.y, minlength=data.outputs).tolist()
    return [(i, c, counts[i]) for i, c in enumerate(data.classes or [])]


def _note(data: _Data) -> str:
    if data.regression:
        return (
            "In the target's original units: features and target were standardised with the "
            f"training statistics (target mean {data.y_mean:.4g}, std {data.y_std:.4g}) and the "
            "predictions transformed back. Test LL is the mean log predictive density (nats); "
            "coverage the share of targets inside the central 95 % predictive interval; noise "
            "std the learned noise (for ridge: the residual std); ELBO/N is per training row, "
            "on the standardised scale."
        )
    return (
        "NLL: negative mean log predictive probability of the label (nats); ECE: expected "
        "calibration error over 15 confidence bins; ELBO/N: per training row."
    )


def _files_note(seed: int, samples: int) -> str:
    """The report's list of files and the code that reloads the model."""
    return (
        "`posterior.pt`: the fitted posterior (`BNN.save`); `model.json`: the columns, the "
        "standardisation, the architecture and the test rows; `inference_data.nc`: the ArviZ "
        "InferenceData (see *Model checks*); `diagnostics.png`, `checks.png`. Reload the model "
        "and predict new rows in the data's original units (run this in the report folder):"
        "\n\n```python\nfrom pyro_bdl.cli import load_fit\n\n"
        'model = load_fit(".")  # the folder with model.json and posterior.pt\n'
        "rows = [[...], [...]]  # (N, features): raw values, columns as in model.features\n"
        f"pred = model.predict(rows, num_samples={samples}, seed={seed})\n"
        "pred.mean, pred.interval(0.95)  # the target's units; class probabilities for "
        "classification\n```"
    )
