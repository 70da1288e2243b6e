"""The Likelihood base: dataset_size checks; the shortcuts subclasses override (log_density,
prediction_from_outputs) equal the generic path through predictive_dist; a new family (Student-t,
Poisson) defined here with predictive_dist alone passes the contract, fits and predicts."""

import math

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from pyro_bdl import BNN
from pyro_bdl.likelihoods import Likelihood
from pyro_bdl.likelihoods.classification import Bernoulli, Categorical
from pyro_bdl.likelihoods.gaussian import HeteroskedasticGaussian, HomoskedasticGaussian
from pyro_bdl.testing import LikelihoodContract

from .contract import N


def test_dataset_size_checks():
    with pytest.raises(ValueError, match="positive int"):
        Categorical(dataset_size=0)
    with pytest.raises(ValueError, match="dataset_size >= the batch size"):
        Categorical(dataset_size=2)(torch.zeros(N, 3), torch.zeros(N, dtype=torch.long))


@pytest.mark.parametrize(
    "lik, out, target",
    [
        (HomoskedasticGaussian(0.3), (7, 1), (7,)),
        (HomoskedasticGaussian(0.3), (7, 2), (7, 2)),
        (HomoskedasticGaussian(), (7, 1), (7,)),
        (HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0)), (7, 1), (7,)),
        (HeteroskedasticGaussian(), (7, 2), (7,)),
        (Categorical(), (7, 4), None),
        (Bernoulli(), (7, 1), None),
    ],
    ids=["fixed", "fixed-2d", "learned", "precision-prior", "hetero", "categorical", "bernoulli"],
)
@pytest.mark.parametrize("sample_shape", [(), (3,)])
def test_log_density_equals_the_predictive_distributions_log_prob(lik, out, target, sample_shape):
    """The trace-free step's log density is the distribution's log_prob (float64, 1e-12), with
    a sampled precision drawn alike (same seed)."""
    torch.manual_seed(0)
    f = torch.randn(sample_shape + out)
    if isinstance(lik, Categorical):
        y = torch.randint(0, out[-1], out[:1])
    elif isinstance(lik, Bernoulli):
        y = torch.randint(0, 2, out[:1]).double()
    else:
        y = torch.randn(target)
    ndim = len(sample_shape)
    y = lik.check_target(y, f, ndim)
    expected = poutine.seed(lik.predictive_dist, rng_seed=2)(f, ndim).log_prob(y)
    got = poutine.seed(lik.log_density, rng_seed=2)(f, y, ndim)
    assert got.shape == sample_shape + out[:1]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "lik, out",
    [
        (HomoskedasticGaussian(0.3), (7, 1)),
        (HomoskedasticGaussian(0.3), (7, 2)),
        (HomoskedasticGaussian(), (7, 1)),
        (HeteroskedasticGaussian(), (7, 2)),
        (Categorical(), (7, 4)),
        (Bernoulli(), (7, 1)),
    ],
    ids=["fixed", "fixed-2d", "learned", "hetero", "categorical", "bernoulli"],
)
def test_prediction_from_outputs_equals_the_prediction_of_the_predictive_distribution(lik, out):
    """The shortcut predict uses builds the same Prediction (samples, scale; float64, exact)."""
    torch.manual_seed(0)
    f = torch.randn((5,) + out)
    got = lik.prediction_from_outputs(f, 1)
    expected = lik.prediction(lik.predictive_dist(f, 1))
    assert got.kind == expected.kind
    torch.testing.assert_close(got.samples, expected.samples, rtol=0, atol=0)
    if expected.scale is None:
        assert got.scale is None
    else:
        torch.testing.assert_close(got.scale, expected.scale, rtol=0, atol=0)


