"""benchmarks/distillation.py and benchmarks/dark_knowledge.py at their --quick budgets.

The quick runs need the real data (Fashion-MNIST from ``dataset-fashion-mnist``, Boston from
``../shared/data/uci``): without it they skip, and fail under CI (``require_or_skip``). The
omitted-class bias shift is checked on its own against a closed-form answer.
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from pyro_bdl.datasets import find_uci_dir

from .conftest import load_script, require_or_skip

_ROOT = Path(__file__).resolve().parent.parent / "benchmarks"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _load(name):
    return load_script(_ROOT / f"{name}.py", f"benchmark_{name}")


@pytest.fixture(scope="module")
def distillation():
    return _load("distillation")


@pytest.fixture(scope="module")
def dark_knowledge():
    return _load("dark_knowledge")


def test_prior_matching_shift_closed_form(distillation):
    # class 2 logits are 0 for every row, the others are u_n and -5: class 2 wins row n iff
    # shift > u_n, so a share of 1/4 needs the shift to pass the 25th of 100 sorted u_n
    u = torch.linspace(0.5, 10.4, 100)
    logits = torch.stack([u, torch.full_like(u, -5.0), torch.zeros_like(u)], dim=1)
    shift = distillation.prior_matching_shift(logits, 2, 0.25)
    assert u[24] < shift <= u[25] + 1e-6
    assert distillation.prior_matching_shift(logits, 0, 0.25) == 0.0  # already predicted: none
    # the accuracy-optimal shift on labelled rows: class 2 is the truth for the first 30 rows
    y = torch.tensor([2] * 30 + [0] * 70)
    best = distillation.accuracy_shift(logits, y, 2)
    assert u[29] < best <= u[30] + 0.1  # grid step 0.1


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.slow
def test_distillation_quick(distillation, tmp_path):
    if not FASHION.is_dir():
        require_or_skip(f"no {FASHION}: apt-get install -y dataset-fashion-mnist")
    out, js = tmp_path / "d.md", tmp_path / "d.json"
    result = distillation.main(["--quick", "--output", str(out), "--json", str(js)])
    cfg = result["config"]
    assert json.loads(js.read_text())["config"] == cfg
    # one record per planned run, each a finite error count over the test images
    assert len(result["records"]) == len(distillation.plan(cfg))
    for r in result["records"]:
        assert 0 <= r["errors"] <= cfg["n_test"] and _finite(r["seconds"])
    t = result["teacher"]
    assert 0 < t["max_prob_det"] <= 1 and 0 < t["max_prob_mc"] <= 1
    # hard labels and every temperature of the soft sweep appear as rows
    soft = [r for r in result["rows"] if r["experiment"] == "soft"]
    assert [r["T"] for r in soft] == [None, *cfg["temps"]]
    assert {r["experiment"] for r in result["rows"]} == {
        "soft", "small", "small-prior", "small-bayes", "prior", "prior-soft1", "mixed", "bayes",
        "capacity",
    }  # fmt: skip
    small = [r for r in result["rows"] if r["experiment"] == "small"]
    assert {r["n_transfer"] for r in small} == {cfg["n_small"]}
    # the gap recovered is computed against the hard-label student of the same transfer set
    hard = small[0]["errors"]
    for r in small[1:]:
        gap = hard - t["errors_det"]
        assert r["gap_recovered"] == pytest.approx((hard - r["errors"]) / gap) or gap <= 0
    om = result["omitted"][0]
    assert 0 <= om["before"]["class_acc"] <= 1 and om["shift_prior"] >= 0
    text = out.read_text()
    rows = [
        line
        for line in text.splitlines()
        if re.match(r"\| (soft|small|prior|mixed|bayes|capa)", line)
    ]
    assert len(rows) == len(result["rows"]) and all(line.count("|") == 14 for line in rows)
    assert "Omitted class 3 (Dress)" in text


@pytest.mark.slow
def test_dark_knowledge_quick(dark_knowledge, tmp_path):
    try:
        found = (find_uci_dir() / "bostonHousing").is_dir()
    except FileNotFoundError:
        found = False
    if not found:
        require_or_skip("no bostonHousing under ../shared/data/uci (find_uci_dir)")
    out = tmp_path / "dk.md"
    result = dark_knowledge.main(["--quick", "--output", str(out)])
    assert len(result["records"]) == 2
    s = result["summary"]
    for key in ("teacher_ll", "student_ll", "teacher_gauss_ll", "gap", "teacher_rmse"):
        assert _finite(s[key]), key
    # even at this budget both predictives beat a unit-variance guess in original units
    assert -10 < s["teacher_ll"] < 0 and -10 < s["student_ll"] < 0
    assert abs(s["gap"] - (s["student_ll"] - s["teacher_ll"])) < 1e-9
    text = out.read_text()
    assert "| SGHMC teacher (5 draws, mixture) |" in text and "distilled SGLD -2.35" in text
