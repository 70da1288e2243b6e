"""Bayesian deep learning as probabilistic programs in Pyro.

Put a prior on the weights of any ``torch.nn.Module``, pick a likelihood, fit a guide by SVI and
predict with uncertainty::

    import pyro.distributions as dist
    from pyro_bdl import BNN, HomoskedasticGaussian

    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
    bnn.fit(x, y, epochs=500, lr=1e-2)
    pred = bnn.predict(x_test, num_samples=100)
    pred.decompose()  # total, aleatoric, epistemic
"""

__version__ = "0.1.0"

from . import distill
from .bnn import BNN, DivergenceError, FitResult
from .guides import AutoMeanFieldNormal, MeanFieldNormal
from .infer import ELBOTerms, elbo_terms
from .likelihoods import (
    Bernoulli,
    Categorical,
    HeteroskedasticGaussian,
    HomoskedasticGaussian,
    Likelihood,
)
from .priors import IIDPrior, LayerwiseNormalPrior, Prior, ScaleMixturePrior
from .uncertainty import Prediction, decompose

__all__ = [
    "BNN",
    "distill",
    "AutoMeanFieldNormal",
    "Bernoulli",
    "Categorical",
    "DivergenceError",
    "ELBOTerms",
    "FitResult",
    "HeteroskedasticGaussian",
    "HomoskedasticGaussian",
    "IIDPrior",
    "LayerwiseNormalPrior",
    "Likelihood",
    "MeanFieldNormal",
    "Prediction",
    "Prior",
    "ScaleMixturePrior",
    "decompose",
    "elbo_terms",
    "__version__",
]
