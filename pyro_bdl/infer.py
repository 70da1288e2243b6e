"""Alias of :mod:`pyro_bdl.inference.elbo`: the ELBO split into its two terms.

Example::

    >>> from pyro_bdl.infer import ELBOTerms, elbo_terms
"""

from .inference.elbo import PARTICLE_PLATE, ELBOTerms, elbo_terms

__all__ = ["ELBOTerms", "elbo_terms", "PARTICLE_PLATE"]
