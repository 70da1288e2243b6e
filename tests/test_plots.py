"""Tests for pyro_bdl.plots: every figure renders to a non-blank PNG without a display."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pyro_bdl.plots import (  # noqa: E402
    elbo_trace,
    regression_bands,
    reliability_diagram,
    uncertainty_histogram,
)
from pyro_bdl.uncertainty import Prediction  # noqa: E402

DTYPE = torch.float64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_valid_png(fig: Figure, path) -> None:
    assert isinstance(fig, Figure)
    fig.savefig(path, dpi=80)
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert height >= 200 and width >= 200
    pixels = image.reshape(-1, image.shape[-1])
    assert len(np.unique(pixels, axis=0)) > 10, "image is (nearly) a single colour"


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _classification(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.softmax(2 * torch.randn(10, 200, 3, generator=gen, dtype=DTYPE), -1)
    y = torch.randint(3, (200,), generator=gen)
    return probs, y


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_diagram(tmp_path, gen, strategy):
    probs, y = _classification(gen)
    fig = reliability_diagram(probs, y, n_bins=10, strategy=strategy)
    assert "ECE" in fig.axes[0].get_title()
    _assert_valid_png(fig, tmp_path / "reliability.png")


def test_reliability_diagram_accepts_prediction_and_ax(tmp_path, gen):
    probs, y = _classification(gen)
    fig = Figure(figsize=(8, 4))
    left, right = fig.subplots(1, 2)
    returned = reliability_diagram(Prediction("categorical", samples=probs), y, ax=right)
    assert returned is fig
    assert right.get_title().startswith("Reliability") and left.get_title() == ""
    _assert_valid_png(fig, tmp_path / "reliability_ax.png")


def test_regression_bands(tmp_path, gen):
    x = torch.linspace(-2, 2, 60, dtype=DTYPE)
    loc = torch.sin(x) + 0.2 * x.abs() * torch.randn(30, 60, generator=gen, dtype=DTYPE)
    pred = Prediction("gaussian", samples=loc.unsqueeze(-1), scale=torch.full((30, 60, 1), 0.1))
    x_train = torch.rand(20, generator=gen, dtype=DTYPE) * 2 - 1
    fig = regression_bands(
        x.unsqueeze(-1),
        pred,
        x_train=x_train,
        y_train=torch.sin(x_train),
        true_fn=torch.sin,
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("total") for label in labels)
    assert any(label.startswith("epistemic") for label in labels)
    _assert_valid_png(fig, tmp_path / "bands.png")


def test_regression_bands_rejects_classification(gen):
    probs, _ = _classification(gen)
    with pytest.raises(TypeError, match="kind 'gaussian'"):
        regression_bands(torch.zeros(200), Prediction("categorical", samples=probs))


def test_uncertainty_histogram(tmp_path, gen):
    score_in = torch.rand(500, generator=gen, dtype=DTYPE)
    score_out = torch.rand(300, generator=gen, dtype=DTYPE) + 0.5
    fig = uncertainty_histogram(score_in, score_out, label="mutual information")
    assert "AUROC" in fig.axes[0].get_title()
    _assert_valid_png(fig, tmp_path / "hist.png")


@pytest.mark.parametrize("as_object", [False, True])
def test_elbo_trace(tmp_path, as_object):
    steps = np.arange(1, 51)
    history = {
        "elbo": list(-1.0 - 5.0 / steps),
        "loglik": torch.tensor(-0.8 - 5.0 / steps),
        "kl": np.full(50, 0.2) + 0.01 / steps,
    }
    fig = elbo_trace(SimpleNamespace(**history) if as_object else history)
    assert len(fig.axes) == 2  # the KL term sits on a twin axis
    _assert_valid_png(fig, tmp_path / "elbo.png")


def test_elbo_trace_requires_elbo():
    with pytest.raises(ValueError, match="sequence 'elbo'.*got \\['loss'\\]"):
        elbo_trace({"loss": [1.0, 2.0]})


def test_axes_in_a_subfigure_returns_the_root_figure(tmp_path):
    fig = Figure(figsize=(4, 4))
    ax = fig.subfigures(1, 1).subplots()
    returned = uncertainty_histogram(torch.zeros(5), torch.ones(5), ax=ax)
    assert returned is fig
    pred = Prediction("gaussian", samples=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="both x_train and y_train"):
        regression_bands(torch.zeros(3), pred, x_train=torch.zeros(3))
