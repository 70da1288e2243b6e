"""``pyro_bdl.cli.main``: help, version, dispatch, the entry point, and a fast ``--help``."""

import configparser
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyro_bdl import __version__
from pyro_bdl.cli import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

# Imports the heavy modules would cost; `pyro-bdl --help` must not pay for them.
HEAVY = ["arviz", "matplotlib", "xarray", "pyro_bdl.arviz", "pyro_bdl.plots"]

HELP_SCRIPT = """
import json, sys
from pyro_bdl.cli import main
try:
    main(["--help"])
except SystemExit as exit:
    code = exit.code
else:
    code = "returned"
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run_help_in_a_fresh_interpreter():
    proc = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["code"] == 0  # argparse's --help exits with SystemExit(0)
    return set(result["modules"])


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "fit", "quickstart"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_bad_subcommand_argument():
    with pytest.raises(SystemExit) as e:
        main(["quickstart", "--epochs", "many"])
    assert e.value.code == 2


def test_help_imports_no_plotting_or_arviz():
    modules = run_help_in_a_fresh_interpreter()
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    assert "pyro_bdl.cli.report" not in modules  # the report module is only for writing


def test_help_does_not_import_the_engine():
    assert "pyro_bdl.bnn" not in run_help_in_a_fresh_interpreter()


def test_python_m_runs_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "pyro_bdl.cli", "--version"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"pyro-bdl {__version__}"


def test_console_script_entry_point_is_main():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"].strip()
    name, target = (part.strip() for part in scripts.split("="))
    module, attr = target.split(":")
    assert name == "pyro-bdl" and getattr(importlib.import_module(module), attr) is main


def test_a_closed_stdout_pipe_is_not_an_error(tmp_path, regression_csv):
    out = tmp_path / "report"
    argv = ["fit", str(regression_csv), "--target", "price", "--out", str(out), "--epochs", "2",
            "--hidden", "4", "--samples", "3", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyro_bdl.cli", *argv],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the summary is printed (`| head -0`)
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception ignored" not in err
    assert (out / "report.md").is_file()  # the run was complete
