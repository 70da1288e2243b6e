"""The Likelihood base: dataset_size checks; the shortcuts subclasses override (log_density,
prediction_from_outputs) equal the generic path through predictive_dist."""

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_bdl.likelihoods.classification import Bernoulli, Categorical
from pyro_bdl.likelihoods.gaussian import HeteroskedasticGaussian, HomoskedasticGaussian

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
