"""benchmarks/svi_step.py and benchmarks/predict_parts.py run end to end and report sane tables."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    sys.path.insert(0, str(_DIR))
    try:
        spec = importlib.util.spec_from_file_location(name, _DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(_DIR))


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_svi_step_quick_table(keep_threads, tmp_path):
    out = tmp_path / "bench.md"
    text = _load("svi_step").main(["--quick", "--threads", "1", "--output", str(out)])
    assert out.read_text() == text
    for row in (
        "plain torch step |",
        "MeanFieldNormal |",
        "BernoulliDropout(0.1) |",
        "BNN.predict |",
    ):
        assert row in text
    cells = [line.split("|") for line in text.splitlines() if line.count("|") == 4]
    ratios = [float(c[3]) for c in cells if c[3].strip() not in ("", "ratio", "---")]
    assert len(ratios) >= 10 and all(math.isfinite(r) and r > 0 for r in ratios)
    assert "| plain torch step | " in text and "| 1.00 |" in text  # the baseline row


@pytest.mark.slow
def test_predict_parts_reports_every_part(keep_threads):
    parts = _load("predict_parts").main()
    assert set(parts) == {
        "predict",
        "plain loop drawing W ~ q",
        "forward, 5 chunks of 20 draws",
        "weight draws, 5 chunks",
        "Prediction",
        "input checks, probe, posterior",
    }
    assert all(math.isfinite(ms) and ms > 0 for ms in parts.values())
