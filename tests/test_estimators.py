"""Local reparameterization and flipout: the same ELBO as weight sampling, with less variance."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.bnn import UnfittedGuideWarning
from pyro_bdl.guides import LinearOutputNoise
from pyro_bdl.infer import elbo_terms
from pyro_bdl.inference.elbo import TracedELBO, TraceFreeELBO
from pyro_bdl.likelihoods import OBS
from pyro_bdl.priors import ScaleMixturePrior

from .test_bnn import conjugate_problem, exact_elbo, linear_bnn

ESTIMATORS = ("sample", "local_reparameterization", "flipout")


def _outputs(bnn, x, num):
    """Network outputs of ``num`` vectorised draws of guide + model, under the fit's estimator."""
    with torch.no_grad(), bnn.estimator(), pyro.plate("particles", num, dim=-2):
        guide_trace = poutine.trace(bnn.guide).get_trace(x, None)
        model_trace = poutine.trace(poutine.replay(bnn.model, trace=guide_trace)).get_trace(x, None)
    return model_trace.nodes[OBS]["fn"].mean  # (num, N)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_each_output_keeps_its_marginal_and_examples_decorrelate(estimator):
    """Every estimator gives each output its exact marginal N(x mu + mu_b, x^2 s^2 + s_b^2)
    (mean within 5 s.e., variance within 6 %, 40 000 draws); local reparameterization and
    flipout make two examples' outputs uncorrelated but for the shared bias, while whole-weight
    draws correlate them by x_1 x_2 s^2 (covariances within 0.02)."""
    torch.manual_seed(0)
    bnn = BNN(
        nn.Linear(3, 1),
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(0.1),
        guide=MeanFieldNormal(init_scale=0.5, estimator=estimator),
    )
    x = torch.tensor([[1.0, -2.0, 0.5], [0.5, 1.0, 2.0]])
    bnn.ensure_guide(x)
    (w_loc, w_scale), (b_loc, b_scale) = (bnn.guide.loc_scale()[k] for k in ("weight", "bias"))
    f = _outputs(bnn, x, 40000)
    mean = x @ w_loc[0] + b_loc
    var = x**2 @ w_scale[0] ** 2 + b_scale**2
    se = (var / len(f)).sqrt()
    assert ((f.mean(0) - mean).abs() / se).max() < 5
    torch.testing.assert_close(f.var(0), var, rtol=0.06, atol=0.0)
    cov = torch.cov(f.T)[0, 1]
    shared = b_scale[0] ** 2 + (estimator == "sample") * (x[0] * x[1] * w_scale[0] ** 2).sum()
    assert abs(cov - shared) < 0.02, (cov, shared)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimators_are_unbiased_for_the_closed_form_elbo(estimator):
    """Conjugate linear regression: 40 000 particles of each estimator's ELBO agree with the
    closed-form ELBO within 0.25 nats (per-particle sd < 10 nats)."""
    x, y, *_ = conjugate_problem()
    bnn = linear_bnn(MeanFieldNormal(init_scale=0.1, estimator=estimator))
    bnn.ensure_guide(x)
    loc, scale = (t.squeeze(0) for t in bnn.guide.loc_scale()["weight"])
    with torch.no_grad(), bnn.estimator():
        terms = elbo_terms(bnn.model, bnn.guide, x, y, num_particles=40000)
    assert abs(terms.elbo - exact_elbo(x, y, loc, scale)) < 0.25


def test_per_example_noise_lowers_the_variance_of_the_estimate():
    """Same guide, 400 one-particle estimates each: local reparameterization and flipout have a
    smaller spread of the expected log-likelihood than whole-weight draws (measured sd ratios
    0.37 and 0.58 here; 0.30-0.38 and 0.34-0.92 over other networks and guide scales, so flipout's
    gain varies; asserted < 0.6 and < 0.8)."""
    x, y, *_ = conjugate_problem()
    sds = {}
    for estimator in ESTIMATORS:
        pyro.clear_param_store()
        torch.manual_seed(0)  # the same network (and guide) for every estimator
        bnn = linear_bnn(MeanFieldNormal(init_scale=0.3, estimator=estimator), name=estimator)
        bnn.ensure_guide(x)
        torch.manual_seed(1)
        with torch.no_grad(), bnn.estimator():
            values = torch.stack(
                [elbo_terms(bnn.model, bnn.guide, x, y).loglik for _ in range(400)]
            )
        sds[estimator] = float(values.std())
    assert sds["local_reparameterization"] < 0.6 * sds["sample"], sds
    assert sds["flipout"] < 0.8 * sds["sample"], sds


