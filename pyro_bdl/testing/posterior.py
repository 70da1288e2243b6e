"""The contract suite of a :class:`~pyro_bdl.inference.Posterior` (a source of draws)."""

from __future__ import annotations

from collections.abc import Mapping

import pyro
import pytest
import torch
from torch import Tensor
from torch.distributions import Distribution

from ..inference import Draws, Posterior, predict, run_model
from ..likelihoods import OBS
from ..model import BayesianModel
from ..uncertainty import Prediction

__all__ = ["PosteriorContract"]

#: The seed both sides of a comparison draw under.
SEED = 3


class PosteriorContract:
    """Subclass it as ``Test<YourPosterior>`` and provide :meth:`make` and :meth:`site_shapes`;
    for the prediction tests also :meth:`model` and :meth:`inputs`.

    Checks: the object is a :class:`~pyro_bdl.inference.Posterior`; ``sample(num)`` returns
    :class:`~pyro_bdl.inference.Draws` with ``(num, *shape)`` per site and the same draws under
    the same seed; a fixed set (``num_draws`` an int) is read in order from ``offset`` and
    refuses draws beyond it; :func:`~pyro_bdl.inference.predict` with one draw per chunk equals
    a Python loop over the same draws, one model run per draw, to ``1e-12`` (float64), and for
    a fixed set :func:`predict` in chunks of :attr:`chunk` equals that loop to ``1e-10``.

    Example::

        >>> import torch
        >>> from pyro_bdl.inference import SamplesPosterior
        >>> from pyro_bdl.testing import PosteriorContract
        >>> class TestStack(PosteriorContract):
        ...     def make(self):
        ...         return SamplesPosterior({"w": torch.arange(12.0).reshape(6, 2)})
        ...     def site_shapes(self):
        ...         return {"w": torch.Size([2])}
        >>> TestStack().test_fixed_set_is_read_in_order_from_offset()  # passes
    """

    #: draws per test (at most ``num_draws`` of a fixed set).
    num: int = 5
    #: draws per chunk in the chunked prediction test.
    chunk: int = 2

    def make(self) -> Posterior:
        """The posterior under test (a fresh one per call, or the same fitted one)."""
        raise NotImplementedError

    def site_shapes(self) -> Mapping[str, torch.Size]:
        """``{site: shape}`` every draw must hold (other sites may be present too)."""
        raise NotImplementedError

    def model(self) -> BayesianModel | None:
        """The model the posterior belongs to, or ``None`` to skip the prediction tests."""
        return None

    def inputs(self) -> Tensor | None:
        """Inputs ``(N, ...)`` to predict at (with :meth:`model`)."""
        return None

    # ----------------------------------------------------------------------------- tests
    def test_is_a_posterior(self) -> None:
        post = self.make()
        assert isinstance(post, Posterior)
        assert post.num_draws is None or (
            isinstance(post.num_draws, int) and post.num_draws >= self.num
        )

    def test_sample_returns_draws_with_the_sample_dim_first(self) -> None:
        draws = self.make().sample(self.num)
        assert isinstance(draws, Draws) and draws.num == self.num
        for site, shape in self.site_shapes().items():
            assert site in draws.sites, f"no draws of {site!r}"
            assert draws.sites[site].shape == (self.num,) + tuple(shape), site
        for site, value in draws.sites.items():
            assert value.shape[0] == self.num, site

    def test_same_seed_same_draws(self) -> None:
        post = self.make()
        pyro.set_rng_seed(SEED)
        first = post.sample(self.num)
        pyro.set_rng_seed(SEED)
        second = post.sample(self.num)
        for site, value in first.sites.items():
            torch.testing.assert_close(second.sites[site], value, rtol=0, atol=0)

    def test_fixed_set_is_read_in_order_from_offset(self) -> None:
        post = self.make()
        total = post.num_draws
        if total is None:
            pytest.skip("this posterior draws afresh on every call (no fixed set)")
        everything = post.sample(total)
        for offset in range(total):
            for num in (1, total - offset):
                part = post.sample(num, offset=offset)
                for site, value in everything.sites.items():
                    expected = value[offset : offset + num]
                    torch.testing.assert_close(part.sites[site], expected, rtol=0, atol=0)
        with pytest.raises(ValueError):
            post.sample(2, offset=total - 1)

    def _loop(self, model: BayesianModel, post: Posterior, x: Tensor, num: int) -> Prediction:
        """The reference: the draws one at a time, one model run each, in a Python loop."""
        weights = set(model.site_names)
        outputs: list[Tensor] = []
        parts: list[Prediction] = []
        for j in range(num):
            draws = post.sample(1, offset=j)
            if set(draws.sites) == weights:
                outputs.append(
                    model.outputs(draws.sites, x, input_fns=draws.input_fns, by_site=True)
                )
            else:
                fn = run_model(model, draws, x).nodes[OBS]["fn"]
                assert isinstance(fn, Distribution)
                parts.append(model.likelihood.prediction(fn))
        if outputs:
            return model.likelihood.prediction_from_outputs(torch.cat(outputs), 1)
        return Prediction.cat(parts)

    def _predict_and_loop(self, chunk: int) -> tuple[Prediction, Prediction]:
        model, x, post = self.model(), self.inputs(), self.make()
        if model is None or x is None:
            pytest.skip("no model() and inputs() to predict with")
        pyro.set_rng_seed(SEED)
        pred = predict(model, post, x, self.num, chunk=chunk)
        assert pred is not None
        pyro.set_rng_seed(SEED)
        return pred, self._loop(model, post, x, self.num)

    @staticmethod
    def _assert_same(got: Prediction, expected: Prediction, tol: float) -> None:
        assert got.kind == expected.kind and got.num_samples == expected.num_samples
        torch.testing.assert_close(got.samples, expected.samples, rtol=tol, atol=tol)
        if expected.scale is None:
            assert got.scale is None
        else:
            assert got.scale is not None
            torch.testing.assert_close(got.scale, expected.scale, rtol=tol, atol=tol)

    def test_predict_equals_a_loop_over_the_same_draws(self) -> None:
        pred, loop = self._predict_and_loop(chunk=1)
        self._assert_same(pred, loop, 1e-12)

    def test_chunked_predict_of_a_fixed_set_equals_the_loop(self) -> None:
        if self.make().num_draws is None:
            pytest.skip("fresh draws depend on the chunk sizes; see the one-draw test")
        pred, loop = self._predict_and_loop(chunk=self.chunk)
        self._assert_same(pred, loop, 1e-10)
