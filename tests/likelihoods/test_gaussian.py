"""Homoskedastic and heteroskedastic Gaussian likelihoods: exact log densities, scale options."""

import math

import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from pyro_bdl.likelihoods.gaussian import HeteroskedasticGaussian, HomoskedasticGaussian

from .contract import LikelihoodContract, N


class TestHomoskedasticGaussian(LikelihoodContract):
    def make(self):
        return HomoskedasticGaussian(scale=0.7)

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 1))

    def targets(self):
        return torch.linspace(-1, 1, N)

    def direct_log_prob(self, lik, f, y):
        r = y - f.squeeze(-1)
        return -0.5 * math.log(2 * math.pi * 0.49) - r**2 / (2 * 0.49)

    def test_target_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"y of shape \(N, \*\(\)\) .* per-datum shape \(2,\)"):
            self.make()(self.outputs(), torch.zeros(N, 2))

    def test_y_with_trailing_one_is_accepted(self):
        lik = self.make()
        torch.testing.assert_close(lik(self.outputs(), self.targets()[:, None]), self.targets())

    def test_vector_targets_are_one_event(self):
        d = self.make().predictive_dist(torch.zeros(N, 3))
        assert d.batch_shape == (N,) and d.event_shape == (3,)

    def test_scale_options(self):
        with pytest.raises(ValueError, match="either a fixed scale or a precision_prior"):
            HomoskedasticGaussian(1.0, precision_prior=dist.Gamma(1.0, 1.0))
        with pytest.raises(ValueError, match="scale > 0"):
            HomoskedasticGaussian(-1.0)
        with pytest.raises(ValueError, match="positive support"):
            HomoskedasticGaussian(precision_prior=dist.Normal(0.0, 1.0))
        learned = HomoskedasticGaussian()
        trace = poutine.trace(learned).get_trace(torch.zeros(N, 1), torch.zeros(N))
        torch.testing.assert_close(trace.nodes["obs"]["fn"].scale, torch.ones(N))
        with_prior = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 2.0))
        trace = poutine.trace(with_prior).get_trace(torch.zeros(N, 1), torch.zeros(N))
        assert "precision" in trace.nodes and not trace.nodes["precision"]["is_observed"]
        prec = trace.nodes["precision"]["value"]
        torch.testing.assert_close(trace.nodes["obs"]["fn"].scale, prec.rsqrt().expand(N))


class TestLearnedScaleGaussian(LikelihoodContract):
    """HomoskedasticGaussian(scale=None): the scale is a point estimate (PyroParam, init 1.5)."""

    def make(self):
        return HomoskedasticGaussian(init_scale=1.5)

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 2))

    def targets(self):
        return torch.linspace(-1, 1, 2 * N).reshape(N, 2)

    def direct_log_prob(self, lik, f, y):
        return torch.distributions.Normal(f, 1.5).log_prob(y).sum(-1)


class TestPrecisionPriorGaussian(LikelihoodContract):
    """HomoskedasticGaussian(precision_prior=Gamma): the reference draws the precision under the
    contract's seed, like the likelihood (no direct_log_prob)."""

    def make(self):
        return HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 1))

    def targets(self):
        return torch.linspace(-1, 1, N)


class TestHeteroskedasticGaussian(LikelihoodContract):
    def make(self):
        return HeteroskedasticGaussian()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 2))

    def targets(self):
        return torch.linspace(-1, 1, N)

    def direct_log_prob(self, lik, f, y):
        scale = F.softplus(f[..., 1]) + 1e-6
        return torch.distributions.Normal(f[..., 0], scale).log_prob(y)

    def test_odd_output_width_is_rejected(self):
        with pytest.raises(ValueError, match="multiple of 2"):
            self.make()(torch.zeros(N, 3), torch.zeros(N))


def test_a_learned_scale_prints_its_current_value_without_autograd():
    import warnings

    from torch import nn

    from pyro_bdl import BNN

    lik = HomoskedasticGaussian(init_scale=0.25)
    assert repr(lik) == "HomoskedasticGaussian(scale=learned, now 0.25)"
    x = torch.linspace(-1, 1, 8)[:, None]
    bnn = BNN(nn.Linear(1, 1), dist.Normal(0.0, 1.0), lik)
    bnn.fit(x, 3 * x[:, 0], epochs=5, lr=0.05, progress=False)
    learned = float(lik.scale.detach())
    assert learned != 0.25  # fitted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "converting a tensor with requires_grad" warning
        shown = [repr(lik), repr(bnn)]
    assert f"HomoskedasticGaussian(scale=learned, now {learned:.4g})" in shown[0]
    assert "grad_fn" not in shown[1] and f"now {learned:.4g}" in shown[1]
