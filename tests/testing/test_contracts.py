"""``pyro_bdl.testing`` itself: the suites catch a broken implementation, and need nothing
private. The built-in likelihoods, priors and posteriors run the suites next to their own tests
(``tests/likelihoods/``, ``tests/test_priors.py``, ``tests/inference/test_posterior_contract.py``).
"""

import pyro.distributions as dist
import pytest
import torch

import pyro_bdl.testing as testing
from pyro_bdl.inference import SamplesPosterior
from pyro_bdl.likelihoods import Likelihood
from pyro_bdl.priors import IIDPrior


def test_the_package_exports_the_three_contracts():
    assert testing.__all__ == ["LikelihoodContract", "PosteriorContract", "PriorContract"]
    for name in testing.__all__:
        cls = getattr(testing, name)
        assert not name.startswith("Test") and any(m.startswith("test_") for m in dir(cls))


class _WrongLogDensity(Likelihood):
    """A shortcut log_density that disagrees with predictive_dist: the contract must notice."""

    kind = "gaussian"  # its predictive distribution is a Normal: the closed form applies

    def predictive_dist(self, f, sample_ndim=0):
        return dist.Normal(f.squeeze(-1), 1.0)

    def log_density(self, f, y, sample_ndim=0):
        return super().log_density(f, y, sample_ndim) + 1e-9


class _Suite(testing.LikelihoodContract):
    def make(self):
        return _WrongLogDensity()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (self.num_data, 1))

    def targets(self):
        return torch.zeros(self.num_data)


def test_the_likelihood_contract_catches_a_wrong_shortcut():
    with pytest.raises(AssertionError):
        _Suite().test_log_density_equals_the_predictive_distributions_log_prob((3,))
    _Suite().test_prediction_has_sample_dim_first()  # the rest of it holds
    _Suite().test_closed_form_prediction_equals_the_generic_default()


class _ShuffledPosterior(SamplesPosterior):
    """Reads its fixed set from the wrong place: the contract must notice."""

    def sample(self, num, *, offset=0):
        return super().sample(num, offset=0)


def test_the_posterior_contract_catches_draws_out_of_order():
    class Suite(testing.PosteriorContract):
        def make(self):
            return _ShuffledPosterior({"w": torch.arange(10.0).reshape(5, 2)})

        def site_shapes(self):
            return {"w": torch.Size([2])}

    Suite().test_sample_returns_draws_with_the_sample_dim_first()
    with pytest.raises(AssertionError):
        Suite().test_fixed_set_is_read_in_order_from_offset()


def test_the_prior_contract_catches_a_lost_config():
    class Forgetful(IIDPrior):
        def config(self):
            return {"distribution": {"type": "Normal", "loc": 0.0, "scale": 1.0}}

    class Suite(testing.PriorContract):
        def make(self):
            return Forgetful(dist.Normal(0.0, 3.0))

        def rebuild(self, config):
            return Forgetful(dist.Normal(0.0, 1.0))

    Suite().test_site_dists_are_shaped_like_the_parameters()
    with pytest.raises(AssertionError):
        Suite().test_config_round_trip()
