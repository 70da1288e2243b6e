"""Posterior types beyond SVI guides, behind one protocol (:class:`~pyro_bdl.inference.Posterior`).

Each type is one module and yields joint weight draws (``sample(num) -> Draws``) of the BNN's
model sites, so prediction, the uncertainty decomposition, the ArviZ export and distillation
teachers read it through the same paths as a fitted guide or MCMC draws.
"""

from __future__ import annotations

from .ensemble import DeepEnsemble, GuideMixture
from .laplace import Laplace, map_to_net
from .sgmcmc import SGHMC, SGLD, Cyclical
from .swag import SWAG, SWAGCollector

__all__ = [
    "SGHMC",
    "SGLD",
    "SWAG",
    "Cyclical",
    "DeepEnsemble",
    "GuideMixture",
    "Laplace",
    "SWAGCollector",
    "map_to_net",
]
