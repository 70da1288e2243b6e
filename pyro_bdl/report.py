"""Deprecated: the report folders of ``pyro-bdl`` moved to :mod:`pyro_bdl.cli.report`.

Importing this module re-exports every public name of :mod:`pyro_bdl.cli.report` and emits a
:class:`FutureWarning`; it will be removed in the next release.

Example::

    >>> from pyro_bdl.cli.report import markdown_table  # not: from pyro_bdl.report import ...
"""

import warnings

from .cli.report import (
    CLASSIFICATION_COLUMNS,
    MARKER,
    REGRESSION_COLUMNS,
    DemoResults,
    FitReport,
    ModelResult,
    OutputError,
    Report,
    StagedFolder,
    elbo_panel,
    format_number,
    markdown_table,
    metrics_table,
    new_figure,
    observed_vs_predicted,
    text_table,
    write_demo_report,
    write_fit_report,
)

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

warnings.warn(
    "pyro_bdl.report is deprecated and will be removed in the next release: import from "
    "pyro_bdl.cli.report instead",
    FutureWarning,
    stacklevel=2,
)
