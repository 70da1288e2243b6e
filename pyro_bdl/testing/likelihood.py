"""The contract suite of a :class:`~pyro_bdl.likelihoods.Likelihood`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pyro
import pytest
import torch
from pyro import poutine
from torch import Tensor

from ..likelihoods import OBS, Likelihood, likelihood_from_config
from ..uncertainty import Prediction

__all__ = ["LikelihoodContract"]

#: The seed every random call of a likelihood (a sampled noise precision) runs under.
SEED = 2


def _close(got: Tensor, expected: Tensor) -> None:
    """Agreement of a closed form with the generic default: 1e-10, relative and absolute."""
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def _seeded(fn: Callable[..., Any]) -> Callable[..., Any]:
    return poutine.seed(fn, rng_seed=SEED)


class LikelihoodContract:
    """Subclass it as ``Test<YourLikelihood>`` and provide :meth:`make`, :meth:`outputs` and
    :meth:`targets`; optionally :meth:`direct_log_prob`, :meth:`rebuild` and the attributes.

    Tolerances (float64): log densities to ``1e-12``; the closed-form prediction equals the
    generic default of :meth:`~pyro_bdl.uncertainty.Prediction.from_dist` on the same draws to
    ``1e-10`` (mixture log density, mean, variance, decomposition), and its central 90 %
    interval is within :attr:`interval_atol` predictive standard deviations of the
    Monte-Carlo one (``mc_draws`` draws of ``y`` per posterior draw).

    Example::

        >>> import torch
        >>> from pyro_bdl.likelihoods import Bernoulli
        >>> from pyro_bdl.testing import LikelihoodContract
        >>> class TestBernoulli(LikelihoodContract):
        ...     def make(self):
        ...         return Bernoulli()
        ...     def outputs(self, sample_shape=()):
        ...         return torch.randn(sample_shape + (self.num_data, 1))
        ...     def targets(self):
        ...         return torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
        >>> TestBernoulli().test_rejects_wrong_number_of_rows()  # pytest runs every test_*
    """

    #: number of data points N of :meth:`outputs` and :meth:`targets`.
    num_data: ClassVar[int] = 6
    #: whether :meth:`~pyro_bdl.likelihoods.Likelihood.prediction` is the predictive
    #: distribution's (``False`` for a likelihood whose prediction is something else on
    #: purpose, e.g. a distillation student's untempered probabilities).
    prediction_is_predictive: ClassVar[bool] = True
    #: Monte-Carlo draws of ``y`` per posterior draw for the generic default.
    mc_draws: ClassVar[int] = 20000
    #: tolerance of the Monte-Carlo interval, in predictive standard deviations.
    interval_atol: ClassVar[float] = 0.05

    # ------------------------------------------------------------------------------ hooks
    def make(self) -> Likelihood:
        """The likelihood under test (a fresh one per call)."""
        raise NotImplementedError

    def outputs(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        """Network outputs ``sample_shape + (N, ...)``, random (the session seed is fixed)."""
        raise NotImplementedError

    def targets(self) -> Tensor:
        """Valid targets ``(N, ...)`` for :meth:`outputs`."""
        raise NotImplementedError

    def direct_log_prob(self, lik: Likelihood, f: Tensor, y: Tensor) -> Tensor:
        """Log density per datum computed by hand, shape ``f.shape[:-k]`` (optional).

        Without it, the reference is ``predictive_dist(f).log_prob(y)`` under the same seed.
        """
        raise NotImplementedError

    def rebuild(self, config: dict[str, Any]) -> Likelihood:
        """A likelihood from :meth:`~pyro_bdl.likelihoods.Likelihood.config`'s output.

        Default: :func:`~pyro_bdl.likelihoods.likelihood_from_config` for the package's own
        classes, else the class called with the config as keyword arguments.
        """
        cls = type(self.make())
        if cls.__module__.startswith("pyro_bdl."):
            return likelihood_from_config(cls.__name__, config)
        return cls(**config)

    # ---------------------------------------------------------------------------- helpers
    def _reference(self, lik: Likelihood, f: Tensor, y: Tensor, sample_ndim: int) -> Tensor:
        if type(self).direct_log_prob is not LikelihoodContract.direct_log_prob:
            return self.direct_log_prob(lik, f, y)
        y = lik.check_target(y, f, sample_ndim)
        return _seeded(lik.predictive_dist)(f, sample_ndim).log_prob(y)

    def _obs(self, lik: Likelihood, *args: Any, **kwargs: Any) -> dict[str, Any]:
        trace = _seeded(poutine.trace(lik).get_trace)(*args, **kwargs)
        trace.compute_log_prob()
        return trace.nodes[OBS]

    # ------------------------------------------------------------------------------ tests
    def test_one_obs_site_with_exact_log_prob(self) -> None:
        lik, f, y = self.make(), self.outputs(), self.targets()
        trace = _seeded(poutine.trace(lik).get_trace)(f, y)
        observed = [n for n, s in trace.nodes.items() if s["type"] == "sample" and s["is_observed"]]
        assert observed == [OBS]
        trace.compute_log_prob()
        torch.testing.assert_close(
            trace.nodes[OBS]["log_prob"], self._reference(lik, f, y, 0), rtol=1e-12, atol=1e-12
        )

    def test_plate_scales_a_minibatch_to_the_dataset(self) -> None:
        lik, f, y, n = self.make(), self.outputs(), self.targets(), self.num_data
        obs = self._obs(lik, f[:2], y[:2], dataset_size=n)
        expected = n / 2 * self._reference(lik, f[:2], y[:2], 0).sum()
        torch.testing.assert_close(obs["log_prob_sum"], expected, rtol=1e-12, atol=1e-12)
        assert obs["scale"] == pytest.approx(n / 2)

    def test_sample_dims_broadcast_against_the_data_plate(self) -> None:
        lik, f, y = self.make(), self.outputs(sample_shape=(4,)), self.targets()
        with pyro.plate("particles", 4, dim=-2):
            lp = self._obs(lik, f, y, sample_ndim=1)["log_prob"]
            expected = self._reference(lik, f, y, 1)
        assert lp.shape == (4, self.num_data)  # one row per particle: the data counted once
        torch.testing.assert_close(lp, expected, rtol=1e-12, atol=1e-12)

    def test_rejects_wrong_number_of_rows(self) -> None:
        lik, f, y = self.make(), self.outputs(), self.targets()
        with pytest.raises(ValueError, match=f"Expected y with {self.num_data} rows"):
            lik(f, y[:-1])

    def test_rejects_nan_targets(self) -> None:
        lik, f, y = self.make(), self.outputs(), self.targets()
        if not y.is_floating_point():
            pytest.skip("integer targets cannot be NaN")
        y = y.clone()
        y[0] = float("nan")
        with pytest.raises(ValueError, match="Expected finite values in y"):
            lik(f, y)

    @pytest.mark.parametrize("sample_shape", [(), (3,)])
    def test_log_density_equals_the_predictive_distributions_log_prob(
        self, sample_shape: tuple[int, ...]
    ) -> None:
        lik, f = self.make(), self.outputs(sample_shape)
        ndim = len(sample_shape)
        y = lik.check_target(self.targets(), f, ndim)
        expected = _seeded(lik.predictive_dist)(f, ndim).log_prob(y)
        got = _seeded(lik.log_density)(f, y, ndim)
        assert got.shape == f.shape[: ndim + 1]
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)

    def test_prediction_has_sample_dim_first(self) -> None:
        lik, f = self.make(), self.outputs(sample_shape=(3,))
        with pyro.plate("draws", 3, dim=-2):
            trace = _seeded(poutine.trace(lik).get_trace)(f, sample_ndim=1)
        pred = lik.prediction(trace.nodes[OBS]["fn"])
        assert isinstance(pred, Prediction)
        assert pred.kind == lik.kind and pred.num_samples == 3
        assert pred.samples.shape[:2] == (3, self.num_data)

    def test_prediction_from_outputs_equals_the_prediction_of_the_predictive_distribution(
        self,
    ) -> None:
        lik, f = self.make(), self.outputs(sample_shape=(5,))
        got = _seeded(lik.prediction_from_outputs)(f, 1)
        expected = lik.prediction(_seeded(lik.predictive_dist)(f, 1))
        assert got.kind == expected.kind
        torch.testing.assert_close(got.samples, expected.samples, rtol=1e-12, atol=1e-12)
        if expected.scale is None:
            assert got.scale is None
        else:
            assert got.scale is not None
            torch.testing.assert_close(got.scale, expected.scale, rtol=1e-12, atol=1e-12)

    def test_closed_form_prediction_equals_the_generic_default(self) -> None:
        if not self.prediction_is_predictive:
            pytest.skip("this likelihood's prediction is not its predictive distribution")
        with torch.no_grad():  # as in prediction: a learned scale carries no gradient there
            self._compare_closed_form_and_generic()

    def _compare_closed_form_and_generic(self) -> None:
        lik, f = self.make(), self.outputs(sample_shape=(3,))
        d = _seeded(lik.predictive_dist)(f, 1)
        closed = lik.prediction(d)
        generic = Prediction.from_dist(d, closed_form=False, mc_draws=self.mc_draws)
        y = lik.check_target(self.targets(), f, 1)
        _close(closed.log_prob(y), generic.log_prob(y))
        if closed.kind in ("gaussian", "bernoulli", "generic"):
            _close(closed.mean, generic.mean)
            _close(closed.variance, generic.variance)
        if closed.kind in ("gaussian", "generic"):
            a, b = closed.decompose(), generic.decompose()
            for field in ("total", "aleatoric", "epistemic"):
                _close(a[field], b[field])
        if closed.kind == "gaussian" and closed.scale is not None:
            atol = self.interval_atol * float(closed.std.max())
            for got, mc in zip(closed.interval(0.9), generic.interval(0.9), strict=True):
                torch.testing.assert_close(got, mc, rtol=0.0, atol=atol)

    def test_config_round_trip(self) -> None:
        lik = self.make()
        config = lik.config()
        if config is None:
            pytest.skip("this likelihood cannot be described by a config")
        rebuilt = self.rebuild(config)
        assert type(rebuilt) is type(lik) and rebuilt.config() == config
        f = self.outputs()
        y = lik.check_target(self.targets(), f, 0)
        torch.testing.assert_close(
            _seeded(rebuilt.log_density)(f, y), _seeded(lik.log_density)(f, y), rtol=0, atol=0
        )
