"""``LikelihoodContract``: a reusable base, so a new likelihood gets the whole suite by subclassing.

Subclasses provide ``make``, ``outputs`` (f of shape (N, ...)), ``targets`` and
``direct_log_prob``.
"""

import pyro
import pytest
import torch
from pyro import poutine

N = 6


class LikelihoodContract:
    def make(self):
        raise NotImplementedError

    def outputs(self, sample_shape=()):
        raise NotImplementedError

    def targets(self):
        raise NotImplementedError

    def direct_log_prob(self, lik, f, y):
        """Per-datum log density computed by hand in float64, shape (..., N)."""
        raise NotImplementedError

    def test_one_obs_site_with_exact_log_prob(self):
        lik, f, y = self.make(), self.outputs(), self.targets()
        trace = poutine.trace(lik).get_trace(f, y)
        sites = [n for n, s in trace.nodes.items() if s["type"] == "sample" and s["is_observed"]]
        assert sites == ["obs"]
        trace.compute_log_prob()
        torch.testing.assert_close(
            trace.nodes["obs"]["log_prob"], self.direct_log_prob(lik, f, y), rtol=1e-12, atol=1e-12
        )

    def test_plate_scales_a_minibatch_to_the_dataset(self):
        lik, f, y = self.make(), self.outputs(), self.targets()
        full = poutine.trace(lik).get_trace(f, y)
        full.compute_log_prob()
        scaled = poutine.trace(lik).get_trace(f[:2], y[:2], dataset_size=N)
        scaled.compute_log_prob()
        expected = N / 2 * self.direct_log_prob(lik, f[:2], y[:2]).sum()
        torch.testing.assert_close(scaled.nodes["obs"]["log_prob_sum"], expected)
        assert scaled.nodes["obs"]["scale"] == pytest.approx(N / 2)

    def test_sample_dims_broadcast_against_the_data_plate(self):
        lik = self.make()
        f = self.outputs(sample_shape=(4,))
        with pyro.plate("particles", 4, dim=-2):
            trace = poutine.trace(lik).get_trace(f, self.targets(), sample_ndim=1)
        trace.compute_log_prob()
        lp = trace.nodes["obs"]["log_prob"]
        assert lp.shape == (4, N)  # one row per particle: the data is not counted 4 times
        torch.testing.assert_close(lp, self.direct_log_prob(lik, f, self.targets()))

    def test_rejects_wrong_number_of_rows(self):
        lik, f, y = self.make(), self.outputs(), self.targets()
        with pytest.raises(ValueError, match=f"Expected y with {N} rows"):
            lik(f, y[:-1])

    def test_rejects_nan_targets(self):
        lik, f, y = self.make(), self.outputs(), self.targets()
        if not y.is_floating_point():
            pytest.skip("integer targets cannot be NaN")
        y = y.clone()
        y[0] = float("nan")
        with pytest.raises(ValueError, match="Expected finite values in y"):
            lik(f, y)

    def test_prediction_has_sample_dim_first(self):
        lik = self.make()
        f = self.outputs(sample_shape=(3,))
        with pyro.plate("draws", 3, dim=-2):
            trace = poutine.trace(lik).get_trace(f, sample_ndim=1)
        pred = lik.prediction(trace.nodes["obs"]["fn"])
        assert pred.kind == lik.kind and pred.num_samples == 3
        assert pred.samples.shape[:2] == (3, N)
