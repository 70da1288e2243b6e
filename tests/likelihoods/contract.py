"""The likelihood contract now ships as :class:`pyro_bdl.testing.LikelihoodContract`; this
module keeps the names the likelihood tests import (``LikelihoodContract``, ``N``)."""

from pyro_bdl.testing import LikelihoodContract

#: number of data points of every contract's outputs and targets.
N = LikelihoodContract.num_data

__all__ = ["LikelihoodContract", "N"]
