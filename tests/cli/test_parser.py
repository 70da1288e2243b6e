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
        ["quickstart", "--epochs", "0"],
        ["quickstart", "--seed", "-5"],
        ["quickstart", "--epochs", "many"],
        ["fit", "x.csv", "--target", "y", "--hidden", "-1"],
        ["fit", "x.csv", "--target", "y", "--hidden", "0", "8"],
        ["fit", "x.csv", "--target", "y", "--samples", "0"],
        ["fit", "x.csv", "--target", "y", "--batch-size", "0"],
        ["fit", "x.csv", "--target", "y", "--threads", "0"],
        ["fit", "x.csv", "--target", "y", "--seed", "-1"],
        ["fit", "x.csv", "--target", "y", "--prior", "laplace"],
    ],
)
def test_bad_option_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"pyro-bdl {argv[0]}: error: ")


def test_every_subcommand_validates_its_options_alike():
    validators = {}
    for command, sub in subparsers().items():
        for action in sub._actions:
            if not action.option_strings or action.type is None:
                continue
            # a plain int/float/str accepts --epochs 0 or --seed -5, which fail later with a
            # traceback: every typed option has a validator of its own
            assert action.type not in (int, float, str), (command, action.option_strings)
            validators.setdefault(action.dest, set()).add(action.type)
    assert len(validators["seed"]) == 1  # demo, fit and quickstart: one validator
    assert len(validators["epochs"]) == 1  # fit and quickstart


def test_hidden_zero_is_a_linear_model():
    parse = build_parser().parse_args
    assert parse(["fit", "x.csv", "--target", "y", "--hidden", "0"]).hidden == []
    assert parse(["fit", "x.csv", "--target", "y", "--hidden", "16", "8"]).hidden == [16, 8]
    assert parse(["fit", "x.csv", "--target", "y"]).epochs is None  # the default limit
