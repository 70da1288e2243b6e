"""Bayesian deep learning as probabilistic programs in Pyro.

Put a prior on the weights of any ``torch.nn.Module``, pick a likelihood, fit a guide by SVI and
predict with uncertainty::

    import pyro.distributions as dist
    from pyro_bdl import BNN, HomoskedasticGaussian

    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1))
    bnn.fit(x, y, epochs=500, lr=1e-2)
    pred = bnn.predict(x_test, num_samples=100)
    pred.decompose()  # total, aleatoric, epistemic

The names below are loaded on first use (PEP 562), so ``import pyro_bdl`` and the
``pyro-bdl --help`` command stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "BNN": "bnn",
    "DivergenceError": "bnn",
    "FitResult": "bnn",
    "AutoDropout": "guides",
    "AutoMeanFieldNormal": "guides",
    "MeanFieldNormal": "guides",
    "BernoulliDropout": "guides",
    "ConcreteDropout": "guides",
    "PyroGuide": "guides",
    "UnfittedGuideWarning": "bnn",
    "ELBOTerms": "infer",
    "elbo_terms": "infer",
    "Bernoulli": "likelihoods",
    "Categorical": "likelihoods",
    "HeteroskedasticGaussian": "likelihoods",
    "HomoskedasticGaussian": "likelihoods",
    "Likelihood": "likelihoods",
    "IIDPrior": "priors",
    "LayerwiseNormalPrior": "priors",
    "Prior": "priors",
    "ScaleMixturePrior": "priors",
    "ARDPrior": "hierarchical",
    "HorseshoePrior": "hierarchical",
    "LayerScalePrior": "hierarchical",
    "Prediction": "uncertainty",
    "decompose": "uncertainty",
}

__all__ = [
    "ARDPrior",
    "AutoDropout",
    "AutoMeanFieldNormal",
    "BNN",
    "Bernoulli",
    "BernoulliDropout",
    "Categorical",
    "ConcreteDropout",
    "DivergenceError",
    "ELBOTerms",
    "FitResult",
    "HeteroskedasticGaussian",
    "HomoskedasticGaussian",
    "HorseshoePrior",
    "IIDPrior",
    "LayerScalePrior",
    "LayerwiseNormalPrior",
    "Likelihood",
    "MeanFieldNormal",
    "Prediction",
    "Prior",
    "PyroGuide",
    "ScaleMixturePrior",
    "UnfittedGuideWarning",
    "__version__",
    "decompose",
    "distill",
    "elbo_terms",
]

if TYPE_CHECKING:
    from . import distill
    from .bnn import BNN, DivergenceError, FitResult, UnfittedGuideWarning
    from .guides import (
        AutoDropout,
        AutoMeanFieldNormal,
        BernoulliDropout,
        ConcreteDropout,
        MeanFieldNormal,
        PyroGuide,
    )
    from .hierarchical import ARDPrior, HorseshoePrior, LayerScalePrior
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


def __getattr__(name: str) -> Any:
    """Load a public name (or the ``distill`` module) on first use."""
    if name == "distill":
        value: Any = importlib.import_module(".distill", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, "distill"])
