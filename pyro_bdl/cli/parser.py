"""The argument parser of ``pyro-bdl`` and the validators of its option values.

A bad option value is a usage error: argparse prints the usage and the message, and exits with
status 2.

Example::

    >>> args = build_parser().parse_args(["fit", "data.csv", "--target", "price"])
    >>> args.command, args.target, args.epochs, args.hidden
    ('fit', 'price', None, [10])
    >>> build_parser().parse_args(["fit", "data.csv", "--target", "y", "--hidden", "0"]).hidden
    []
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from .._version import __version__

__all__ = ["build_parser"]


def _positive_int(text: str) -> int:
    """An integer >= 1 (``--epochs``, ``--hidden``, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _hidden_units(text: str) -> int:
    """Units of one hidden layer: an integer >= 0 (``0`` alone: no hidden layer)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


class _HiddenLayers(argparse.Action):
    """``--hidden 64 32`` -> ``[64, 32]``; ``--hidden 0`` -> ``[]`` (a linear model)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        units = list(values)
        if 0 in units and units != [0]:
            raise argparse.ArgumentError(
                self,
                f"0 (no hidden layer) must be given alone, got {' '.join(map(str, units))}",
            )
        setattr(namespace, self.dest, [u for u in units if u > 0])


def _positive_float(text: str) -> float:
    """A finite number > 0 (``--lr``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(low_inclusive: bool) -> Callable[[str], float]:
    """A number in ``[0, 1)`` (or ``(0, 1)`` if not ``low_inclusive``)."""

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
    """A random seed: an integer in ``[0, 2**32)``, the rule of every seed the package takes
    (:func:`pyro_bdl._checks.check_seed`)."""
    from .._checks import check_seed  # lazily: `pyro-bdl --help` imports no torch

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    try:
        return check_seed("--seed", value, optional=False)
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pyro-bdl`` (one subparser per subcommand).

    :return: a parser whose namespace has ``command`` (``"demo"``, ``"fit"``, ``"quickstart"``
        or ``None``) and the options of that subcommand.

    Example::

        >>> args = build_parser().parse_args(["demo", "--quick", "--seed", "3"])
        >>> args.command, args.quick, args.seed, args.out
        ('demo', True, 3, 'pyro_bdl_report')
    """
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
        "(regression bands, reliability diagrams, ELBO traces, posterior predictive checks) and "
        "one ArviZ netCDF per BNN. Needs scikit-learn. For how long it runs, see 'Timings' in "
        "the README (the report states its own wall time).",
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
        help="tiny budget, a smoke test (the numbers mean nothing)",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    fit = sub.add_parser(
        "fit",
        help="fit a BNN to a CSV file and write a report with the fitted posterior",
        description="Fit a BNN (ReLU hidden layers, a Gaussian prior on every weight; "
        "--hidden 0 for Bayesian linear or logistic regression) to a CSV file with a header row "
        "and numeric feature columns. Features are standardised with the training statistics; "
        "a regression target is standardised too and reported in its original units; class "
        "labels (strings or integers) are mapped to 0..K-1 in sorted order. The fit runs until "
        "the ELBO has converged (see --epochs); the report compares it with a linear baseline "
        "(ridge or logistic regression). Writes report.md, figures, model.json, the posterior "
        "(posterior.pt; reload with pyro_bdl.cli.load_fit) and an ArviZ netCDF (training-data "
        "log-likelihood for LOO, the test rows as predictions).",
    )
    fit.add_argument("data", metavar="DATA.csv", help="CSV file with a header row")
    fit.add_argument("--target", required=True, metavar="COL", help="name of the target column")
    columns = fit.add_mutually_exclusive_group()
    columns.add_argument(
        "--features",
        nargs="+",
        metavar="COL",
        help="use only these feature columns (default: every column but the target)",
    )
    columns.add_argument(
        "--drop", nargs="+", default=[], metavar="COL", help="columns to ignore (ids, notes, ...)"
    )
    fit.add_argument(
        "--task",
        choices=("auto", "regression", "classification"),
        default="auto",
        help="auto (default): classification if the target is not numeric or holds at most 10 "
        "distinct integers, else regression; a numeric target that looks continuous is refused "
        "as classes",
    )
    fit.add_argument(
        "--guide",
        choices=("meanfield", "dropout"),
        default="meanfield",
        help="meanfield: a Gaussian per weight (default); dropout: MC dropout as VI",
    )
    fit.add_argument(
        "--prior",
        choices=("auto", "fan-in", "unit"),
        default="auto",
        help="fan-in: N(0, 1/fan-in) on every weight and bias (Neal 1996): the prior's functions "
        "have the scale of a standardised target at any width; unit: N(0, 1), wide enough for "
        "the logits of confident classes; auto (default): fan-in for regression, unit for "
        "classification",
    )
    fit.add_argument(
        "--dropout-p",
        type=_fraction(low_inclusive=True),
        default=0.1,
        metavar="P",
        help="drop probability of the dropout guide (default 0.1)",
    )
    fit.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="at most this many passes over the data (default: 20000 steps' worth, at least 10 "
        "convergence windows). The fit stops earlier once converged: the step size is cut by 3 "
        "at each plateau of the ELBO and the fourth plateau ends the fit; a fit that reaches "
        "the limit first is reported as not converged",
    )
    fit.add_argument(
        "--hidden",
        type=_hidden_units,
        action=_HiddenLayers,
        nargs="+",
        default=[10],
        metavar="UNITS",
        help="units per hidden layer, e.g. --hidden 64 32 (default: one layer of 10: on small "
        "tabular data a mean-field posterior leaves the units a wider layer does not need at "
        "their prior, and their spread is fitted as noise); --hidden 0: no hidden layer, i.e. "
        "Bayesian linear or logistic regression",
    )
    fit.add_argument(
        "--lr", type=_positive_float, default=1e-2, help="initial Adam step size (default 0.01)"
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
    quick.add_argument(
        "--epochs",
        type=_positive_int,
        default=2000,
        help="at most this many SVI epochs (default 2000; the fit stops once converged)",
    )
    quick.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    quick.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser
