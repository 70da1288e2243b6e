"""Posterior files: save_posterior / load_posterior around each type's to_state / from_state."""

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.inference import SamplesPosterior
from pyro_bdl.posteriors import Laplace
from pyro_bdl.serialization import CheckpointError, load_posterior, save_posterior


def _linear_bnn():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=g)
    y = x @ torch.tensor([1.0, -2.0]) + 0.3 * torch.randn(30, generator=g)
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    return BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.3)), x, y


def test_samples_posterior_file_round_trip_is_bitwise(tmp_path):
    bnn, x, _ = _linear_bnn()
    g = torch.Generator().manual_seed(1)
    draws = {"weight": torch.randn(6, 1, 2, generator=g), "bias": torch.randn(6, 1, generator=g)}
    post = SamplesPosterior(draws, chains=2)
    back = load_posterior(save_posterior(post, tmp_path / "s.pt"), bnn)
    assert back.chains == 2
    a = bnn.predict(x, 6, posterior=post).samples
    assert torch.equal(bnn.predict(x, 6, posterior=back).samples, a)


def test_laplace_file_round_trip_predicts_bitwise(tmp_path):
    bnn, x, y = _linear_bnn()
    with torch.no_grad():  # a least-squares fit: the MAP is close enough for a round trip
        bnn.net.weight.copy_(torch.tensor([[1.0, -2.0]]))
    lap = Laplace(bnn, hessian="full")
    lap.fit(x, y)
    back = load_posterior(save_posterior(lap, tmp_path / "l.pt"), bnn)
    assert type(back) is Laplace
    a = bnn.predict(x, 8, posterior=lap, seed=3).samples
    assert torch.equal(bnn.predict(x, 8, posterior=back, seed=3).samples, a)


def test_files_that_hold_no_posterior_or_unknown_types_are_refused(tmp_path):
    bnn, _, _ = _linear_bnn()
    bnn.mark_fitted()
    bnn.save(tmp_path / "bnn.pt")
    with pytest.raises(CheckpointError, match="Expected a posterior file"):
        load_posterior(tmp_path / "bnn.pt", bnn)

    class Odd:
        def to_state(self):
            return {"type": "Odd"}, {}

    with pytest.raises(ValueError, match="Expected a posterior type among"):
        load_posterior(save_posterior(Odd(), tmp_path / "odd.pt"), bnn)
    with pytest.raises(TypeError, match="Expected a posterior with to_state"):
        save_posterior(object(), tmp_path / "x.pt")


@pytest.mark.parametrize("kind", ["DeepEnsemble", "SWAG", "SGLD"])
def test_every_posterior_type_goes_through_the_file(kind, tmp_path):
    """Ensemble, SWAG and SG-MCMC draws: save_posterior -> load_posterior predicts bitwise."""
    from pyro_bdl.posteriors import SGLD, SWAG, DeepEnsemble

    bnn, x, y = _linear_bnn()
    if kind == "DeepEnsemble":
        post = DeepEnsemble(bnn, 2, seeds=[1, 2])
        post.fit(x, y, epochs=3, lr=0.01)
    elif kind == "SWAG":
        post = SWAG(bnn, rank=3, per="step", start=2)
        post.fit(x, y, epochs=2, batch_size=10, lr=1e-3, seed=0)
    else:
        post = SGLD(bnn, lr=1e-4).run(x, y, num_samples=5, burn_in=3, seed=0)
    back = load_posterior(save_posterior(post, tmp_path / "p.pt"), bnn)
    assert type(back) is type(post)
    num = post.num_draws or 4  # a fixed set is read whole
    a = bnn.predict(x, num, posterior=post, seed=5).samples
    assert torch.equal(bnn.predict(x, num, posterior=back, seed=5).samples, a)


def test_laplace_exports_to_arviz_as_independent_draws():
    """A posterior that draws afresh (Laplace) is exported as one chain of independent draws."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing")
        from pyro_bdl.arviz import to_inference_data

    bnn, x, y = _linear_bnn()
    lap = Laplace(bnn, hessian="diag")
    lap.fit(x, y)
    data = to_inference_data(lap, x, y, bnn=bnn, num_samples=7, seed=0)
    post = data["posterior"]
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 7
    assert post.attrs["posterior_type"] == "Laplace" and post.attrs["independent_draws"] == 1
    assert data["log_likelihood"]["obs"].shape == (1, 7, len(x))


def test_the_glm_predictive_carries_no_graph():
    """predict_glm returns plain tensors even with a learned noise scale (plots call numpy())."""
    bnn, x, y = _linear_bnn()
    bnn = BNN(bnn.net, dist.Normal(0.0, 1.0), HomoskedasticGaussian())  # learned scale
    lap = Laplace(bnn, hessian="full")
    lap.fit(x, y)
    pred = lap.predict_glm(x)
    parts = pred.decompose()
    for t in (pred.samples, pred.scale, parts.epistemic, parts.aleatoric, parts.total):
        assert not t.requires_grad
    pred.mean.numpy()


def _short_map_fit():
    from pyro.infer.autoguide import AutoDelta

    from pyro_bdl.datasets import toy_regression
    from pyro_bdl.posteriors import map_to_net

    x, y, _ = toy_regression(100, seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 20), nn.Tanh(), nn.Linear(20, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.2), guide=AutoDelta)
    bnn.fit(x, y, epochs=30, lr=1e-2, seed=0, progress=False)
    map_to_net(bnn, x)
    return bnn, x, y


@pytest.mark.parametrize("hessian", ["kron", "diag", "full"])
def test_laplace_evidence_of_weights_that_are_no_mode_stays_bounded(hessian):
    """A MAP fit stopped early is not stationary: the evidence is taken at the fixed weights.

    With the Gauss-Newton step from such weights (which assumes them stationary), log Z grew
    like 1/λ as λ -> 0 (last layer, "kron": 794, 1.3e5, 1.3e7 at λ = 1e-4, 1e-6, 1e-8) and
    optimize_prior could walk off to λ ≈ 3e-5 (the posteriors tutorial, float32).
    """
    bnn, x, y = _short_map_fit()
    lap = Laplace(bnn, hessian=hessian, subset="last_layer").fit(x, y)
    assert not lap.stationary and lap.stationarity > 1e-2
    values = [float(lap.log_marginal_likelihood(lam)) for lam in (1.0, 1e-2, 1e-4, 1e-6, 1e-8)]
    # a vanishing prior costs evidence (the Occam factor ½ log λ per curved direction)
    assert all(b < a for a, b in zip(values[1:-1], values[2:], strict=True)), values
    mean = lap.mean.clone()
    lap.optimize_prior(steps=200)
    assert float(lap.prior_precision.min()) > 1e-2, lap.prior_precision
    torch.testing.assert_close(lap.mean, mean, rtol=0, atol=0)  # the weights stay the mode


def test_laplace_of_a_closed_form_map_is_stationary():
    """The exact MAP of Bayesian linear regression is a mode: stationarity at rounding level."""
    bnn, x, y = _linear_bnn()
    phi = torch.cat([x, torch.ones(len(x), 1)], 1)
    prec = torch.eye(3) + phi.T @ phi / 0.3**2
    w = torch.linalg.solve(prec, phi.T @ y / 0.3**2)
    with torch.no_grad():
        bnn.net.weight.copy_(w[:2].reshape(1, 2))
        bnn.net.bias.copy_(w[2:])
    lap = Laplace(bnn, hessian="full").fit(x, y)
    assert lap.stationary and lap.stationarity < 1e-10
