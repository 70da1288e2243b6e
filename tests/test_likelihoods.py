"""Likelihoods: one "obs" site, exact log densities, data-plate scaling, shape and dtype checks.

``LikelihoodContract`` is a reusable base: a new likelihood gets the whole suite by subclassing it
and providing ``make``, ``outputs`` (f of shape (N, ...)), ``targets`` and ``direct_log_prob``.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from pyro_bdl.likelihoods import (
    Bernoulli,
    Categorical,
    HeteroskedasticGaussian,
    HomoskedasticGaussian,
)

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


class TestCategorical(LikelihoodContract):
    def make(self):
        return Categorical()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 4))

    def targets(self):
        return torch.tensor([0, 1, 2, 3, 0, 1])

    def direct_log_prob(self, lik, f, y):
        idx = y.expand(f.shape[:-1]).unsqueeze(-1)
        return F.log_softmax(f, -1).gather(-1, idx).squeeze(-1)

    def test_label_checks(self):
        lik, f = self.make(), self.outputs()
        with pytest.raises(TypeError, match="integer class labels .* got dtype torch.float64"):
            lik(f, torch.zeros(N))
        with pytest.raises(ValueError, match=r"labels in \[0, 3\] .* got label 4"):
            lik(f, torch.tensor([0, 1, 2, 3, 4, 0]))
        with pytest.raises(ValueError, match="labels >= 0"):
            lik(f, torch.tensor([0, 1, 2, 3, -1, 0]))
        with pytest.raises(ValueError, match=r"shape \(N, num_classes\)"):
            lik(torch.randn(N), torch.zeros(N, dtype=torch.long))


class TestBernoulli(LikelihoodContract):
    def make(self):
        return Bernoulli()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 1))

    def targets(self):
        return torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])

    def direct_log_prob(self, lik, f, y):
        p = torch.sigmoid(f.squeeze(-1))
        return y * p.log() + (1 - y) * (1 - p).log()

    def test_non_binary_targets(self):
        with pytest.raises(ValueError, match=r"binary targets in \{0, 1\}"):
            self.make()(self.outputs(), torch.full((N,), 0.5))


class TestHomoskedasticGaussian(LikelihoodContract):
    def make(self):
        return HomoskedasticGaussian(scale=0.7)

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 1))

    def targets(self):
        return torch.linspace(-1, 1, N)

    def direct_log_prob(self, lik, f, y):
        r = y - f.squeeze(-1)
        return -0.5 * math.log(2 * math.pi * 0.49) - r**2 / (2 * 0.49)

    def test_target_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"y of shape \(N, \*\(\)\) .* per-datum shape \(2,\)"):
            self.make()(self.outputs(), torch.zeros(N, 2))

    def test_y_with_trailing_one_is_accepted(self):
        lik = self.make()
        torch.testing.assert_close(lik(self.outputs(), self.targets()[:, None]), self.targets())

    def test_vector_targets_are_one_event(self):
        d = self.make().predictive_dist(torch.zeros(N, 3))
        assert d.batch_shape == (N,) and d.event_shape == (3,)

    def test_scale_options(self):
        with pytest.raises(ValueError, match="either a fixed scale or a precision_prior"):
            HomoskedasticGaussian(1.0, precision_prior=dist.Gamma(1.0, 1.0))
        with pytest.raises(ValueError, match="scale > 0"):
            HomoskedasticGaussian(-1.0)
        with pytest.raises(ValueError, match="positive support"):
            HomoskedasticGaussian(precision_prior=dist.Normal(0.0, 1.0))
        learned = HomoskedasticGaussian()
        trace = poutine.trace(learned).get_trace(torch.zeros(N, 1), torch.zeros(N))
        torch.testing.assert_close(trace.nodes["obs"]["fn"].scale, torch.ones(N))
        with_prior = HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 2.0))
        trace = poutine.trace(with_prior).get_trace(torch.zeros(N, 1), torch.zeros(N))
        assert "precision" in trace.nodes and not trace.nodes["precision"]["is_observed"]
        prec = trace.nodes["precision"]["value"]
        torch.testing.assert_close(trace.nodes["obs"]["fn"].scale, prec.rsqrt().expand(N))


class TestHeteroskedasticGaussian(LikelihoodContract):
    def make(self):
        return HeteroskedasticGaussian()

    def outputs(self, sample_shape=()):
        return torch.randn(sample_shape + (N, 2))

    def targets(self):
        return torch.linspace(-1, 1, N)

    def direct_log_prob(self, lik, f, y):
        scale = F.softplus(f[..., 1]) + 1e-6
        return torch.distributions.Normal(f[..., 0], scale).log_prob(y)

    def test_odd_output_width_is_rejected(self):
        with pytest.raises(ValueError, match="multiple of 2"):
            self.make()(torch.zeros(N, 3), torch.zeros(N))


def test_dataset_size_checks():
    with pytest.raises(ValueError, match="positive int"):
        Categorical(dataset_size=0)
    with pytest.raises(ValueError, match="dataset_size >= the batch size"):
        Categorical(dataset_size=2)(torch.zeros(N, 3), torch.zeros(N, dtype=torch.long))


@pytest.mark.parametrize(
    "lik, out, target",
    [
        (HomoskedasticGaussian(0.3), (7, 1), (7,)),
        (HomoskedasticGaussian(0.3), (7, 2), (7, 2)),
        (HomoskedasticGaussian(), (7, 1), (7,)),
        (HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0)), (7, 1), (7,)),
        (HeteroskedasticGaussian(), (7, 2), (7,)),
        (Categorical(), (7, 4), None),
        (Bernoulli(), (7, 1), None),
    ],
    ids=["fixed", "fixed-2d", "learned", "precision-prior", "hetero", "categorical", "bernoulli"],
)
@pytest.mark.parametrize("sample_shape", [(), (3,)])
def test_log_density_equals_the_predictive_distributions_log_prob(lik, out, target, sample_shape):
    """The trace-free step's log density is the distribution's log_prob (float64, 1e-12), with
    a sampled precision drawn alike (same seed)."""
    torch.manual_seed(0)
    f = torch.randn(sample_shape + out)
    if isinstance(lik, Categorical):
        y = torch.randint(0, out[-1], out[:1])
    elif isinstance(lik, Bernoulli):
        y = torch.randint(0, 2, out[:1]).double()
    else:
        y = torch.randn(target)
    ndim = len(sample_shape)
    y = lik.check_target(y, f, ndim)
    expected = poutine.seed(lik.predictive_dist, rng_seed=2)(f, ndim).log_prob(y)
    got = poutine.seed(lik.log_density, rng_seed=2)(f, y, ndim)
    assert got.shape == sample_shape + out[:1]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "lik, out",
    [
        (HomoskedasticGaussian(0.3), (7, 1)),
        (HomoskedasticGaussian(0.3), (7, 2)),
        (HomoskedasticGaussian(), (7, 1)),
        (HeteroskedasticGaussian(), (7, 2)),
        (Categorical(), (7, 4)),
        (Bernoulli(), (7, 1)),
    ],
    ids=["fixed", "fixed-2d", "learned", "hetero", "categorical", "bernoulli"],
)
def test_prediction_from_outputs_equals_the_prediction_of_the_predictive_distribution(lik, out):
    """The shortcut predict uses builds the same Prediction (samples, scale; float64, exact)."""
    torch.manual_seed(0)
    f = torch.randn((5,) + out)
    got = lik.prediction_from_outputs(f, 1)
    expected = lik.prediction(lik.predictive_dist(f, 1))
    assert got.kind == expected.kind
    torch.testing.assert_close(got.samples, expected.samples, rtol=0, atol=0)
    if expected.scale is None:
        assert got.scale is None
    else:
        torch.testing.assert_close(got.scale, expected.scale, rtol=0, atol=0)
