"""Guides q_M(W): builders ``model -> AutoGuide``.

:class:`MeanFieldNormal` builds an :class:`AutoMeanFieldNormal`, a fully factorised Gaussian that
starts at the network's current weights and emits ``Normal`` sites for real-support latents, so
the KL to a Gaussian prior is computed in closed form. :class:`BernoulliDropout` and
:class:`ConcreteDropout` build an :class:`AutoDropout` (MC dropout as variational inference).
Any Pyro autoguide class (``AutoDelta``, ``AutoLowRankMultivariateNormal``, ...) or callable
``model -> guide`` is accepted in their place, and so is a hand-written Pyro guide
``guide(x, y=None, **kwargs)`` (:class:`PyroGuide`; see :mod:`pyro_bdl.guides.custom` for how a
guide is told from a builder, and how its parameters are saved).

Guides never see a ``BNN``: their hooks (``trace_free_sampler(priors, model)``,
``estimator_context(model, training)``) get the :class:`~pyro_bdl.model.BayesianModel`.
Reading a dropout network as a posterior and exporting one lives in
:mod:`pyro_bdl.workflows.dropout_nets`.

Example::

    >>> from pyro_bdl.guides import BernoulliDropout, MeanFieldNormal
    >>> MeanFieldNormal(1e-3)
    MeanFieldNormal(init_scale=0.001, init_loc='net')
    >>> BernoulliDropout(0.1)
    BernoulliDropout(p=0.1, estimator='per_example')
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ..distributions.masked_weight import MaskedWeight, relaxed_keep_mask
from .builders import GuideLike, build_guide, guide_config, guide_from_config
from .custom import InitialValues, PyroGuide, guide_or_builder
from .dropout import AutoDropout, BernoulliDropout, ConcreteDropout
from .handlers import LinearOutputNoise, PerExampleMasks
from .mean_field import AutoMeanFieldNormal, MeanFieldNormal

__all__ = [
    "AutoDropout",
    "AutoMeanFieldNormal",
    "BernoulliDropout",
    "ConcreteDropout",
    "GuideLike",
    "InitialValues",
    "LinearOutputNoise",
    "MaskedWeight",
    "MeanFieldNormal",
    "PerExampleMasks",
    "PyroGuide",
    "build_guide",
    "guide_config",
    "guide_from_config",
    "guide_or_builder",
    "relaxed_keep_mask",
]


def __getattr__(name: str) -> Any:
    """``to_dropout_net``: deprecated here (one release), see
    :func:`pyro_bdl.workflows.dropout_nets.to_dropout_net`."""
    if name == "to_dropout_net":
        warnings.warn(
            "pyro_bdl.guides.to_dropout_net moved to pyro_bdl.workflows.dropout_nets."
            "to_dropout_net (a guide never sees a BNN); this alias is removed in the next "
            "release.",
            FutureWarning,
            stacklevel=2,
        )
        return importlib.import_module("..workflows.dropout_nets", __name__).to_dropout_net
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
