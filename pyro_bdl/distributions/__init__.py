"""Distributions the likelihoods use beyond ``pyro.distributions`` (layer L0: torch and Pyro only).

- :mod:`~pyro_bdl.distributions.tempered`:
  :class:`~pyro_bdl.distributions.tempered.TemperedCategorical` and
  :class:`~pyro_bdl.distributions.tempered.DistillationCategorical`, categorical distributions
  observed through probability vectors, and :func:`~pyro_bdl.distributions.tempered.stack_targets`
  for their ``(N, 2, C)`` observations;
- :mod:`~pyro_bdl.distributions.expected_normal`:
  :class:`~pyro_bdl.distributions.expected_normal.ExpectedNormal`, a Normal observed through the
  mean and variance of a Gaussian target;
- :mod:`~pyro_bdl.distributions.config`: plain-data descriptions of ``pyro.distributions``
  objects, as priors and likelihoods write them into checkpoints.
"""

from .config import distribution_config, distribution_from_config
from .expected_normal import ExpectedNormal
from .tempered import DistillationCategorical, TemperedCategorical, stack_targets

__all__ = [
    "TemperedCategorical",
    "DistillationCategorical",
    "ExpectedNormal",
    "stack_targets",
    "distribution_config",
    "distribution_from_config",
]
