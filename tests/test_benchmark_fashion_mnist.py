"""benchmarks/fashion_mnist.py: its pieces, and a --quick run end to end (a well-formed table)."""

import json
import math
from pathlib import Path

import pytest
import torch

from pyro_bdl.datasets import load_fashion_mnist

from .conftest import load_script, require_or_skip

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "fashion_mnist.py"


@pytest.fixture(scope="module")
def fmnist():
    return load_script(_PATH, "benchmark_fashion_mnist")


@pytest.fixture(scope="module")
def have_data():
    try:
        load_fashion_mnist("test", limit=1)
        load_fashion_mnist("train", limit=1)
    except FileNotFoundError as error:  # fails (not skips) under CI, like test_datasets.py
        require_or_skip(
            f"Fashion-MNIST not installed ({error}): apt-get install dataset-fashion-mnist"
        )


def test_lenet_shapes(fmnist):
    net = fmnist.make_lenet()
    assert net(torch.zeros(3, 1, 28, 28, dtype=torch.float32)).shape == (3, 10)
    # LeNet-5: conv 6-16, fc 120-84-10; the dropout sites are the fully connected weights
    names = dict(net.named_parameters())
    assert names["0.weight"].shape == (6, 1, 5, 5) and names["3.weight"].shape == (16, 6, 5, 5)
    assert [tuple(names[s].shape) for s in fmnist.DROPOUT_SITES] == [
        (120, 400),
        (84, 120),
        (10, 84),
    ]
    assert sum(p.numel() for p in net.parameters()) == 61_706


def test_entropy_of_the_predictive_mean(fmnist):
    # two confident draws that disagree: the mean is uniform over 2 classes, entropy log 2
    probs = torch.zeros(2, 1, 10)
    probs[0, 0, 3], probs[1, 0, 7] = 1.0, 1.0
    assert fmnist.entropy(probs).item() == pytest.approx(math.log(2), abs=1e-12)
    assert fmnist.entropy(torch.full((1, 4, 10), 0.1)).tolist() == pytest.approx([math.log(10)] * 4)


def test_table_puts_published_numbers_beside_ours(fmnist):
    row = {
        "epochs": "3",
        "accuracy": 0.9,
        "nll": 0.3,
        "ece": 0.02,
        "brier": 0.15,
        "auroc_inverted": 0.7,
        "auroc_noise": 0.9,
        "fit_seconds": 12.0,
    }
    text = fmnist.format_table({"meanfield": row, "dropout": row})
    lines = text.splitlines()
    assert lines[2] == (
        "| mean-field VI | 3 | 90.00 | 0.300 | 0.020 | 0.150 | 0.700 | 0.900 | 12 | "
        "0.292 / 89.5 / 0.011 |"
    )
    assert lines[3].endswith("| n/a |")  # no published MC-dropout row


@pytest.mark.slow
def test_quick_run(fmnist, have_data, tmp_path):
    out, js, saved = tmp_path / "table.md", tmp_path / "results.json", tmp_path / "probs"
    argv = ["--quick", "--output", str(out), "--json", str(js), "--save-probs", str(saved)]
    results = fmnist.main(argv)
    assert list(results) == list(fmnist.METHODS)
    for method, r in results.items():
        for key in ("accuracy", "nll", "ece", "brier", "auroc_inverted", "auroc_noise"):
            assert math.isfinite(r[key]), (method, key, r[key])
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece"] <= 1 and 0 <= r["brier"] <= 2
        assert 0 <= r["auroc_inverted"] <= 1 and 0 <= r["auroc_noise"] <= 1
        assert r["nll"] > 0 and r["fit_seconds"] > 0
        assert sum(r["bins"]["count"]) == 512  # every --quick test image in one of 15 bins
        assert len(r["bins"]["count"]) == 15
        for name in ("test", "inverted", "noise"):
            assert sum(r["entropy_hist"][name]) == (512 if name == "test" else 128)
    assert results["ensemble"]["num_draws"] == 2 and results["map"]["num_draws"] == 1
    probs = results["concrete"]["drop_probabilities"]
    assert "0.weight" not in probs and all(0 < p < 1 for p in probs.values())
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(fmnist.METHODS)
    assert len({line.count("|") for line in rows}) == 1  # every row has the header's cells
    payload = json.loads(js.read_text())
    assert set(payload["results"]) == set(fmnist.METHODS) and payload["config"]["n_train"] == 512
    assert payload["command"] == "python benchmarks/fashion_mnist.py " + " ".join(argv)
    # temperature scaling, fitted on the validation split: in the run, and again from the saved
    # predictive means (--recalibrate) with the same result
    assert "ECE after TS (T)" in out.read_text()
    for r in results.values():
        assert r["temperature"] > 0 and 0 <= r["ece_ts"] <= 1 and math.isfinite(r["nll_ts"])
    for r in payload["results"].values():
        r.pop("ece_ts"), r.pop("temperature"), r.pop("nll_ts")
    js.write_text(json.dumps(payload))
    again = fmnist.main(["--recalibrate", str(saved), "--json", str(js)])
    for method, r in results.items():
        assert again[method]["ece_ts"] == pytest.approx(r["ece_ts"], abs=1e-9)
        assert again[method]["temperature"] == pytest.approx(r["temperature"], rel=1e-9)
