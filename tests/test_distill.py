"""Distillation: tempered soft-target distribution, likelihoods, teacher targets.

Ground truth: Hinton et al. (2015) gradients (1/T)(q - p) and the high-temperature limit
(z - v) / (C T²); the Categorical log-likelihood at T = 1; the closed-form expected Gaussian log
density; finite differences (``torch.autograd.gradcheck``). All in float64 with fixed seeds.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer.autoguide import AutoDelta
from test_likelihoods import LikelihoodContract
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian, MeanFieldNormal, elbo_terms
from pyro_bdl.distill import (
    Distillation,
    DistillationCategorical,
    ExpectedNormal,
    GaussianDistillation,
    TeacherTargets,
    TemperedCategorical,
    gaussian_teacher_targets,
    stack_targets,
    teacher_targets,
)
from pyro_bdl.guides import BernoulliDropout

N, C = 6, 4


def soft(n=N, c=C, scale=1.0):
    return torch.softmax(scale * torch.randn(n, c), -1)


def mlp(d_in=3, hidden=8, d_out=C):
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out))


# --------------------------------------------------------------------------------------------
# TemperedCategorical
# --------------------------------------------------------------------------------------------


class TestTemperedCategorical:
    def test_shapes_broadcasting_and_expand(self):
        d = TemperedCategorical(torch.randn(C), torch.tensor([1.0, 2.0, 4.0]))
        assert d.batch_shape == (3,) and d.event_shape == (C,)
        assert d.support is dist.constraints.simplex
        e = d.expand((5, 3))
        assert e.batch_shape == (5, 3) and e.sample().shape == (5, 3, C)
        torch.testing.assert_close(e.mean[2], d.mean)
        with pytest.raises(ValueError, match="broadcastable to the batch shape"):
            TemperedCategorical(torch.randn(2, C), torch.ones(3))

    def test_mean_variance_and_one_hot_samples(self):
        z, t = torch.randn(C), 2.5
        d = TemperedCategorical(z, t)
        q = torch.softmax(z / t, -1)
        torch.testing.assert_close(d.mean, q)
        torch.testing.assert_close(d.variance, q * (1 - q))
        draws = d.sample((20000,))
        assert ((draws == 0) | (draws == 1)).all() and (draws.sum(-1) == 1).all()
        stderr = (q * (1 - q) / 20000).sqrt()
        assert ((draws.mean(0) - q).abs() < 5 * stderr).all()  # 5 standard errors

    def test_log_prob_is_soft_cross_entropy(self):
        z, p, t = torch.randn(N, C), soft(), 3.0
        expected = (p * F.log_softmax(z / t, -1)).sum(-1)
        torch.testing.assert_close(TemperedCategorical(z, t).log_prob(p), expected)

    def test_t1_one_hot_equals_categorical(self):
        z, y = torch.randn(N, C), torch.tensor([0, 1, 2, 3, 0, 1])
        torch.testing.assert_close(
            TemperedCategorical(z, 1.0).log_prob(F.one_hot(y, C).double()),
            dist.Categorical(logits=z).log_prob(y),
            rtol=1e-12,
            atol=1e-12,
        )

    @pytest.mark.parametrize("t", [0.5, 1.0, 4.0, 20.0])
    def test_gradient_is_q_minus_p_over_t(self, t):
        z, p = torch.randn(N, C, requires_grad=True), soft()
        (-TemperedCategorical(z, t).log_prob(p).sum()).backward()
        q = torch.softmax(z.detach() / t, -1)
        torch.testing.assert_close(z.grad, (q - p) / t, rtol=1e-10, atol=1e-12)

    def test_finite_differences(self):
        p = soft()
        z = torch.randn(N, C, requires_grad=True)
        t = torch.tensor(2.0, requires_grad=True)
        assert torch.autograd.gradcheck(lambda z, t: TemperedCategorical(z, t).log_prob(p), (z, t))

    def test_high_temperature_limit_is_logit_matching(self):
        z, v = torch.randn(8, 10), torch.randn(8, 10)
        z, v = z - z.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)  # zero-mean logits
        errors = []
        for t in (1.0, 3.0, 10.0, 30.0, 100.0):
            zz = z.clone().requires_grad_()
            (-TemperedCategorical(zz, t).log_prob(torch.softmax(v / t, -1)).sum()).backward()
            limit = (z - v) / (10 * t**2)
            errors.append(float((zz.grad - limit).norm() / limit.norm()))
        assert errors == sorted(errors, reverse=True), errors
        assert errors[-1] < 0.01, errors

    def test_log_prob_validation(self):
        d = TemperedCategorical(torch.zeros(2, 3), 1.0)
        with pytest.raises(ValueError, match=r"Expected the observed probability vectors >= 0"):
            d.log_prob(torch.tensor([[1.2, -0.2, 0.0], [1.0, 0.0, 0.0]]))
        with pytest.raises(ValueError, match=r"to sum to 1 .* deviation \|sum - 1\| = 0.5"):
            d.log_prob(torch.tensor([[0.5, 0.0, 0.0], [1.0, 0.0, 0.0]]))
        pyro.enable_validation(False)
        try:
            unchecked = TemperedCategorical(torch.zeros(2, 3), 1.0)
            assert unchecked.log_prob(torch.full((2, 3), 0.5)).shape == (2,)
        finally:
            pyro.enable_validation(True)

    @pytest.mark.parametrize("t", [0.0, -1.0, float("nan")])
    def test_bad_temperature(self, t):
        with pytest.raises(ValueError, match="parameter temperature .* constraint FinitePositive"):
            TemperedCategorical(torch.zeros(3), t)

    def test_bad_arguments_and_values(self):
        with pytest.raises(ValueError, match="constraint FinitePositive"):
            TemperedCategorical(torch.zeros(3), math.inf)
        with pytest.raises(TypeError, match="Expected temperature to be a positive float"):
            TemperedCategorical(torch.zeros(3), "2.0")
        with pytest.raises(ValueError, match=r"constraint Logits\(no NaN or \+inf\)"):
            TemperedCategorical(torch.tensor([0.0, math.inf]), 1.0)
        with pytest.raises(TypeError, match="Expected real logits"):
            TemperedCategorical(torch.zeros(3) + 1j, 1.0)
        d = TemperedCategorical(torch.randn(2, 3), 2.0)
        with pytest.raises(TypeError, match="Expected the observed value to be a torch.Tensor"):
            d.log_prob(torch.full((2, 3), 1 / 3).numpy())
        with pytest.raises(ValueError, match="Expected finite the observed probability vectors"):
            d.log_prob(torch.tensor([[math.nan, 0.5, 0.5], [1.0, 0.0, 0.0]]))
        one_hot = torch.tensor([[1, 0, 0], [0, 0, 1]])  # integer one-hot observations are scored
        torch.testing.assert_close(d.log_prob(one_hot), d.log_prob(one_hot.double()))

    def test_masked_class_gives_finite_log_prob(self):
        z = torch.tensor([0.0, 1.0, -math.inf])
        lp = TemperedCategorical(z, 2.0).log_prob(torch.tensor([0.5, 0.5, 0.0]))
        assert torch.isfinite(lp)


# --------------------------------------------------------------------------------------------
# DistillationCategorical and the Distillation likelihood
# --------------------------------------------------------------------------------------------


def test_distillation_categorical_combines_soft_and_hard_terms():
    z, p, y, t = torch.randn(N, C), soft(), torch.tensor([0, 1, 2, 3, 0, 1]), 3.0
    d = DistillationCategorical(z, t, soft_weight=t**2, hard_weight=0.5)
    assert d.batch_shape == (N,) and d.event_shape == (2, C)
    value = stack_targets(p, y)
    expected = t**2 * TemperedCategorical(z, t).log_prob(p) + 0.5 * dist.Categorical(
        logits=z
    ).log_prob(y)
    torch.testing.assert_close(d.log_prob(value), expected)
    unlabelled = stack_targets(p, torch.full((N,), -1))
    torch.testing.assert_close(d.log_prob(unlabelled), t**2 * TemperedCategorical(z, t).log_prob(p))
    assert d.expand((2, N)).sample().shape == (2, N, 2, C)
    assert torch.autograd.gradcheck(
        lambda z: DistillationCategorical(z, t, t**2, 0.5).log_prob(value),
        (z.clone().requires_grad_(),),
    )


@pytest.mark.parametrize("t", [1.0, 4.0, 20.0])
def test_t_squared_scale_gives_gradient_t_times_q_minus_p(t):
    z, p = torch.randn(N, C, requires_grad=True), soft()
    lik = Distillation(t)
    assert lik.soft_weight == t**2
    d = lik.predictive_dist(z)
    (-d.log_prob(torch.stack([p, torch.zeros_like(p)], 1)).sum()).backward()
    q = torch.softmax(z.detach() / t, -1)
    torch.testing.assert_close(z.grad, t * (q - p), rtol=1e-10, atol=1e-12)


class TestDistillation(LikelihoodContract):
    def make(self):
        return Distillation(2.0)

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, C))

    def targets(self):
        torch.manual_seed(7)
        return soft()

    def direct_log_prob(self, lik, f, y):
        return 4.0 * (y * F.log_softmax(f / 2.0, -1)).sum(-1)

    def test_t1_one_hot_equals_the_categorical_likelihood(self):
        f, y = self.outputs(), torch.tensor([0, 1, 2, 3, 0, 1])
        traces = []
        for lik, target in ((Distillation(1.0), F.one_hot(y, C).double()), (Categorical(), y)):
            trace = poutine.trace(lik).get_trace(f[:2], target[:2], dataset_size=N)
            trace.compute_log_prob()
            traces.append(trace.nodes["obs"])
        torch.testing.assert_close(traces[0]["log_prob_sum"], traces[1]["log_prob_sum"])
        assert traces[0]["scale"] == traces[1]["scale"] == N / 2

    def test_prediction_is_the_untempered_student(self):
        f = self.outputs(sample_shape=(3,))
        pred = self.make().prediction(self.make().predictive_dist(f, sample_ndim=1))
        torch.testing.assert_close(pred.samples, torch.softmax(f, -1))

    def test_bad_arguments(self):
        for t in (0.0, -2.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=r"Expected temperature > 0 .* but got"):
                Distillation(t)
        with pytest.raises(ValueError, match="hard_weight >= 0"):
            Distillation(2.0, hard_weight=-1.0)
        with pytest.raises(ValueError, match="soft_weight or hard_weight > 0"):
            Distillation(2.0, soft_weight=0.0)

    def test_bad_targets(self):
        lik, f = self.make(), self.outputs()
        y = self.targets()
        negative = y.clone()
        negative[0, :2] = torch.tensor([-0.1, negative[0, :2].sum() + 0.1])
        with pytest.raises(ValueError, match=r"soft targets y >= 0 .* minimum of -0.1"):
            lik(f, negative)
        with pytest.raises(ValueError, match=r"sum to 1 .* deviation \|sum - 1\| = 0.1"):
            lik(f, y * 1.1)
        with pytest.raises(ValueError, match="the teacher and the student must have the same"):
            lik(f, soft(N, C + 1))
        with pytest.raises(TypeError, match="floating-point soft targets"):
            lik(f, torch.tensor([0, 1, 2, 3, 0, 1]))
        with pytest.raises(ValueError, match=r"shape \(N, C\), or stack_targets"):
            lik(f, y[:, None, None, :])
        with pytest.raises(ValueError, match=r"hard labels .* stack_targets\(soft, labels\)"):
            Distillation(2.0, hard_weight=0.5)(f, y)
        bad_hard = stack_targets(y, torch.zeros(N, dtype=torch.long))
        bad_hard[0, 1] = 0.5
        with pytest.raises(ValueError, match="one-hot .* or all zeros"):
            lik(f, bad_hard)


class TestDistillationWithLabels(LikelihoodContract):
    def make(self):
        return Distillation(2.0, hard_weight=0.5)

    def targets(self):
        torch.manual_seed(7)
        return stack_targets(soft(), torch.tensor([0, 1, -1, 3, 0, -1]))

    def direct_log_prob(self, lik, f, y):
        hard = (y[:, 1] * F.log_softmax(f, -1)).sum(-1)
        return 4.0 * (y[:, 0] * F.log_softmax(f / 2.0, -1)).sum(-1) + 0.5 * hard

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, C))


def test_stack_targets_checks():
    y = stack_targets(soft(), torch.tensor([0, 1, -1, 3, 0, -1]))
    assert y.shape == (N, 2, C) and y[:, 1].sum(-1).tolist() == [1, 1, 0, 1, 1, 0]
    with pytest.raises(ValueError, match=r"labels in \[0, 3\] \(or -1 for unlabelled\)"):
        stack_targets(soft(), torch.tensor([0, 1, 2, 4, 0, 1]))
    with pytest.raises(TypeError, match="integer class labels"):
        stack_targets(soft(), torch.zeros(N))
    with pytest.raises(ValueError, match=r"labels of shape \(6,\)"):
        stack_targets(soft(), torch.zeros(N + 1, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# Students as BNNs: the ELBO's data term is scaled to the transfer set
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("guide", [AutoDelta, MeanFieldNormal(init_scale=0.1)])
def test_student_elbo_data_term_is_scaled_to_the_dataset(guide):
    x, y = torch.randn(20, 3), stack_targets(soft(20), torch.randint(0, C, (20,)))
    lik = Distillation(3.0, hard_weight=0.5)
    student = BNN(mlp(), dist.Normal(0.0, 1.0), lik, guide=guide)
    xb, yb = x[:5], y[:5]
    pyro.set_rng_seed(3)
    terms = elbo_terms(student.model, student.guide, xb, yb, dataset_size=20)
    pyro.set_rng_seed(3)  # the same weight draw as inside elbo_terms (the guide runs first)
    draw = poutine.trace(student.guide).get_trace(xb, yb)
    weights = {n: draw.nodes[n]["value"][None] for n in student.random_names}
    f = student.network_output(weights, xb)[0]
    batch_sum = lik.predictive_dist(f).log_prob(yb).sum()
    torch.testing.assert_close(terms.loglik, 20 / 5 * batch_sum)


def test_distilled_student_recovers_the_teacher():
    x = torch.randn(200, 3)
    teacher = nn.Linear(3, C)
    targets = teacher_targets(teacher, x, 2.0)
    student = BNN(nn.Linear(3, C), dist.Normal(0.0, 10.0), Distillation(2.0), guide=AutoDelta)
    student.fit(x, targets, epochs=150, lr=0.1, progress=False, seed=0)
    probs = student.predict(x, num_samples=1).samples[0]
    torch.testing.assert_close(probs, torch.softmax(teacher(x), -1).detach(), atol=0.02, rtol=0)


# --------------------------------------------------------------------------------------------
# Teachers
# --------------------------------------------------------------------------------------------


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
    with pytest.raises(ValueError, match=r"Expected x with at least one row \(shape \(N, ...\), N >= 1\)"):
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


# --------------------------------------------------------------------------------------------
# Regression distillation
# --------------------------------------------------------------------------------------------


def closed_form(m, s2, mu, sigma):
    return -0.5 * torch.log(2 * math.pi * sigma**2) - ((m - mu) ** 2 + s2) / (2 * sigma**2)


class TestExpectedNormal:
    def test_closed_form_and_point_targets(self):
        mu, sigma = torch.randn(N), torch.rand(N) + 0.5
        m, s2 = torch.randn(N), torch.rand(N)
        d = ExpectedNormal(mu, sigma)
        torch.testing.assert_close(
            d.log_prob(torch.stack([m, s2], -1)), closed_form(m, s2, mu, sigma)
        )
        point = torch.stack([m, torch.zeros(N)], -1)
        torch.testing.assert_close(d.log_prob(point), dist.Normal(mu, sigma).log_prob(m))
        assert d.rsample((3,)).shape == (3, N, 2) and d.expand((2, N)).batch_shape == (2, N)

    def test_monte_carlo(self):
        mu, sigma, m, s = 0.3, 0.8, -0.2, 0.6
        y = m + s * torch.randn(200_000)
        lp = dist.Normal(mu, sigma).log_prob(y)
        exact = ExpectedNormal(torch.tensor(mu), torch.tensor(sigma)).log_prob(
            torch.tensor([m, s**2])
        )
        assert abs(float(lp.mean() - exact)) < 5 * float(lp.std()) / math.sqrt(len(y))

    def test_maximised_at_the_teacher_moments(self):
        m, s2 = torch.tensor(0.7), torch.tensor(0.25)
        mu, sigma = torch.tensor(0.7, requires_grad=True), torch.tensor(0.5, requires_grad=True)
        ExpectedNormal(mu, sigma).log_prob(torch.stack([m, s2])).backward()
        torch.testing.assert_close(mu.grad, torch.tensor(0.0))
        torch.testing.assert_close(sigma.grad, torch.tensor(0.0))

    def test_bad_variance(self):
        with pytest.raises(ValueError, match=r"variances value\[..., 1\] >= 0"):
            ExpectedNormal(0.0, 1.0).log_prob(torch.tensor([0.0, -1.0]))


class TestGaussianDistillation(LikelihoodContract):
    def make(self):
        return GaussianDistillation()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 2))

    def targets(self):
        return torch.stack([torch.linspace(-1, 1, N), torch.linspace(0, 0.5, N)], -1)

    def direct_log_prob(self, lik, f, y):
        return closed_form(y[:, 0], y[:, 1], f[..., 0], F.softplus(f[..., 1]) + 1e-6)

    def test_vector_outputs_are_one_event(self):
        d = self.make().predictive_dist(torch.randn(N, 6))
        assert d.batch_shape == (N,) and d.event_shape == (3, 2)
        pred = self.make().prediction(self.make().predictive_dist(torch.randn(2, N, 6), 1))
        assert pred.samples.shape == (2, N, 3) and pred.scale.shape == (2, N, 3)

    def test_bad_targets(self):
        lik, f = self.make(), self.outputs()
        with pytest.raises(ValueError, match=r"variances y\[..., 1\] >= 0"):
            lik(f, torch.stack([torch.zeros(N), -torch.ones(N)], -1))
        with pytest.raises(ValueError, match=r"shape \(N, 2\) or \(N, D, 2\)"):
            lik(f, torch.zeros(N))
        with pytest.raises(ValueError, match=r"moments of shape \(6, 3, 2\)"):
            lik(torch.randn(N, 6), self.targets())
        with pytest.raises(ValueError, match=r"outputs of shape \(N, 2·D\)"):
            lik(torch.randn(N, 3), self.targets())


def test_gaussian_teacher_targets_are_predictive_moments():
    x = torch.linspace(-1, 1, N)[:, None]
    bnns = [
        BNN(mlp(1, 8, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.2)) for _ in range(2)
    ]
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
