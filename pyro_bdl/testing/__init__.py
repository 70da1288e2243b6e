"""Contract test suites for new priors, likelihoods and posteriors: subclass, set, run pytest.

Each base is a plain pytest class (no ``unittest``) whose ``test_*`` methods check what every
implementation of the interface must satisfy. A subclass named ``Test...`` in a test module
provides the few hooks the base names (``make``, example outputs or inputs, ...), and pytest
collects the whole suite for it:

- :class:`LikelihoodContract`: one ``"obs"`` site, minibatch scaling, sample dims, target checks,
  ``log_density`` = ``predictive_dist(...).log_prob`` (1e-12), the prediction's shapes, the
  closed-form prediction = the Monte-Carlo default of
  :meth:`~pyro_bdl.uncertainty.Prediction.from_dist`, the ``config()`` round trip;
- :class:`PriorContract`: site distributions shaped like the parameters, their density the sum
  of the elementwise prior, the ``config()`` round trip;
- :class:`PosteriorContract`: ``sample(num)`` gives :class:`~pyro_bdl.inference.Draws` of shape
  ``(S, *shape)`` per site, fixed sets read in order from ``offset``, and
  :func:`~pyro_bdl.inference.predict` equals a Python loop over the same draws.

The suites need ``pytest`` (a test dependency, not a runtime one) and run in the dtype the test
session sets (the package's own tests run in float64, where the stated tolerances hold).

Example (a new likelihood family, in a user's test file)::

    import torch
    from torch.distributions import Poisson
    from pyro_bdl.likelihoods import Likelihood
    from pyro_bdl.testing import LikelihoodContract

    class PoissonLikelihood(Likelihood):
        def predictive_dist(self, f, sample_ndim=0):
            return Poisson(f.squeeze(-1).exp())

    class TestPoissonLikelihood(LikelihoodContract):
        def make(self):
            return PoissonLikelihood()

        def outputs(self, sample_shape=()):
            return torch.randn(sample_shape + (self.num_data, 1))

        def targets(self):
            return torch.tensor([0.0, 1.0, 3.0, 0.0, 2.0, 5.0])
"""

from .likelihood import LikelihoodContract
from .posterior import PosteriorContract
from .prior import PriorContract

__all__ = ["LikelihoodContract", "PosteriorContract", "PriorContract"]
