"""Categorical and Bernoulli likelihoods: exact log densities, label checks."""

import pytest
import torch
import torch.nn.functional as F

from pyro_bdl.likelihoods.classification import Bernoulli, Categorical

from .contract import LikelihoodContract, N


class TestCategorical(LikelihoodContract):
    def make(self):
        return Categorical()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 4))

    def targets(self):
        return torch.tensor([0, 1, 2, 3, 0, 1])

    def direct_log_prob(self, lik, f, y):
        idx = y.expand(f.shape[:-1]).unsqueeze(-1)
        return F.log_softmax(f, -1).gather(-1, idx).squeeze(-1)

    def test_label_checks(self):
        lik, f = self.make(), self.outputs()
        with pytest.raises(TypeError, match="integer class labels .* got dtype torch.float64"):
            lik(f, torch.zeros(N))
        with pytest.raises(ValueError, match=r"labels in \[0, 3\] .* got label 4"):
            lik(f, torch.tensor([0, 1, 2, 3, 4, 0]))
        with pytest.raises(ValueError, match="labels >= 0"):
            lik(f, torch.tensor([0, 1, 2, 3, -1, 0]))
        with pytest.raises(ValueError, match=r"shape \(N, num_classes\)"):
            lik(torch.randn(N), torch.zeros(N, dtype=torch.long))


class TestBernoulli(LikelihoodContract):
    def make(self):
        return Bernoulli()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 1))

    def targets(self):
        return torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])

    def direct_log_prob(self, lik, f, y):
        p = torch.sigmoid(f.squeeze(-1))
        return y * p.log() + (1 - y) * (1 - p).log()

    def test_non_binary_targets(self):
        with pytest.raises(ValueError, match=r"binary targets in \{0, 1\}"):
            self.make()(self.outputs(), torch.full((N,), 0.5))
