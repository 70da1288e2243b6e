"""TemperedCategorical and DistillationCategorical: soft cross-entropy, gradients, validation.

Ground truth: Hinton et al. (2015) gradients (1/T)(q - p) and the high-temperature limit
(z - v) / (C T²); the Categorical pmf at T = 1; finite differences (``torch.autograd.gradcheck``).
All in float64 with fixed seeds.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F

from pyro_bdl.distributions.tempered import (
    DistillationCategorical,
    TemperedCategorical,
    stack_targets,
)

from ..distillation_problems import C, N, soft


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


def test_stack_targets_checks():
    y = stack_targets(soft(), torch.tensor([0, 1, -1, 3, 0, -1]))
    assert y.shape == (N, 2, C) and y[:, 1].sum(-1).tolist() == [1, 1, 0, 1, 1, 0]
    with pytest.raises(ValueError, match=r"labels in \[0, 3\] \(or -1 for unlabelled\)"):
        stack_targets(soft(), torch.tensor([0, 1, 2, 4, 0, 1]))
    with pytest.raises(TypeError, match="integer class labels"):
        stack_targets(soft(), torch.zeros(N))
    with pytest.raises(ValueError, match=r"labels of shape \(6,\)"):
        stack_targets(soft(), torch.zeros(N + 1, dtype=torch.long))
