"""Hand-written Pyro guides as BNN guides (issue #15, item 1), and predicting from an untrained
guide (item 10).

The ground truth is Bayesian linear regression with a known noise and an orthogonal design,
whose posterior is a diagonal Gaussian: a hand-written mean-field guide can be exact, and at the
exact posterior log p(W, y) - log q(W) is the log evidence for every draw.
"""

from __future__ import annotations

import math
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.arviz import psis_khat, to_inference_data
from pyro_bdl.bnn import UnfittedGuideWarning
from pyro_bdl.guides import PyroGuide, guide_or_builder
from pyro_bdl.inference import SamplesPosterior
from pyro_bdl.inference.elbo import TracedELBO, make_objective
from pyro_bdl.serialization import read_checkpoint
from pyro_bdl.workflows.dropout_nets import from_dropout_net

N, D, SIGMA, ALPHA = 40, 3, 0.5, 1.0


def conjugate_problem():
    """x with orthogonal columns (X^T X = diag(16, 4, 1)): the posterior of w is diagonal."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(N, D, generator=g))
    x = q * torch.tensor([4.0, 2.0, 1.0])
    y = x @ torch.tensor([1.0, -0.5, 0.3]) + SIGMA * torch.randn(N, generator=g)
    cov = torch.linalg.inv(x.T @ x / SIGMA**2 + torch.eye(D) / ALPHA**2)
    mean = cov @ x.T @ y / SIGMA**2
    log_evidence = dist.MultivariateNormal(
        torch.zeros(N), SIGMA**2 * torch.eye(N) + ALPHA**2 * x @ x.T
    ).log_prob(y)
    return x, y, mean, cov.diag().sqrt(), log_evidence


def make_guide(net: nn.Module, prefix: str = "q", calls: list | None = None):
    """The tutorial's mean-field guide: a location and a positive scale per weight."""

    def guide(x, y=None):
        if calls is not None:
            calls.append(len(x))
        for name, p in net.named_parameters():
            loc = pyro.param(f"{prefix}.{name}.loc", torch.zeros_like(p))
            scale = pyro.param(
                f"{prefix}.{name}.scale", torch.full_like(p, 0.1), constraint=constraints.positive
            )
            pyro.sample(name, dist.Normal(loc, scale).to_event(p.dim()))

    return guide


def linear_bnn(guide=None) -> BNN:
    net = nn.Linear(D, 1, bias=False)
    return BNN(net, dist.Normal(0.0, ALPHA), HomoskedasticGaussian(scale=SIGMA), guide=guide)


def hand_written_bnn(prefix: str = "q") -> BNN:
    net = nn.Linear(D, 1, bias=False)
    guide = make_guide(net, prefix)
    return BNN(net, dist.Normal(0.0, ALPHA), HomoskedasticGaussian(scale=SIGMA), guide=guide)


def set_guide(prefix: str, loc: torch.Tensor, scale: torch.Tensor) -> None:
    store = pyro.get_param_store()
    store[f"{prefix}.weight.loc"] = loc.reshape(1, D)
    store[f"{prefix}.weight.scale"] = scale.reshape(1, D)


# =============================================================== a guide is not a builder
def test_a_hand_written_guide_plugs_in_and_fits_the_exact_posterior():
    x, y, mean, std, log_evidence = conjugate_problem()
    bnn = hand_written_bnn()
    assert isinstance(bnn.guide, PyroGuide) and bnn.guide.fn.__name__ == "guide"
    result = bnn.fit(
        x,
        y,
        epochs=1500,
        optim=pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.997}),
        num_particles=16,
        progress=False,
        seed=1,
    )
    loc = pyro.param("q.weight.loc").detach().squeeze(0)
    scale = pyro.param("q.weight.scale").detach().squeeze(0)
    # tolerance: 5 % of the posterior std for the mean, 5 % relative for the std (the same
    # tolerances as the built-in MeanFieldNormal's test of this problem)
    assert ((loc - mean).abs() / std).max() < 0.05, (loc, mean)
    torch.testing.assert_close(scale, std, rtol=0.05, atol=0.0)
    # the ELBO reported is in nats per datum; at the optimum it is the log evidence
    tail = sum(result.elbo[-200:]) / 200 * N
    assert abs(tail - log_evidence) < 0.5
    assert bnn.guide.param_names == ["q.weight.loc", "q.weight.scale"]


def test_a_hand_written_guide_takes_the_traced_estimator():
    x, y, *_ = conjugate_problem()
    bnn = hand_written_bnn()
    objective = make_objective(bnn.bayesian_model, bnn.guide, (x[:2], y[:2]), N)
    assert isinstance(objective, TracedELBO)  # elbo="auto" falls back to Pyro's traced ELBO
    with pytest.raises(ValueError, match="trace_free_sampler"):
        bnn.fit(x, y, epochs=1, elbo="trace_free", progress=False)


