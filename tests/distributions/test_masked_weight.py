"""``pyro_bdl.distributions.masked_weight``: the dropout factor q(W) = M diag(z), its moments,
its mask frequencies, H(p), and its closed-form KL to a Gaussian prior (Gal & Ghahramani 2016)."""

import math

import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

from pyro_bdl.distributions.masked_weight import MaskedWeight, binary_entropy


def loc():
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(0))


def test_mean_is_keep_probability_times_m_and_m_for_a_point_mass():
    m = loc()
    q = MaskedWeight(m, torch.tensor(0.3), mask_dim=1)
    torch.testing.assert_close(q.mean, 0.7 * m, rtol=0, atol=1e-15)
    torch.testing.assert_close(MaskedWeight(m, torch.tensor(0.3), None).mean, m, rtol=0, atol=0)
    assert q.num_units == 4 and MaskedWeight(m, torch.tensor(0.3), 0).num_units == 3
    assert q.expand((2,)).mean.shape == (2, 3, 4)


@pytest.mark.parametrize("mask_dim", [0, 1])
def test_masks_zero_whole_units_with_frequency_p(mask_dim):
    torch.manual_seed(0)
    p, draws = 0.3, 20_000
    q = MaskedWeight(torch.ones(3, 4), torch.tensor(p), mask_dim=mask_dim)
    w = q.rsample((draws,))
    assert w.shape == (draws, 3, 4)
    assert bool(((w == 0) | (w == 1)).all())
    units = w.amax(dim=2 - mask_dim)  # (draws, K): one keep indicator per unit
    assert torch.equal(units, w.amin(dim=2 - mask_dim))  # a unit is kept or dropped whole
    keep = units.mean(0)
    # 5 standard errors of a Bernoulli(0.7) frequency over 20000 draws: 5 * 0.00324 = 0.0162
    tol = 5 * math.sqrt(p * (1 - p) / draws)
    assert (keep - (1 - p)).abs().max() < tol
    # units are independent: the pairwise co-drop frequency is p^2
    both = ((1 - units[:, 0]) * (1 - units[:, 1])).mean()
    assert abs(float(both) - p**2) < 5 * math.sqrt(p**2 * (1 - p**2) / draws)


def test_log_prob_is_the_log_probability_of_the_last_mask():
    torch.manual_seed(1)
    q = MaskedWeight(torch.ones(2, 5), torch.tensor(0.25), mask_dim=1)
    w = q.rsample((3,))
    kept = (w[:, 0, :] != 0).sum(-1).double()  # (3,)
    expected = kept * math.log(0.75) + (5 - kept) * math.log(0.25)
    torch.testing.assert_close(q.log_prob(w), expected, rtol=0, atol=1e-12)
    assert not MaskedWeight(torch.ones(2), torch.tensor(0.25), None).log_prob(torch.ones(2)).any()
    with pytest.raises(ValueError, match="no tractable log-density"):
        q.with_per_example_masks().log_prob(w)
    assert torch.equal(q.with_per_example_masks().rsample((2,)), torch.ones(2, 2, 5))


def test_binary_entropy_values():
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    h = binary_entropy(p)
    h01 = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))  # 0.3250829733914482
    expected = torch.tensor([0.0, h01, math.log(2.0), h01, 0.0])
    torch.testing.assert_close(h, expected, rtol=0, atol=1e-15)
    assert not torch.isnan(h).any()


def gaussian_prior(shape, length_scale):
    """N(0, 1/l^2) on every entry, as an Independent over the weight's shape."""
    return dist.Normal(0.0, 1.0 / length_scale).expand(shape).to_event(len(shape))


def test_kl_to_a_normal_prior_is_gals_closed_form_up_to_a_constant():
    l2, p = 4.0, torch.tensor(0.2)
    m1, m2 = loc(), 2 * loc() + 0.5
    prior = gaussian_prior((3, 4), math.sqrt(l2))
    kl1 = kl_divergence(MaskedWeight(m1, p, 1), prior)
    kl2 = kl_divergence(MaskedWeight(m2, p, 1), prior)
    # KL = (1 - p) l^2 / 2 ||M||^2 - K H(p) + const: differences in M leave the first term
    gal = (1 - 0.2) * l2 / 2 * float((m1**2).sum() - (m2**2).sum())
    assert float(kl1 - kl2) == pytest.approx(gal, rel=1e-12, abs=1e-12)
    # ... and differences in p at M = 0 leave -K H(p) (K = 4 input units)
    zero = torch.zeros(3, 4)
    kl_a = kl_divergence(MaskedWeight(zero, torch.tensor(0.1), 1), prior)
    kl_b = kl_divergence(MaskedWeight(zero, torch.tensor(0.5), 1), prior)
    h = binary_entropy(torch.tensor([0.1, 0.5]))
    assert float(kl_a - kl_b) == pytest.approx(-4 * float(h[0] - h[1]), rel=1e-12, abs=1e-12)


def test_kl_equals_a_monte_carlo_estimate_of_its_definition():
    torch.manual_seed(2)
    p, m = torch.tensor(0.3), loc()
    prior = gaussian_prior((3, 4), 2.0)
    q = MaskedWeight(m, p, 1)
    w = q.rsample((40_000,))
    cross = -prior.log_prob(w)  # E_q[-log p(W)]; the mask entropy is K H(p) exactly
    mc = cross.mean() - 4 * binary_entropy(p)
    closed = kl_divergence(q, prior)
    # 5 standard errors of the mean of the cross term
    assert abs(float(mc - closed)) < 5 * float(cross.std()) / math.sqrt(len(w))


def test_kl_is_not_implemented_for_other_priors_or_event_shapes():
    q = MaskedWeight(loc(), torch.tensor(0.3), 1)
    with pytest.raises(NotImplementedError):
        kl_divergence(q, dist.Laplace(0.0, 1.0).expand((3, 4)).to_event(2))
    with pytest.raises(NotImplementedError):  # the prior must cover the weight's event shape
        kl_divergence(q, dist.Normal(torch.zeros(3, 4), 0.5))
