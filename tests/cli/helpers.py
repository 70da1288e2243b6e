"""What the tests of the ``pyro-bdl`` command share: CSV files, leftovers, one-line errors."""

import re
import warnings

from pyro_bdl.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
FIT_QUICK = ["--epochs", "3", "--samples", "5", "--hidden", "8", "--no-progress"]


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


def leftovers(folder):
    """Staging folders that a run left behind."""
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def load_netcdf(path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        import arviz as az
    return az.from_netcdf(str(path))


def expect_error(capsys, argv, message):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("pyro-bdl: error: ") and captured.err.count("\n") == 1
    assert re.search(message, captured.err), captured.err
    assert captured.out == ""


def psis_loo(idata):
    """``az.loo`` of an export (a large k̂ is what the reports count, not a test failure)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        import arviz as az
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        warnings.filterwarnings("ignore", message="The point-wise LOO is the same")
        return az.loo(idata, pointwise=True)


def table_row(text, model):
    """The cells of ``model``'s row in a report's Markdown table, as strings."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {model} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]
