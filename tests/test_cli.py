"""The pyro-bdl command."""

import re

import pytest

from pyro_bdl import __version__
from pyro_bdl.cli import main


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "quickstart" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_quickstart_prints_a_table(capsys):
    assert main(["quickstart", "--epochs", "20", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") == 5 and out.startswith("| x |") and "epistemic std" in out
    assert re.search(r"ELBO / datum -?\d", out)


def test_bad_subcommand_argument():
    with pytest.raises(SystemExit) as e:
        main(["quickstart", "--epochs", "many"])
    assert e.value.code == 2
