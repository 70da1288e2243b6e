"""Every built-in posterior passes :class:`pyro_bdl.testing.PosteriorContract`: a fixed set of
draws (``SamplesPosterior``) and fitted guides (mean-field Normal, MC dropout) read through
``BNN.posterior(x)``. Float64, fixed seeds; the tolerances are the contract's."""

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.guides import BernoulliDropout
from pyro_bdl.inference import SamplesPosterior
from pyro_bdl.testing import PosteriorContract

X = torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]


def fitted(guide, likelihood=None):
    """A small regression BNN fitted for a few steps (float64, seed 0)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    bnn = BNN(net, dist.Normal(0.0, 1.0), likelihood or HomoskedasticGaussian(0.2), guide=guide)
    y = (2 * X).sin().squeeze(-1)
    bnn.fit(X, y, epochs=3, batch_size=4, lr=1e-2, seed=0, progress=False)
    return bnn


class TestSamplesPosterior(PosteriorContract):
    num = 6

    @pytest.fixture(autouse=True)
    def _bnn(self):
        self.bnn = fitted(MeanFieldNormal(init_scale=0.1))
        self.samples = self.bnn.posterior(X).sample(self.num).sites

    def make(self):
        return SamplesPosterior(self.samples)

    def site_shapes(self):
        return {name: value.shape[1:] for name, value in self.samples.items()}

    def model(self):
        return self.bnn.bayesian_model

    def inputs(self):
        return X


class TestSamplesPosteriorWithPrecision(TestSamplesPosterior):
    """A sampled noise precision as well: prediction runs the model on each chunk."""

    @pytest.fixture(autouse=True)
    def _bnn(self):
        lik = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0))
        self.bnn = fitted(MeanFieldNormal(init_scale=0.1), lik)
        weights = self.bnn.posterior(X).sample(self.num).sites
        precision = torch.linspace(1.0, 3.0, self.num, dtype=torch.float64)
        self.samples = {**weights, "precision": precision}


class TestMeanFieldGuidePosterior(PosteriorContract):
    @pytest.fixture(autouse=True)
    def _bnn(self):
        self.bnn = fitted(MeanFieldNormal(init_scale=0.1))

    def make(self):
        return self.bnn.posterior(X)

    def site_shapes(self):
        model = self.bnn.bayesian_model
        return {model.site_name(n): model.shapes[n] for n in model.random_names}

    def model(self):
        return self.bnn.bayesian_model

    def inputs(self):
        return X


class TestDropoutGuidePosterior(TestMeanFieldGuidePosterior):
    """MC dropout: per-example masks drawn in the forward (input_fns), one draw per chunk."""

    @pytest.fixture(autouse=True)
    def _bnn(self):
        self.bnn = fitted(BernoulliDropout(p=0.2))
