"""ExpectedNormal: the closed-form expected Gaussian log density, checked by Monte Carlo."""

import math

import pyro.distributions as dist
import pytest
import torch

from pyro_bdl.distributions.expected_normal import ExpectedNormal

from ..distillation_problems import N, closed_form


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
