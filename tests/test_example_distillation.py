"""The distillation example runs end to end at its smallest budget and returns its table."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "distillation.py"


def load_example():
    spec = importlib.util.spec_from_file_location("example_distillation", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_quick_run_returns_the_table(capsys):
    results = load_example().main(["--quick", "--seed", "1"])
    assert set(results) == {"digits"}  # Fashion-MNIST is never part of a quick run
    r = results["digits"]
    assert r["num_train"] == 200 and r["num_test"] == 100
    assert set(r["distilled"]) == {2.0} and r["best_temperature"] == 2.0
    models = [row["model"] for row in r["rows"]]
    assert len(models) == 5 and models[0].startswith("teacher")
    for row in r["rows"]:
        assert 0 <= row["errors"] <= r["num_test"]
        assert math.isclose(row["error_pct"], 100 * row["errors"] / r["num_test"])
        assert math.isfinite(row["nll"]) and row["nll"] > 0 and 0 <= row["ece"] <= 1
    for key in ("teacher", "alone", "bnn_teacher", "bnn_student"):
        assert r[key] in r["rows"]
    out = capsys.readouterr().out
    assert "| model | T | test errors | error % | NLL | ECE |" in out
    assert out.count("\n| ") == 1 + len(models) and "Best distilled student: T = 2" in out


def test_arguments_are_checked():
    example = load_example()
    with pytest.raises(SystemExit, match="temperatures must be > 0"):
        example.main(["--quick", "--temperatures", "0"])
    with pytest.raises(SystemExit, match="epochs must be >= 1"):
        example.main(["--quick", "--epochs", "0"])
