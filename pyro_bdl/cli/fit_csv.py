"""``pyro-bdl fit DATA.csv --target COL``: fit a BNN to a CSV file and write its report.

The report folder holds ``report.md``, ``diagnostics.png``, ``model.json`` (preprocessing and
architecture), the fitted posterior ``posterior.pt`` (for :meth:`~pyro_bdl.bnn.BNN.load`) and an
ArviZ netCDF of the scored rows. Bad input fails before anything is fitted or written.

Example::

    >>> from pyro_bdl.cli.parser import build_parser
    >>> args = build_parser().parse_args(["fit", "house.csv", "--target", "price"])
    >>> print(run_fit(args))  # doctest: +SKIP
    model                      RMSE  test LL  95% coverage  noise std  ELBO/N
    BNN (meanfield)            ...
    predict the training mean  ...
    report: .../pyro_bdl_fit/report.md
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .._version import __version__
from .common import (
    DTYPE,
    count_parameters,
    export_netcdf,
    fit_with_progress,
    mlp,
    staged,
    threads,
    versions,
)
from .csv_io import CSVData, encode_target, read_csv, split_rows

if TYPE_CHECKING:
    from torch import Tensor

    from ..guides import BernoulliDropout, MeanFieldNormal
    from ..likelihoods import Categorical, HomoskedasticGaussian

__all__ = ["run_fit"]


def run_fit(args: argparse.Namespace) -> str:
    """``pyro-bdl fit``: fit a BNN to a CSV file and write the report folder.

    :param args: the options of ``pyro-bdl fit`` (see :func:`~pyro_bdl.cli.parser.build_parser`).
    :return: the summary printed by the command.
    :raises ~pyro_bdl.cli.common.CLIError: for bad input (nothing is written).
    :raises OSError: if the output folder cannot be written (nothing is left half-written).

    Example::

        >>> from pyro_bdl.cli.parser import build_parser
        >>> args = build_parser().parse_args(["fit", "iris.csv", "--target", "species"])
        >>> print(run_fit(args))  # doctest: +SKIP
        model                    accuracy  NLL  ECE  Brier  ELBO/N
        BNN (meanfield)          ...
        majority class (setosa)  ...
        report: .../pyro_bdl_fit/report.md
    """
    from .report import StagedFolder

    table = read_csv(args.data, args.target)
    task, y, classes, reason = encode_target(table.y, args.task)
    StagedFolder.check(args.out)  # fail before any fitting
    split = split_rows(len(table.x), args.test_fraction, args.seed)
    with staged(args.out) as folder, threads(args.threads):
        summary = _fit_csv(args, table, task, reason, y, classes, split, folder.path)
        target = folder.commit()
    return summary + f"\nreport: {target / 'report.md'}"


def _fit_csv(
    args: argparse.Namespace,
    table: CSVData,
    task: str,
    reason: str,
    y: Tensor,
    classes: list[str] | None,
    split: tuple[Tensor, Tensor, bool],
    folder: Path,
) -> str:
    """Standardise, fit, score, save and report one BNN; return the printed summary."""
    import pyro.distributions as dist

    from ..bnn import BNN
    from ..datasets import standardize
    from ..guides import BernoulliDropout, MeanFieldNormal
    from ..likelihoods import Categorical, HomoskedasticGaussian
    from ..metrics import accuracy, brier, coverage, ece, gaussian_test_ll, nll, rmse
    from ..uncertainty import Prediction
    from .report import FitReport, ModelResult, metrics_table, text_table, write_fit_report

    train, test, held_out = split
    x = torch.tensor(table.x, dtype=DTYPE)
    (x_train, x_test), x_mean, x_std = standardize(x[train], x[test])
    y_train, y_test = y[train], y[test]
    regression = task == "regression"
    class_names = classes or []
    y_mean, y_std = 0.0, 1.0
    likelihood: HomoskedasticGaussian | Categorical
    if regression:
        (y_fit,), y_mean_t, y_std_t = standardize(y_train)
        y_mean, y_std = float(y_mean_t), float(y_std_t)
        likelihood = HomoskedasticGaussian(init_scale=0.5)
        outputs = 1
    else:
        y_fit, likelihood, outputs = y_train, Categorical(), len(class_names)
    guide: MeanFieldNormal | BernoulliDropout
    if args.guide == "meanfield":
        guide = MeanFieldNormal(init_scale=1e-2)
    else:
        guide = BernoulliDropout(p=args.dropout_p)
    torch.manual_seed(args.seed)
    net = mlp(x_train.shape[1], args.hidden, outputs)
    bnn = BNN(net, dist.Normal(0.0, 1.0), likelihood, guide)
    batch = min(args.batch_size, len(x_train))
    fit = fit_with_progress(
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
        assert pred.scale is not None  # a Gaussian likelihood predicts a noise std
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
            "NLL": float(nll(pred, y_test)),  # a float for reduction="mean"
            "ECE": ece(pred, y_test).ece,
            "Brier": brier(pred, y_test),
            "ELBO/N": fit.elbo[-1],
        }
        majority = int(torch.bincount(y_train, minlength=outputs).argmax())
        hit = float((y_test == majority).double().mean())
        baseline = ModelResult(f"majority class ({class_names[majority]})", {"accuracy": hit})

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
    export_netcdf(
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
        f"ReLU network {layers} ({count_parameters(net)} weights), N(0, 1) prior on every "
        f"weight, {what}, "
        f"guide `{guide!r}`; {args.epochs} epochs of minibatches of {batch}, Adam (lr "
        f"{args.lr:g}), seed {args.seed}; {fit.seconds:.1f} s. Predictions average "
        f"{args.samples} posterior draws."
    )
    counts = torch.bincount(y, minlength=outputs).tolist() if not regression else []
    report = FitReport(
        title=table.path.name,
        intro=(
            f"Written by `pyro-bdl fit` ({versions()}) from `{table.path}`: {len(x)} rows, "
            f"{len(table.features)} numeric features, target `{table.target}`, task **{task}** "
            f"({reason}). {len(train)} training rows; metrics on {scored}."
        ),
        model=ModelResult(name, metrics, fit, pred, {"description": description}),
        baseline=baseline,
        columns=columns,
        regression=regression,
        y_test=y_test,
        classes=None if regression else [(i, c, counts[i]) for i, c in enumerate(class_names)],
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
