"""Distillation likelihoods: the soft-target likelihood and its T² scale (Hinton et al. 2015),
regression distillation, and a student's ELBO data term scaled to the transfer set.

Ground truth: the gradient T(q - p) under the T² weight, the Categorical log-likelihood at T = 1,
the closed-form expected Gaussian log density. All in float64 with fixed seeds.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer.autoguide import AutoDelta

from pyro_bdl import BNN, MeanFieldNormal, elbo_terms
from pyro_bdl.distributions.tempered import stack_targets
from pyro_bdl.likelihoods.classification import Categorical
from pyro_bdl.likelihoods.distillation import Distillation, GaussianDistillation

from ..distillation_problems import C, N, closed_form, mlp, soft
from .contract import LikelihoodContract


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
    #: its prediction is the untempered student softmax(z), not the tempered predictive
    prediction_is_predictive = False

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
    prediction_is_predictive = False  # the untempered student, as above

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


class TestGaussianDistillation(LikelihoodContract):
    #: ExpectedNormal scores the teacher's moments; the prediction is the student's Normal
    prediction_is_predictive = False

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