def test_the_guide_gets_only_the_arguments_its_signature_accepts():
    x, y, *_ = conjugate_problem()
    net = nn.Linear(D, 1, bias=False)
    seen: list[dict] = []
    inner = make_guide(net)

    def with_kwargs(x, y=None, **kwargs):
        seen.append(dict(kwargs))
        inner(x, y)

    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(SIGMA), guide=with_kwargs)
    bnn.fit(x, y, epochs=2, batch_size=20, progress=False)
    assert {"dataset_size": N} in seen  # **kwargs: everything the engine passes
    calls: list[int] = []
    only_x = make_guide(net, "x_only", calls)

    def no_y(x):  # one positional parameter: a builder by signature, a guide by PyroGuide
        only_x(x)

    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(SIGMA), guide=PyroGuide(no_y))
    bnn.fit(x, y, epochs=2, batch_size=20, progress=False)  # called as guide(x, y, dataset_size=)
    assert calls and set(calls) == {20}


def test_builders_and_guides_are_told_apart_and_ambiguity_is_refused():
    net = nn.Linear(D, 1, bias=False)
    guide = make_guide(net)

    def guide_requiring_y(x, y):
        guide(x, y)

    assert guide_or_builder(guide) == "guide"
    assert guide_or_builder(guide_requiring_y) == "guide"
    assert guide_or_builder(lambda model: AutoNormal(model)) == "builder"
    assert guide_or_builder(AutoNormal) == "builder"  # the class: model -> guide
    # a builder returning the hand-written guide works too
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(SIGMA), guide=lambda m: guide)
    assert isinstance(bnn.guide, PyroGuide) and bnn.guide.fn is guide
    x, y, *_ = conjugate_problem()
    bnn.fit(x, y, epochs=1, progress=False)  # no "unexpected keyword argument 'dataset_size'"

    def build_with_rank(model, rank=2):
        return AutoNormal(model)

    for ambiguous in (lambda *args: None, build_with_rank):
        with pytest.raises(TypeError, match=r"PyroGuide\(fn\).*lambda model: fn\(model\)"):
            BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(SIGMA), guide=ambiguous)
    with pytest.raises(TypeError, match="guide function"):
        BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(SIGMA), guide="meanfield")


