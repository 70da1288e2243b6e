"""The contract suite of a :class:`~pyro_bdl.priors.Prior`."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from ..priors import Prior, prior_from_config

__all__ = ["PriorContract"]


class PriorContract:
    """Subclass it as ``Test<YourPrior>`` and provide :meth:`make` (and optionally :meth:`net`,
    :meth:`rebuild`, :attr:`expected_random`).

    Checks, on every parameter the prior makes random: the site distribution has batch shape
    ``()``, event shape the parameter's, its dtype; draws have shape ``(S, *param.shape)``; its
    log density is the sum of the elementwise prior's (``1e-12``, float64); the ``config()``
    round trip rebuilds a prior with the same random parameters and the same densities (exact).

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl.priors import IIDPrior
        >>> from pyro_bdl.testing import PriorContract
        >>> class TestStandardNormal(PriorContract):
        ...     def make(self):
        ...         return IIDPrior(dist.Normal(0.0, 1.0))
        >>> TestStandardNormal().test_site_dists_are_shaped_like_the_parameters()  # passes
    """

    #: parameter names :meth:`make` must select on :meth:`net` (``None``: not checked).
    expected_random: tuple[str, ...] | None = None

    def make(self) -> Prior:
        """The prior under test (a fresh one per call)."""
        raise NotImplementedError

    def net(self) -> nn.Module:
        """A network to put the prior on (default: a two-layer MLP, 3 -> 4 -> 2)."""
        return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))

    def rebuild(self, config: dict[str, Any]) -> Prior:
        """A prior from :meth:`~pyro_bdl.priors.Prior.config`'s output (the ``include``
        predicate is not part of it and is passed on).

        Default: :func:`~pyro_bdl.priors.prior_from_config` for the package's own classes,
        else the class called with the config as keyword arguments.
        """
        prior = self.make()
        cls = type(prior)
        if cls.__module__.startswith("pyro_bdl."):
            return prior_from_config(cls.__name__, config, include=prior.include)
        return cls(**config)

    def _params(self, prior: Prior) -> list[tuple[str, nn.Parameter]]:
        params = prior.random_parameters(self.net())
        assert params, "the prior selects no parameter"
        return params

    def test_selects_parameters_of_the_net(self) -> None:
        net = self.net()
        names = [name for name, _ in self.make().random_parameters(net)]
        assert names and set(names) <= dict(net.named_parameters()).keys()
        if self.expected_random is not None:
            assert tuple(names) == tuple(self.expected_random)

    def test_site_dists_are_shaped_like_the_parameters(self) -> None:
        prior = self.make()
        for name, param in self._params(prior):
            d = prior.site_dist(name, param)
            assert d.batch_shape == () and d.event_shape == param.shape, name
            draws = d.sample((5,))
            assert draws.shape == (5,) + param.shape and draws.dtype == param.dtype, name
            lp = d.log_prob(draws)
            assert lp.shape == (5,) and bool(torch.isfinite(lp).all()), name

    def test_site_density_is_the_sum_of_the_elementwise_prior(self) -> None:
        prior = self.make()
        for name, param in self._params(prior):
            d = prior.site_dist(name, param)
            w = d.sample((3,))
            elementwise = prior.prior_dist(name, param)
            if elementwise.event_shape:  # a joint prior over the parameter: nothing to sum
                expected = elementwise.log_prob(w)
            else:
                expected = elementwise.log_prob(w).reshape(3, -1).sum(-1)
            torch.testing.assert_close(d.log_prob(w), expected, rtol=1e-12, atol=1e-12)

    def test_config_round_trip(self) -> None:
        prior = self.make()
        config = prior.config()
        if config is None:
            pytest.skip("this prior cannot be described by a config")
        rebuilt = self.rebuild(config)
        assert type(rebuilt) is type(prior) and rebuilt.config() == config
        params, again = self._params(prior), self._params(rebuilt)
        assert [n for n, _ in params] == [n for n, _ in again]
        for name, param in params:
            w = prior.site_dist(name, param).sample((3,))
            torch.testing.assert_close(
                rebuilt.site_dist(name, param).log_prob(w),
                prior.site_dist(name, param).log_prob(w),
                rtol=0,
                atol=0,
            )
