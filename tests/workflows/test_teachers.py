"""Teachers: soft targets from a network, a BNN (an average of probabilities, never of logits) or
an ensemble; per-minibatch targets; a regression teacher's predictive moments; a distilled
student recovers its teacher."""

import math

import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoDelta
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.bnn import UnfittedGuideWarning
from pyro_bdl.distributions.tempered import stack_targets
from pyro_bdl.guides import BernoulliDropout
from pyro_bdl.likelihoods.distillation import Distillation
from pyro_bdl.workflows.teachers import TeacherTargets, gaussian_teacher_targets, teacher_targets

from ..distillation_problems import C, N, mlp


def test_distilled_student_recovers_the_teacher():
    x = torch.randn(200, 3)
    teacher = nn.Linear(3, C)
    targets = teacher_targets(teacher, x, 2.0)
    student = BNN(nn.Linear(3, C), dist.Normal(0.0, 10.0), Distillation(2.0), guide=AutoDelta)
    student.fit(x, targets, epochs=150, lr=0.1, progress=False, seed=0)
    probs = student.predict(x, num_samples=1).samples[0]
    torch.testing.assert_close(probs, torch.softmax(teacher(x), -1).detach(), atol=0.02, rtol=0)


def test_module_teacher_runs_in_eval_mode():
    net = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.5), nn.Linear(16, C))
    x = torch.randn(N, 3)
    targets = teacher_targets(net, x, 3.0)
    assert net.training  # restored
    net.eval()
    torch.testing.assert_close(targets, torch.softmax(net(x) / 3.0, -1).detach())
    torch.testing.assert_close(teacher_targets(net, x, 3.0, batch_size=4), targets)


def fitted_bnn_teacher(x, y):
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), guide=MeanFieldNormal(init_scale=0.3))
    bnn.fit(x, y, epochs=3, lr=0.01, progress=False, seed=0)
    return bnn


@pytest.mark.parametrize("t", [1.0, 3.0])
def test_bnn_teacher_averages_tempered_probabilities(t):
    x, y = torch.randn(N, 3), torch.tensor([0, 1, 2, 3, 0, 1])
    bnn = fitted_bnn_teacher(x, y)
    targets = teacher_targets(bnn, x, t, num_samples=50, seed=11)
    per_draw = bnn.predict(x, num_samples=50, seed=11).samples  # same draws: (S, N, C) at T=1
    # softmax(log softmax(v) / T) = softmax(v / T): the per-draw tempered probabilities
    tempered = torch.softmax(per_draw.log() / t, -1)
    torch.testing.assert_close(targets, tempered.mean(0))
    torch.testing.assert_close(
        teacher_targets(bnn, x, t, num_samples=50, seed=11, batch_size=4), targets
    )
    logit_average = torch.softmax(per_draw.log().mean(0) / t, -1)
    assert (targets - logit_average).abs().max() > 1e-3  # not an average of logits


@pytest.mark.parametrize(
    "guide", [MeanFieldNormal(init_scale=0.3), AutoDelta, BernoulliDropout(p=0.3)], ids=str
)
def test_any_guide_and_an_unfitted_teacher(guide):
    x = torch.randn(N, 3)
    bnn = BNN(mlp(), dist.Normal(0.0, 1.0), Categorical(), guide=guide)  # never fitted
    targets = teacher_targets(bnn, x, 2.0, num_samples=20, seed=3)
    with pytest.warns(UnfittedGuideWarning):
        per_draw = bnn.predict(x, num_samples=20, seed=3).samples
    torch.testing.assert_close(targets, torch.softmax(per_draw.log() / 2.0, -1).mean(0))


def test_ensemble_teacher_averages_probabilities():
    x = torch.randn(N, 3)
    a, b = mlp(), mlp()
    expected = (torch.softmax(a(x) / 2.0, -1) + torch.softmax(b(x) / 2.0, -1)).detach() / 2
    torch.testing.assert_close(teacher_targets([a, b], x, 2.0), expected)
    with pytest.raises(ValueError, match="every ensemble member to predict 4 classes"):
        teacher_targets([a, mlp(d_out=C + 1)], x, 2.0)
    with pytest.raises(ValueError, match="at least one model"):
        teacher_targets([], x, 2.0)


def test_teacher_argument_checks():
    x = torch.randn(N, 3)
    for t in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"Expected temperature > 0"):
            teacher_targets(mlp(), x, t)
    with pytest.raises(TypeError, match="nn.Module, a pyro_bdl.BNN or a list"):
        teacher_targets([lambda x: x], x, 1.0)
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\)"):
        teacher_targets(nn.Flatten(0), x, 1.0)
    regression = BNN(mlp(d_out=1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
    with pytest.raises(ValueError, match="classification teacher .* gaussian_teacher_targets"):
        teacher_targets(regression, x, 1.0)


@pytest.mark.parametrize("kind", ["net", "bnn"])
def test_teacher_inputs_are_checked(kind):
    teacher = mlp() if kind == "net" else BNN(mlp(), dist.Normal(0.0, 1.0), Categorical())
    with pytest.raises(ValueError, match="Expected finite"):
        teacher_targets(teacher, torch.full((2, 3), math.nan), 1.0)
    with pytest.raises(ValueError, match="Expected inputs the .* accepts"):
        teacher_targets(teacher, torch.zeros(2, 4), 1.0)
    empty = r"Expected x with at least one row \(shape \(N, ...\), N >= 1\)"
    with pytest.raises(ValueError, match=empty):
        teacher_targets(teacher, torch.zeros(0, 3), 1.0)


def test_teacher_targets_dataset_feeds_bnn_fit():
    x, labels = torch.randn(10, 3), torch.randint(0, C, (10,))
    teacher = mlp()
    data = TeacherTargets(teacher, x, 2.0, labels=labels)
    xb, yb = data[[0, 3]]
    assert xb.shape == (2, 3) and yb.shape == (2, 2, C)
    torch.testing.assert_close(
        yb, stack_targets(teacher_targets(teacher, x[[0, 3]], 2.0), labels[[0, 3]])
    )
    assert data[1][1].shape == (2, C) and data[torch.tensor([1, 2])][0].shape == (2, 3)
    student = BNN(mlp(), dist.Normal(0.0, 1.0), Distillation(2.0, hard_weight=0.5), guide=AutoDelta)
    result = student.fit(data.loader(batch_size=4, seed=0), epochs=2, progress=False)
    assert result.dataset_size == 10 and result.num_steps == 6


def test_gaussian_teacher_targets_are_predictive_moments():
    x = torch.linspace(-1, 1, N)[:, None]
    bnns = [
        BNN(mlp(1, 8, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.2)) for _ in range(2)
    ]
    for bnn in bnns:
        bnn.fit(x, x[:, 0], epochs=1, progress=False)
    y = gaussian_teacher_targets(bnns[0], x, num_samples=30, seed=5)
    pred = bnns[0].predict(x, num_samples=30, seed=5)
    torch.testing.assert_close(y, torch.stack([pred.mean, pred.variance], -1))
    mix = gaussian_teacher_targets(bnns, x, num_samples=30, seed=5)
    other = bnns[1].predict(x, num_samples=30, seed=6)
    mean = (pred.mean + other.mean) / 2
    var = (pred.variance + pred.mean**2 + other.variance + other.mean**2) / 2 - mean**2
    torch.testing.assert_close(mix, torch.stack([mean, var], -1))
    with pytest.raises(ValueError, match="Gaussian likelihood"):
        gaussian_teacher_targets(mlp(), x)
