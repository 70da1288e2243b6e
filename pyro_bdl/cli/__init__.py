"""The ``pyro-bdl`` command: ``demo``, ``fit`` and ``quickstart``.

``pyro-bdl demo`` is the main job on embedded data (no arguments): mean-field and MC-dropout BNNs
on a 1-D toy regression and on scikit-learn's digits, a student distilled from the dropout
BNN's posterior predictive, and a report folder (Markdown, figures, ArviZ netCDF).
``pyro-bdl fit DATA.csv --target COL`` fits a BNN to a CSV file and writes the same kind of
report plus the fitted posterior. Every error a user can cause (bad CSV, bad target, an output
folder that cannot be written) ends in one line ``pyro-bdl: error: ...`` on stderr, a non-zero
exit code, and no half-written output: reports are staged and moved into place at the end.

The modules: :mod:`~pyro_bdl.cli.main` (the entry point), :mod:`~pyro_bdl.cli.parser` (the
options), :mod:`~pyro_bdl.cli.demo` (``demo``, ``quickstart``), :mod:`~pyro_bdl.cli.fit_csv`
(``fit``), :mod:`~pyro_bdl.cli.csv_io` (reading the CSV), :mod:`~pyro_bdl.cli.training` (the
epoch limit and the convergence rule), :mod:`~pyro_bdl.cli.baselines` (the linear baselines),
:mod:`~pyro_bdl.cli.saved` (:func:`load_fit`: reload a fitted model, predict in the data's
units), :mod:`~pyro_bdl.cli.report` (report folders) and :mod:`~pyro_bdl.cli.common` (what they
share). Only torch is imported up front:
the BNN, ArviZ and matplotlib are imported by the functions that use them, so ``pyro-bdl
--help`` stays fast.

Example::

    >>> main(["--version"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    SystemExit: 0
"""

from .common import DTYPE, CLIError
from .csv_io import CSVData, encode_target, read_csv
from .demo import DEMO_TEMPERATURE, QUICK, DemoBudget, quickstart, run_demo
from .fit_csv import run_fit
from .main import EXIT_ERROR, main
from .parser import build_parser
from .saved import FittedModel, load_fit

__all__ = [
    "DEMO_TEMPERATURE",
    "DTYPE",
    "EXIT_ERROR",
    "QUICK",
    "CLIError",
    "CSVData",
    "DemoBudget",
    "FittedModel",
    "build_parser",
    "encode_target",
    "load_fit",
    "main",
    "quickstart",
    "read_csv",
    "run_demo",
    "run_fit",
]
