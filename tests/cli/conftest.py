"""Fixtures of the ``pyro-bdl`` tests: a regression and a classification CSV file."""

import pytest
import torch

from .helpers import write_csv


@pytest.fixture
def regression_csv(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    y = 50 + 3 * x[:, 0] - x[:, 1] + 0.1 * torch.randn(40, generator=g)
    rows = [
        [f"{a:.4f}", f"{b:.4f}", f"{c:.4f}"]
        for (a, b), c in zip(x.tolist(), y.tolist(), strict=True)
    ]
    return write_csv(tmp_path / "reg.csv", ["x1", "x2", "price"], rows)


@pytest.fixture
def classification_csv(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(45, 3, generator=g)
    names = ["setosa", "versicolor", "virginica"]
    rows = [[names[i % 3], f"{a:.3f}", f"{b + i % 3:.3f}", f"{c:.3f}"] for i, (a, b, c) in
            enumerate(x.tolist())]  # fmt: skip
    return write_csv(tmp_path / "iris.csv", ["species", "f1", "f2", "f3"], rows)
