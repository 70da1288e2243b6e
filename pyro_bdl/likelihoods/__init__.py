"""Likelihoods p(y | f_W(x)): each emits exactly one ``"obs"`` site under the data plate.

The data plate is ``pyro.plate("data", size=dataset_size, subsample=...)``, so a minibatch of B
points is scaled by ``dataset_size / B`` and the ELBO is the full-data ELBO for any minibatch.

Network outputs ``f`` have shape ``sample_shape + (N,) + out_shape``, where ``sample_shape`` are
leading draw dimensions (``sample_ndim`` of them: particles or posterior draws).

- :mod:`~pyro_bdl.likelihoods.base`: the :class:`Likelihood` base, :data:`OBS`,
  :data:`PRECISION`, shared checks and :func:`likelihood_from_config`;
- :mod:`~pyro_bdl.likelihoods.classification`: :class:`Categorical`, :class:`Bernoulli`;
- :mod:`~pyro_bdl.likelihoods.gaussian`: :class:`HomoskedasticGaussian`,
  :class:`HeteroskedasticGaussian`;
- :mod:`~pyro_bdl.likelihoods.distillation`: ``Distillation`` and ``GaussianDistillation``
  (documented with :mod:`pyro_bdl.distill`).
"""

from .base import (
    OBS,
    PRECISION,
    ElementwiseLikelihood,
    Likelihood,
    base_distribution,
    check_outputs,
    likelihood_from_config,
)
from .classification import Bernoulli, Categorical
from .distillation import Distillation, GaussianDistillation
from .gaussian import HeteroskedasticGaussian, HomoskedasticGaussian

__all__ = [
    "Likelihood",
    "Categorical",
    "Bernoulli",
    "HomoskedasticGaussian",
    "HeteroskedasticGaussian",
    "OBS",
    "PRECISION",
    "Distillation",
    "GaussianDistillation",
    "ElementwiseLikelihood",
    "check_outputs",
    "base_distribution",
    "likelihood_from_config",
]
