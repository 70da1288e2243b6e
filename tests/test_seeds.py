"""One seed rule everywhere: an integral number in ``[0, 2**32)`` (``None``: not seeded).

``fit``, ``predict``, the ArviZ export, k̂, the teacher targets, the data sets and the
``pyro-bdl`` command line all refuse the same values with the same message naming the seed,
and take numpy integers as the equal ``int``.
"""

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.arviz import psis_khat, to_inference_data
from pyro_bdl.cli.parser import build_parser
from pyro_bdl.datasets import linear_toy
from pyro_bdl.distill import TeacherTargets, gaussian_teacher_targets, teacher_targets

IN, N = 2, 6
BAD = [
    ("a", TypeError, r"got 'a' \(str\)"),
    (1.0, TypeError, r"got 1.0 \(float\)"),
    (True, TypeError, r"got True \(bool\)"),
    (-1, ValueError, "got -1"),
    (2**32, ValueError, "got 4294967296"),
]


def regression_bnn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(IN, 4), nn.Tanh(), nn.Linear(4, 1))
    return BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5))


def calls():
    x = torch.linspace(-1, 1, N * IN).reshape(N, IN)
    y = x.sum(-1)
    bnn = regression_bnn()
    classifier = BNN(nn.Linear(IN, 3), dist.Normal(0.0, 1.0), Categorical())
    return {
        "fit": lambda seed: bnn.fit(x, y, seed=seed, progress=False),
        "predict": lambda seed: bnn.predict(x, 2, seed=seed),
        "to_inference_data": lambda seed: to_inference_data(bnn, x, y, num_samples=2, seed=seed),
        "psis_khat": lambda seed: psis_khat(bnn, x, y, num_samples=2, seed=seed),
        "teacher_targets": lambda seed: teacher_targets(classifier, x, 1.0, seed=seed),
        "gaussian_teacher_targets": lambda seed: gaussian_teacher_targets(bnn, x, seed=seed),
        "TeacherTargets.loader": lambda seed: TeacherTargets(nn.Linear(IN, 3), x, 1.0).loader(
            2, seed=seed
        ),
        "linear_toy": lambda seed: linear_toy(3, seed=seed),
    }


@pytest.mark.parametrize("value, error, got", BAD)
@pytest.mark.parametrize("where", list(calls()))
def test_every_seed_is_checked_by_the_same_rule(where, value, error, got):
    with pytest.raises(error, match=rf"Expected seed to be an int in \[0, 2\*\*32\).*{got}"):
        calls()[where](value)


@pytest.mark.parametrize("value", [0, 2**32 - 1])
def test_the_bounds_of_the_range_are_seeds(value):
    for where, call in calls().items():
        call(value)  # no error
        if where == "predict":
            assert torch.equal(call(value).samples, call(np.uint32(value)).samples)


def test_the_command_line_agrees(capsys):
    parser = build_parser()
    for command in (["demo"], ["fit", "data.csv", "--target", "y"], ["quickstart"]):
        assert parser.parse_args([*command, "--seed", str(2**32 - 1)]).seed == 2**32 - 1
        for text in ("-1", str(2**32), "1.5", "a"):
            with pytest.raises(SystemExit):
                parser.parse_args([*command, "--seed", text])
            err = capsys.readouterr().err
            assert "argument --seed" in err, err
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--seed", "-1"])
    assert "Expected --seed to be an int in [0, 2**32), but got -1." in capsys.readouterr().err
