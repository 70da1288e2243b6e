"""The docstring examples of the modules in ``DOCTEST_MODULES`` run, and print what they show.

Each listed module's examples are run with the standard library's :mod:`doctest`, with the
option flags of ``pytest --doctest-modules`` (``ELLIPSIS``, pytest's default), so that

    python -m pytest --doctest-modules pyro_bdl/guides/dropout.py

passes exactly when this test does. The examples run in torch's default dtype, float32, as a
user's session does (the printed tensors show no ``dtype=``): this test sets it for their
duration, over the float64 of ``conftest.py``. Warnings are errors here as in the whole suite.

A listed module whose doctests fail, or that has no example to run, fails its test: there is
no silent skip. Examples marked ``# doctest: +SKIP`` (data that is not always installed) are
not counted; a module must run at least one.
"""

from __future__ import annotations

import doctest
import importlib

import pyro
import pytest
import torch

#: Modules whose examples run: every module that has examples (the modules without any, most
#: ``__init__`` files, ``inference.loop``, ``distributed``, are not listed).
DOCTEST_MODULES = [
    "pyro_bdl._checks",
    "pyro_bdl.arviz",
    "pyro_bdl.bnn",
    "pyro_bdl.calibration",
    "pyro_bdl.checkpoint",
    "pyro_bdl.cli",
    "pyro_bdl.cli.baselines",
    "pyro_bdl.cli.checks",
    "pyro_bdl.cli.common",
    "pyro_bdl.cli.csv_io",
    "pyro_bdl.cli.demo",
    "pyro_bdl.cli.fit_csv",
    "pyro_bdl.cli.main",
    "pyro_bdl.cli.parser",
    "pyro_bdl.cli.report",
    "pyro_bdl.cli.saved",
    "pyro_bdl.cli.training",
    "pyro_bdl.datasets",
    "pyro_bdl.distill",
    "pyro_bdl.distributions.config",
    "pyro_bdl.distributions.expected_normal",
    "pyro_bdl.distributions.masked_weight",
    "pyro_bdl.distributions.tempered",
    "pyro_bdl.guides",
    "pyro_bdl.guides.builders",
    "pyro_bdl.guides.custom",
    "pyro_bdl.guides.dropout",
    "pyro_bdl.guides.handlers",
    "pyro_bdl.guides.mean_field",
    "pyro_bdl.hierarchical",
    "pyro_bdl.infer",
    "pyro_bdl.inference.callbacks",
    "pyro_bdl.inference.data",
    "pyro_bdl.inference.elbo",
    "pyro_bdl.inference.optim",
    "pyro_bdl.inference.posterior",
    "pyro_bdl.inference.predict",
    "pyro_bdl.inference.state",
    "pyro_bdl.inference.strategies",
    "pyro_bdl.inference.tempering",
    "pyro_bdl.likelihoods.base",
    "pyro_bdl.likelihoods.classification",
    "pyro_bdl.likelihoods.distillation",
    "pyro_bdl.likelihoods.gaussian",
    "pyro_bdl.metrics",
    "pyro_bdl.model",
    "pyro_bdl.nn",
    "pyro_bdl.plots",
    "pyro_bdl.posteriors.ensemble",
    "pyro_bdl.posteriors.laplace",
    "pyro_bdl.posteriors.sgmcmc",
    "pyro_bdl.posteriors.swag",
    "pyro_bdl.priors",
    "pyro_bdl.serialization",
    "pyro_bdl.testing.likelihood",
    "pyro_bdl.testing.posterior",
    "pyro_bdl.testing.prior",
    "pyro_bdl.uncertainty",
    "pyro_bdl.workflows.dropout_nets",
    "pyro_bdl.workflows.teachers",
]

#: ``pytest --doctest-modules``'s default ``doctest_optionflags``.
OPTION_FLAGS = doctest.ELLIPSIS


def run_doctests(module_name: str) -> tuple[doctest.TestResults, str]:
    """Run every docstring example of a module; ``(results, report of the failures)``."""
    module = importlib.import_module(module_name)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTION_FLAGS)
    for test in sorted(doctest.DocTestFinder().find(module), key=lambda t: t.name):
        pyro.clear_param_store()
        runner.run(test, out=report.append)
    return doctest.TestResults(runner.failures, runner.tries), "".join(report)


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples_run(module_name):
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # a user's session: what the examples print
    try:
        results, report = run_doctests(module_name)
    finally:
        torch.set_default_dtype(dtype)
        pyro.clear_param_store()
    assert results.attempted > 0, (
        f"{module_name} is in DOCTEST_MODULES but has no example to run: give it one, or "
        "remove it from the list."
    )
    assert results.failed == 0, f"{results.failed} failing example(s) in {module_name}:\n{report}"


def test_list_is_sorted_and_unique():
    assert DOCTEST_MODULES == sorted(set(DOCTEST_MODULES))