@pytest.mark.parametrize("estimator", ESTIMATORS[1:])
def test_fit_with_an_estimator_reaches_the_closed_form_posterior(estimator):
    """The estimators change the noise of the gradient, not its target: a fit ends at the
    conjugate posterior (means within 10 % of a posterior sd, sds within 10 %)."""
    x, y, mean, std, _ = conjugate_problem()
    bnn = linear_bnn(MeanFieldNormal(init_scale=0.1, estimator=estimator))
    bnn.fit(
        x,
        y,
        epochs=1500,
        optim=pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.997}),
        num_particles=8,
        progress=False,
        seed=1,
    )
    assert isinstance(bnn.fit_state.objective, TracedELBO)  # the estimators: Pyro's traced ELBO
    loc, scale = (t.squeeze(0) for t in bnn.guide.loc_scale()["weight"])
    assert ((loc - mean).abs() / std).max() < 0.1, (loc, mean)
    torch.testing.assert_close(scale, std, rtol=0.1, atol=0.0)


def test_predict_draws_whole_weights_and_bad_settings_are_refused():
    """predict ignores the training estimator (same draws as estimator='sample'); settings that
    cannot work are refused with what to do."""
    x, y, *_ = conjugate_problem()
    preds = []
    for estimator in ("sample", "flipout"):
        pyro.clear_param_store()
        torch.manual_seed(0)
        bnn = linear_bnn(MeanFieldNormal(init_scale=0.3, estimator=estimator), name="p")
        bnn.ensure_guide(x)
        assert isinstance(bnn.estimator(), LinearOutputNoise) == (estimator == "flipout")
        with pytest.warns(UnfittedGuideWarning):  # (deliberately the initial guide)
            preds.append(bnn.predict(x, 20, seed=2).samples)
    torch.testing.assert_close(preds[0], preds[1], rtol=0, atol=0)

    with pytest.raises(ValueError, match="estimator in"):
        MeanFieldNormal(estimator="reparam")
    mixture = ScaleMixturePrior(0.5, 1.0, 0.01)
    bnn = BNN(
        nn.Linear(3, 1),
        mixture,
        HomoskedasticGaussian(0.5),
        guide=MeanFieldNormal(estimator="local_reparameterization"),
    )
    with pytest.raises(ValueError, match="Gaussian prior"):
        bnn.fit(x, y, epochs=1, progress=False)
    conv = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2, 1))
    bnn = BNN(
        conv,
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(0.5),
        guide=MeanFieldNormal(estimator="flipout"),
        include=lambda n, p: n.startswith("0."),
    )
    with pytest.raises(ValueError, match="nn.Linear"):
        bnn.fit(torch.randn(4, 1, 3), torch.randn(4), epochs=1, progress=False)


def _chain():
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))  # run as a Linear chain


def _nested():
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Sequential(nn.Linear(8, 1)))  # hooks


@pytest.mark.parametrize("make_net", [_chain, _nested])
@pytest.mark.parametrize("estimator", ESTIMATORS[1:])
def test_trace_free_estimator_step_equals_the_traced_step(estimator, make_net):
    """Local reparameterization and flipout on the trace-free path (own draws, per-example
    output noise from the same random calls, fused optimiser) equal Pyro's traced ELBO under
    LinearOutputNoise: 15 epochs, same seed, ELBO history and parameters within 1e-12, on a
    Linear chain and on a net whose layers the forward hooks."""
    x, y, *_ = conjugate_problem()
    assert x.shape[1] == 3
    runs = []
    for elbo in ("auto", "traced"):
        pyro.clear_param_store()
        torch.manual_seed(0)
        guide = MeanFieldNormal(init_scale=0.1, estimator=estimator)
        bnn = BNN(make_net(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=guide)
        result = bnn.fit(
            x, y, epochs=15, batch_size=10, progress=False, seed=0, elbo=elbo,
            optim=pyro.optim.Adam({"lr": 0.01}),
        )  # fmt: skip
        assert isinstance(bnn.fit_state.objective, TraceFreeELBO) is (elbo == "auto")
        runs.append((result.step_elbo, dict(bnn.named_parameters())))
    (e_fast, p_fast), (e_slow, p_slow) = runs
    torch.testing.assert_close(torch.tensor(e_fast), torch.tensor(e_slow), rtol=1e-12, atol=1e-12)
    for k in p_fast:
        torch.testing.assert_close(p_fast[k], p_slow[k], rtol=1e-12, atol=1e-12)
    # more than one particle: each particle's noise is drawn under vmap, so Pyro's traced path
    bnn.fit(x, y, epochs=1, num_particles=2, progress=False)
    assert isinstance(bnn.fit_state.objective, TracedELBO)
    with pytest.raises(ValueError, match="trace-free ELBO.*one particle at a time"):
        bnn.fit(x, y, epochs=1, num_particles=2, progress=False, elbo="trace_free")