# ------------------------------------------------------- a new family: one class, nothing else
class StudentTLikelihood(Likelihood):
    """Student-t noise around the network's output: the only method is predictive_dist."""

    def __init__(self, df=5.0, noise=0.5, dataset_size=None):
        super().__init__(dataset_size)
        self.df, self.noise = df, noise

    def predictive_dist(self, f, sample_ndim=0):
        return dist.StudentT(self.df, f.squeeze(-1), self.noise)

    def config(self):
        return {"df": self.df, "noise": self.noise, "dataset_size": self.dataset_size}


class PoissonLikelihood(Likelihood):
    """Counts with log-rate f: predictive_dist only, not even a config."""

    def predictive_dist(self, f, sample_ndim=0):
        return dist.Poisson(f.squeeze(-1).exp())


class TestStudentTLikelihood(LikelihoodContract):
    def make(self):
        return StudentTLikelihood()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 1))

    def targets(self):
        return torch.linspace(-2, 2, N)

    def direct_log_prob(self, lik, f, y):
        return torch.distributions.StudentT(5.0, f.squeeze(-1), 0.5).log_prob(y)


class TestPoissonLikelihood(LikelihoodContract):
    def make(self):
        return PoissonLikelihood()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 1))

    def targets(self):
        return torch.tensor([0.0, 1.0, 3.0, 0.0, 2.0, 5.0])

    def test_targets_outside_the_support_are_rejected(self):
        with pytest.raises(ValueError, match="support of Poisson"):
            self.make()(self.outputs(), torch.full((N,), 0.5))
        with pytest.raises(ValueError, match=r"shape \(N, \*\(\)\)"):
            self.make()(self.outputs(), torch.zeros(N, 2))


@pytest.mark.parametrize(
    "lik, y_of",
    [
        (StudentTLikelihood(), lambda x: x.sum(-1) + 0.1 * torch.randn(len(x))),
        (PoissonLikelihood(), lambda x: torch.poisson(x.sum(-1).exp())),
    ],
    ids=["student-t", "poisson"],
)
def test_a_family_defined_in_a_test_file_fits_predicts_and_decomposes(lik, y_of):
    """BNN.fit (trace-free and traced) and BNN.predict run on the generic defaults alone; the
    decomposition is the law of total variance (1e-12); the predictive mean is the mean of the
    family's means, and agrees with 2000 draws of y per posterior draw within 5 standard errors."""
    torch.manual_seed(0)
    x = torch.randn(20, 2)
    y = y_of(x)
    bnn = BNN(nn.Linear(2, 1), dist.Normal(0.0, 1.0), lik)
    result = bnn.fit(x, y, epochs=3, batch_size=10, lr=1e-2, progress=False)
    assert result.num_steps == 6 and all(math.isfinite(v) for v in result.elbo)
    pred = bnn.predict(x, num_samples=40, seed=1)
    assert pred.kind == "generic" and pred.samples.shape == (40, 20)
    d = pred.decompose()
    torch.testing.assert_close(d.total, d.aleatoric + d.epistemic, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pred.variance, d.total, rtol=1e-12, atol=1e-12)
    per_draw = pred.dist
    torch.testing.assert_close(pred.mean, per_draw.mean.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d.aleatoric, per_draw.variance.mean(0), rtol=1e-12, atol=1e-12)
    epistemic = per_draw.mean.var(0, correction=0)
    torch.testing.assert_close(d.epistemic, epistemic, rtol=1e-12, atol=1e-12)
    draws = per_draw.sample((2000,))  # (2000, S, N): the mixture, 80000 draws per input
    stderr = (d.total / draws[:, :, 0].numel()).sqrt()
    assert bool(((draws.mean((0, 1)) - pred.mean).abs() <= 5 * stderr).all())
    lower, upper = pred.interval(0.9)
    inside = ((lower <= draws) & (draws <= upper)).double().mean((0, 1))
    assert bool((inside > 0.88).all())  # Monte-Carlo interval: 90 % within 0.02
    if isinstance(lik, StudentTLikelihood):  # continuous: no atoms at the bounds
        assert bool((inside < 0.92).all())
