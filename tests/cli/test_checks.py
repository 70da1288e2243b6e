"""``pyro_bdl.cli.checks`` and ``pyro_bdl.arviz.add_predictions``: LOO on the training rows,
the held-out rows in ArviZ's out-of-sample groups."""

import math

import pyro.distributions as dist
import torch
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.arviz import add_predictions, to_inference_data
from pyro_bdl.cli.checks import loo_summary
from pyro_bdl.inference import SamplesPosterior

from .helpers import psis_loo


def _fixed_draws_bnn():
    """A linear BNN and 40 fixed weight draws around w = 2, b = 0 (noise std 0.5)."""
    torch.manual_seed(0)
    bnn = BNN(nn.Linear(1, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.5))
    g = torch.Generator().manual_seed(1)
    draws = SamplesPosterior(
        {
            "weight": 2 + 0.05 * torch.randn(40, 1, 1, generator=g),
            "bias": 0.05 * torch.randn(40, 1, generator=g),
        }
    )
    return bnn, draws


def test_held_out_rows_go_to_the_predictions_groups_with_their_density():
    bnn, draws = _fixed_draws_bnn()
    g = torch.Generator().manual_seed(2)
    x = torch.linspace(-1, 1, 30).unsqueeze(-1)
    y = 2 * x[:, 0] + 0.5 * torch.randn(30, generator=g)
    x_new = torch.linspace(-1.5, 1.5, 7).unsqueeze(-1)
    y_new = 2 * x_new[:, 0] + 0.5 * torch.randn(7, generator=g)
    train = to_inference_data(draws, x, y, bnn=bnn)
    both = add_predictions(train, draws, x_new, y_new, bnn=bnn)
    assert both.log_likelihood["obs"].shape == (1, 40, 30)  # unchanged: what LOO reads
    assert both.predictions["obs"].shape == (1, 40, 7)
    assert both.predictions_constant_data["obs"].values.tolist() == y_new.tolist()
    # the fixed draws are the training export's draws: log p(y_new | W_s), exactly
    w = draws.samples["weight"][:, 0, 0].double()
    b = draws.samples["bias"][:, 0].double()
    mean = w[:, None] * x_new[:, 0].double() + b[:, None]  # (S, M)
    log_lik = torch.distributions.Normal(mean, 0.5).log_prob(y_new.double())
    assert torch.allclose(torch.as_tensor(both.predictions["obs_log_lik"].values[0]), log_lik)
    lpd = float((torch.logsumexp(log_lik, 0) - math.log(40)).sum())
    assert math.isclose(both.predictions.attrs["lpd"], lpd, rel_tol=1e-9)
    summary = loo_summary(both)
    assert summary.n == 30 and summary.n_held_out == 7
    assert math.isclose(summary.held_out, lpd / 7, rel_tol=1e-9)
    loo = psis_loo(both)
    assert math.isclose(summary.elpd, float(loo.elpd_loo) / 30, rel_tol=1e-9)
    assert math.isclose(summary.p_loo, float(loo.p_loo), rel_tol=1e-9)
    assert summary.khat_threshold == min(1 - 1 / math.log10(40), 0.7)
    assert summary.bad_khat == int((loo.pareto_k.values > summary.khat_threshold).sum())
