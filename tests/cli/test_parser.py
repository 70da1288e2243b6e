"""``pyro_bdl.cli.parser``: every option is documented, bad values are usage errors."""

import argparse

import pytest

from pyro_bdl.cli import build_parser, main


def subparsers():
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


REQUIRED = {
    "demo": {"--out", "--seed", "--quick", "--no-progress"},
    "fit": {"--target", "--task", "--guide", "--epochs", "--hidden", "--lr", "--batch-size",
            "--samples", "--out", "--seed", "--test-fraction", "--no-progress"},
}  # fmt: skip


@pytest.mark.parametrize("command", ["demo", "fit", "quickstart"])
def test_subcommand_help_lists_every_option(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    options = set()
    for action in subparsers()[command]._actions:
        assert action.help and action.help != argparse.SUPPRESS, action.dest
        options.update(action.option_strings)
        for flag in action.option_strings:
            assert flag in out
    assert REQUIRED.get(command, set()) <= options
    if command == "fit":
        assert "DATA.csv" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "x.csv"],  # no --target
        ["fit", "x.csv", "--target", "y", "--epochs", "0"],
        ["fit", "x.csv", "--target", "y", "--test-fraction", "1"],
        ["fit", "x.csv", "--target", "y", "--lr", "-1"],
        ["fit", "x.csv", "--target", "y", "--guide", "laplace"],
        ["demo", "--seed", "-3"],
    ],
)
def test_bad_option_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err