def test_assigning_a_guide():
    x, y, *_ = conjugate_problem()
    bnn = linear_bnn()
    bnn.guide = make_guide(bnn.net)  # was: torch's "cannot assign ... as child module" error
    assert isinstance(bnn.guide, PyroGuide) and "guide" not in dict(bnn.named_children())
    bnn.fit(x, y, epochs=2, progress=False)
    assert pyro.param("q.weight.loc").shape == (1, D)
    bnn.guide = MeanFieldNormal(0.05)  # and back to a builder: a child module again
    assert type(bnn.guide).__name__ == "AutoMeanFieldNormal" and bnn.guide_spec.init_scale == 0.05
    assert "guide" in dict(bnn.named_children())
    # an AutoGuide fitted by plain SVI cannot become a child module (Pyro does not re-parent a
    # module that has run): it is used as a PyroGuide, and predicts what it learned
    other = AutoNormal(bnn.model)
    svi = SVI(bnn.model, other, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(20):
        svi.step(x, y)
    bnn.guide = other
    assert isinstance(bnn.guide, PyroGuide) and bnn.guide.fn is other
    pred = bnn.predict(x, 4000, seed=0)
    expected = x @ other.median()["weight"].reshape(D)
    torch.testing.assert_close(pred.mean, expected, atol=0.05, rtol=0.0)
    with pytest.raises(TypeError, match="guide function"):
        bnn.guide = 3


# ============================================================ predict, save/load, ArviZ, PSIS
def test_predict_save_and_load_with_a_hand_written_guide(tmp_path):
    x, y, mean, std, _ = conjugate_problem()
    bnn = hand_written_bnn()
    bnn.fit(x, y, epochs=30, lr=0.05, progress=False, seed=0)
    set_guide("q", mean, std)  # the exact posterior, so the predictive is known
    pred = bnn.predict(x, 20000, seed=0)
    # the predictive mean is x @ E[w]: Monte-Carlo error of 20000 draws, sd < 0.01 here
    torch.testing.assert_close(pred.mean, x @ mean, atol=0.03, rtol=0.0)
    reference = bnn.predict(x[:7], 50, seed=1).samples
    path = bnn.save(tmp_path / "posterior.pt")
    config, tensors = read_checkpoint(path)
    assert config["bnn"]["guide"] is None
    assert config["bnn"]["guide_params"] == ["q.weight.loc", "q.weight.scale"]
    torch.testing.assert_close(tensors["pyro_param/q.weight.loc"], mean.reshape(1, D))
    torch.testing.assert_close(tensors["pyro_param/q.weight.scale"].exp(), std.reshape(1, D))

    pyro.clear_param_store()  # a new session: the values come from the file
    net = nn.Linear(D, 1, bias=False)
    with pytest.raises(ValueError, match="hand-written.*guide=my_guide"):
        BNN.load(path, net=net)
    with pytest.raises(ValueError, match="hand-written guide the posterior was saved with"):
        BNN.load(path, net=net, guide=MeanFieldNormal())
    with pytest.raises(ValueError, match="create the saved parameter"):
        BNN.load(path, net=net, guide=make_guide(net, prefix="other"))
    pyro.clear_param_store()
    loaded = BNN.load(path, net=net, guide=make_guide(net))
    assert torch.equal(loaded.predict(x[:7], 50, seed=1).samples, reference)  # bitwise
    assert loaded.fitted


def test_psis_and_arviz_export_with_a_hand_written_guide():
    x, y, mean, std, log_evidence = conjugate_problem()
    bnn = hand_written_bnn()
    bnn.fit(x, y, epochs=2, progress=False)
    set_guide("q", mean, std)  # q(W) = p(W | y): every ratio p(W, y) / q(W) is the evidence
    res = psis_khat(bnn, x, y, num_samples=300, seed=0)
    torch.testing.assert_close(
        torch.from_numpy(res.log_ratios),
        torch.full((300,), float(log_evidence)),
        rtol=0.0,
        atol=1e-8,
    )
    set_guide("q", mean, std / 3)  # too narrow: heavy-tailed ratios, k̂ far above 0.7
    assert psis_khat(bnn, x, y, num_samples=300, seed=0).khat > 0.7

    set_guide("q", mean, std)
    idata = to_inference_data(bnn, x, y, num_samples=200, seed=0, var_names=["weight"])
    w = torch.from_numpy(idata.posterior["weight"].values)  # (chain, draw, 1, D)
    assert w.shape == (1, 200, 1, D)
    draws = w.reshape(200, D)
    torch.testing.assert_close(draws.mean(0), mean, atol=4 * std.max() / math.sqrt(200), rtol=0)
    loglik = torch.from_numpy(idata.log_likelihood["obs"].values).reshape(200, N)
    expected = dist.Normal(draws @ x.T, SIGMA).log_prob(y)
    torch.testing.assert_close(loglik, expected)


def test_resuming_a_fit_of_a_hand_written_guide(tmp_path):
    x, y, *_ = conjugate_problem()
    kw = dict(epochs=6, batch_size=10, lr=0.01, progress=False, num_particles=2)

    def final(bnn):
        return {n: v.detach().clone() for n, v in bnn.guide.unconstrained_params().items()}

    full = hand_written_bnn()
    r_full = full.fit(x, y, seed=3, **kw)
    want = final(full)
    pyro.clear_param_store()
    stopped = hand_written_bnn()
    stopped.fit(
        x,
        y,
        seed=3,
        checkpoint_every=3,
        checkpoint_path=tmp_path / "ck.pt",
        callback=lambda e, r: e == 2,
        **kw,
    )
    pyro.clear_param_store()
    resumed = hand_written_bnn()
    r_res = resumed.fit(x, y, seed=123, resume_from=tmp_path / "ck.pt", **kw)
    assert r_res.elbo == r_full.elbo  # the optimiser state of q.* was restored too
    got = final(resumed)
    for name, value in want.items():
        assert torch.equal(got[name], value), name


# ======================================================================= unfitted guides
def assert_no_warning(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfittedGuideWarning)
        return fn()


def test_predict_warns_on_an_unfitted_bnn():
    x, y, *_ = conjugate_problem()
    assert issubclass(UnfittedGuideWarning, UserWarning)
    for bnn in (linear_bnn(), linear_bnn(AutoNormal), hand_written_bnn()):
        assert not bnn.fitted
        with pytest.warns(UnfittedGuideWarning, match=r"bnn\.fit.*posterior="):
            bnn.predict(x, 5)
        assert_no_warning(
            lambda b=bnn: b.predict(
                x, 3, posterior=SamplesPosterior({"weight": torch.zeros(3, 1, D)})
            )
        )
        bnn.fit(x, y, epochs=1, progress=False)
        assert bnn.fitted
        assert_no_warning(lambda b=bnn: b.predict(x, 5))
        pyro.clear_param_store()


@pytest.mark.parametrize("kind", ["default", "AutoNormal", "hand-written"])
def test_plain_svi_on_the_bnns_own_guide_counts_as_fitting(kind):
    x, y, *_ = conjugate_problem()
    bnn = {"default": linear_bnn, "AutoNormal": lambda: linear_bnn(AutoNormal)}.get(
        kind, hand_written_bnn
    )()
    svi = SVI(bnn.model, bnn.guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    svi.step(x, y)
    assert bnn.fitted
    assert_no_warning(lambda: bnn.predict(x, 5))


def test_fitting_another_guide_with_plain_svi_leaves_the_bnn_unfitted():
    x, y, mean, *_ = conjugate_problem()
    bnn = linear_bnn()
    other = AutoNormal(bnn.model)
    svi = SVI(bnn.model, other, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(300):
        svi.step(x, y)
    with pytest.warns(UnfittedGuideWarning):
        untrained = bnn.predict(x, 200, seed=0)
    bnn.guide = other  # the fix the warning names
    fitted = assert_no_warning(lambda: bnn.predict(x, 200, seed=0))
    exact = x @ mean
    # the untrained guide predicts from its start (the net's random weights), the other the fit
    assert (fitted.mean - exact).abs().max() < 0.1 < (untrained.mean - exact).abs().max()


def test_loaded_imported_and_pre_trained_guides_do_not_warn(tmp_path):
    x, y, *_ = conjugate_problem()
    unfitted = linear_bnn()
    with pytest.warns(UnfittedGuideWarning):
        unfitted.predict(x, 2)
    path = unfitted.save(tmp_path / "p.pt")
    loaded = BNN.load(path, net=nn.Linear(D, 1, bias=False))
    assert loaded.fitted  # loaded: the file is the posterior the user means
    assert_no_warning(lambda: loaded.predict(x, 2))
    # a hand-written guide fitted before the BNN is built: its parameters already exist
    net = nn.Linear(D, 1, bias=False)
    guide = make_guide(net, "pre")
    prior_bnn = BNN(net, dist.Normal(0.0, ALPHA), HomoskedasticGaussian(SIGMA))
    svi = SVI(prior_bnn.model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    svi.step(x, y)
    bnn = BNN(net, dist.Normal(0.0, ALPHA), HomoskedasticGaussian(SIGMA), guide=guide)
    assert_no_warning(lambda: bnn.predict(x, 2))  # predict runs it first: its parameters exist
    assert bnn.fitted
    # a network trained with dropout, read as a posterior: its weights are the fit
    trained = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Dropout(0.25), nn.Linear(4, 3))
    imported = from_dropout_net(trained, Categorical())
    assert imported.fitted
    assert_no_warning(lambda: imported.predict(torch.randn(5, 2), 3))
    # assigning a new guide starts over
    bnn.guide = MeanFieldNormal()
    assert not bnn.fitted


def structured_guide(broadcasts: bool):
    """The tutorial's structured guide over (b, w) of an nn.Linear(1, 1): w | b ~ N(a + c b, s)."""

    def guide(x, y=None):
        b_loc = pyro.param("s.b_loc", torch.zeros(1))
        b_scale = pyro.param("s.b_scale", torch.full((1,), 0.1), constraint=constraints.positive)
        w_loc = pyro.param("s.w_loc", torch.zeros(1, 1))
        w_slope = pyro.param("s.w_slope", torch.zeros(1, 1))
        w_scale = pyro.param("s.w_scale", torch.full((1, 1), 0.1), constraint=constraints.positive)
        b = pyro.sample("bias", dist.Normal(b_loc, b_scale).to_event(1))  # (..., 1)
        b = b.unsqueeze(-1) if broadcasts else b  # the weight is (..., 1, 1)
        pyro.sample("weight", dist.Normal(w_loc + w_slope * b, w_scale).to_event(2))

    return guide


def test_a_guide_that_does_not_broadcast_over_particles_is_refused():
    """Under vectorised particles (a plate at dim -2) ``w_slope * b`` with b of shape (P, 1, 1)
    gives the weight batch shape (P, P): its log-density would be counted P times, silently."""
    x = torch.linspace(2, 4, 30).unsqueeze(-1)
    y = 0.5 * x[:, 0] - 1.0
    for broadcasts in (False, True):
        pyro.clear_param_store()
        bnn = BNN(
            nn.Linear(1, 1),
            dist.Normal(0.0, 1.0),
            HomoskedasticGaussian(1.0),
            guide=structured_guide(broadcasts),
        )
        fit = lambda b=bnn: b.fit(x, y, epochs=2, num_particles=4, progress=False)  # noqa: E731
        if broadcasts:
            fit()
            assert bnn.predict(x, 7).samples.shape == (7, 30)
        else:
            with pytest.raises(ValueError, match=r"'weight'.*batch shape \(4, 4\).*unsqueeze"):
                fit()
            bnn.fit(x, y, epochs=2, num_particles=1, progress=False)  # no plate: it runs
            with pytest.raises(ValueError, match=r"'weight'.*batch shape \(7, 7\)"):
                bnn.predict(x, 7)
