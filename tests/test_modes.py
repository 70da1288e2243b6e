"""The train/eval mode policy: training mode while fitting, evaluation mode while predicting and
probing, each module's own mode restored afterwards (also on an error), BatchNorm statistics
never changed by a prediction or a probe, the dropout guides' masks unaffected."""

import copy

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoNormal
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.arviz import psis_khat, to_inference_data
from pyro_bdl.distributed import fit_distributed, predict_distributed
from pyro_bdl.guides import BernoulliDropout
from pyro_bdl.inference.callbacks import Callback
from pyro_bdl.inference.state import FitOptions
from pyro_bdl.nn import BatchedForward, eval_mode, module_mode, train_mode
from pyro_bdl.workflows.teachers import teacher_targets


class ModeProbe(nn.Module):
    """An identity that records the mode it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


def flags(net):
    return [m.training for m in net.modules()]


def mixed_net():
    """A net whose modules are in different modes, as a user may leave them."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), ModeProbe(), nn.Dropout(0.3), nn.Linear(8, 1)
    )
    net[1].eval()  # e.g. frozen statistics
    return net


def regression_data(n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x.sum(-1) + 0.1 * torch.randn(n, generator=g)


def state_of(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def buffers_of(net):
    return {k: v.clone() for k, v in net.named_buffers()}


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ----------------------------------------------------------------------------- the context
@pytest.mark.parametrize("training", [True, False])
def test_module_mode_sets_every_module_and_restores_each_flag_even_on_an_error(training):
    net = mixed_net()
    before = flags(net)
    assert len(set(before)) == 2  # really mixed
    with module_mode(net, training):
        assert flags(net) == [training] * len(before)
        net[4].train(not training)  # the block may switch modules itself: restored too
    assert flags(net) == before
    with pytest.raises(RuntimeError, match="boom"):
        with module_mode(net, training):
            raise RuntimeError("boom")
    assert flags(net) == before
    with module_mode(net, None):  # "keep": nothing changes
        assert flags(net) == before
    with eval_mode(net):
        assert not any(flags(net))
    with train_mode(net):
        assert all(flags(net))
    assert flags(net) == before


def test_module_mode_honours_a_module_that_overrides_train():
    class FrozenNorm(nn.Sequential):
        def train(self, mode=True):
            super().train(mode)
            self[1].eval()  # the user's own "BatchNorm stays frozen" rule
            return self

    net = FrozenNorm(nn.Linear(2, 3), nn.BatchNorm1d(3))
    with train_mode(net):
        assert net.training and not net[1].training


# ----------------------------------------------------------------------------- prediction
def test_predict_turns_a_fresh_nets_dropout_off():
    """The issue's case: a fresh net (training mode) with nn.Dropout(0.5) under a guide of
    scale 1e-6 must show an epistemic std of order 1e-6, not dropout's 0.28."""
    torch.manual_seed(0)
    x, _ = regression_data()
    net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    bnn = BNN(
        net,
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(0.1),
        guide=MeanFieldNormal(init_scale=1e-6),
    )
    net[1].eval()  # a mixed state, restored exactly
    before = flags(net)
    bnn.mark_fitted()  # q's initial state is the posterior meant here
    pred = bnn.predict(x, 50, seed=0)
    epistemic = pred.decompose().epistemic.sqrt()
    assert float(epistemic.max()) < 1e-4  # weight noise only (about 1e-6 * |x| * width)
    assert float(epistemic.max()) > 0.0
    assert flags(net) == before
    with torch.no_grad():  # and the mean is the deterministic net's output (dropout off)
        net.eval()
        torch.testing.assert_close(pred.mean, net(x).squeeze(-1), atol=1e-4, rtol=0)


@pytest.fixture
def bn_bnn():
    """A BNN over a BatchNorm net, fitted briefly (in training mode, so its statistics moved)."""
    torch.manual_seed(0)
    x, y = regression_data(40)
    net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    bnn.fit(x, y, epochs=3, batch_size=10, lr=1e-2, progress=False, seed=0)
    assert net.training  # a fresh net's mode, restored after the fit
    assert float(net[1].num_batches_tracked) == 12  # one update per step (3 epochs x 4 batches)
    return bnn, x, y


def test_predict_never_changes_batchnorm_statistics_and_a_point_ignores_its_batch(bn_bnn):
    bnn, x, _ = bn_bnn
    net = bnn.net
    before = state_of(net)
    full = bnn.predict(x, 20, seed=3, chunk_size=20).samples  # (S, N)
    assert_bitwise_equal(state_of(net), before)
    assert net.training and net[1].training
    for i in (0, 7, 39):  # each point alone: the same prediction as within the batch
        alone = bnn.predict(x[i : i + 1], 20, seed=3, chunk_size=20).samples
        torch.testing.assert_close(alone[:, 0], full[:, i], rtol=0, atol=1e-12)
    reordered = bnn.predict(x.flip(0)[:5], 20, seed=3, chunk_size=20).samples
    torch.testing.assert_close(reordered, full.flip(1)[:, :5], rtol=0, atol=1e-12)
    assert_bitwise_equal(state_of(net), before)
    # eval-mode semantics: the running statistics are what normalises
    draws = bnn.posterior(x).sample(1).sites
    with torch.no_grad(), eval_mode(net):
        expected = torch.func.functional_call(net, {k: v[0] for k, v in draws.items()}, (x,))
    assert_bitwise_equal(state_of(net), before)
    assert torch.isfinite(expected).all()


def test_one_row_predict_with_batchnorm(bn_bnn):
    """One row fails in training mode ("Expected more than 1 value per channel"), which the
    input probe used to report as "check the number of features"; in eval mode it works."""
    bnn, x, _ = bn_bnn
    pred = bnn.predict(x[:1], 10, seed=0)
    assert pred.samples.shape == (10, 1) and torch.isfinite(pred.samples).all()
    assert bnn.check_data(x[:1])[0].shape == (1, 3)


def test_a_lazy_guide_is_built_on_one_row_with_batchnorm():
    """ensure_guide (AutoNormal builds itself by running the model) and BNN.load's one-row
    probe run in eval mode too."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1), guide=AutoNormal)
    before = state_of(net)
    bnn.ensure_guide(torch.randn(1, 3))
    assert bnn.guide.prototype_trace is not None
    assert_bitwise_equal(state_of(net), before)
    assert flags(net) == [True] * 4


def test_save_and_load_a_batchnorm_net(bn_bnn, tmp_path):
    bnn, x, _ = bn_bnn
    bnn.save(tmp_path / "bn.pt")
    fresh = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    loaded = BNN.load(tmp_path / "bn.pt", net=fresh, name="loaded-bn")
    assert_bitwise_equal(state_of(fresh), state_of(bnn.net))  # running statistics included
    torch.testing.assert_close(
        loaded.predict(x, 5, seed=1).samples, bnn.predict(x, 5, seed=1).samples
    )


def test_probes_and_exports_run_in_eval_mode_and_leave_the_net_as_it_was():
    """latent_shapes, the input probe, the ArviZ export, psis_khat, predict_from_samples and
    teacher targets: every forward in eval mode, no statistic changed, modes restored."""
    torch.manual_seed(0)
    x, y = regression_data(12)
    labels = (y > 0).long()
    net = nn.Sequential(
        nn.Linear(3, 6), nn.BatchNorm1d(6), ModeProbe(), nn.Dropout(0.4), nn.Linear(6, 2)
    )
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical())
    probe = net[2]
    net[3].eval()
    before, modes = state_of(net), flags(net)
    model = bnn.bayesian_model
    model.latent_shapes(x)
    model.probe_output(x[:1])
    to_inference_data(bnn, x, labels, num_samples=6, seed=0)
    psis_khat(bnn, x, labels, num_samples=6, seed=0)
    bnn.predict_from_samples(x, {k: v.sample((4,)) for k, v in model.site_priors().items()})
    teacher_targets(bnn, x, 2.0, num_samples=4, seed=0)
    teacher_targets(net, x, 2.0)  # a plain module teacher: eval mode too
    assert probe.seen and not any(probe.seen)
    assert_bitwise_equal(state_of(net), before)
    assert flags(net) == modes


# ----------------------------------------------------------------------------- fitting
class Boom(Callback):
    def on_step(self, state, loglik, kl):
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    "mode, expect", [("train", True), ("eval", False), ("keep", None), (None, True)]
)
def test_fit_runs_in_its_mode_and_restores_each_modules_mode(mode, expect):
    x, y = regression_data()
    net = mixed_net()
    net.eval()
    net[3].train()  # the probe in training mode, everything else in eval mode
    before = flags(net)
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    kwargs = {} if mode is None else {"mode": mode}
    probe = net[3]
    seen_bn = []
    handle = net[1].register_forward_pre_hook(lambda m, a: seen_bn.append(m.training))
    bnn.fit(x, y, epochs=2, batch_size=12, progress=False, seed=0, **kwargs)
    handle.remove()
    steps = 4
    # the probes before the first step (input check, trial estimate) run in eval mode
    in_steps = probe.seen[-steps:]
    assert in_steps == [True if expect is None else expect] * steps
    assert seen_bn[-steps:] == [False if expect is None else expect] * steps
    assert flags(net) == before
    with pytest.raises(RuntimeError, match="boom"):  # restored when a fit fails too
        bnn.fit(x, y, epochs=1, progress=False, callbacks=[Boom()], **kwargs)
    assert flags(net) == before


def test_fit_mode_is_checked():
    x, y = regression_data()
    bnn = BNN(nn.Linear(3, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
    with pytest.raises(ValueError, match=r"Expected mode in \('train', 'eval', 'keep'\), but got"):
        bnn.fit(x, y, mode="training", progress=False)
    with pytest.raises(ValueError, match="but got True"):
        FitOptions(mode=True).validate()


def bn_regression(momentum=0.1, random="after"):
    """A BatchNorm net whose random weights are those after the BatchNorm (its input is then
    deterministic) or all of them."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=momentum), nn.Tanh(), nn.Linear(4, 1)
    )
    include = (lambda n, p: n.startswith("3.")) if random == "after" else None
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1), include=include)
    return net, bnn


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("particles", [1, 3])
def test_batchnorm_statistics_of_a_fit_step_with_a_deterministic_input(particles, momentum):
    """Random weights after the BatchNorm only: its input and batch statistics are the same for
    every draw, and one step moves the running statistics exactly as one plain training
    forward does, whatever the number of particles (vmap runs the draw-free part once)."""
    x, y = regression_data()
    net, bnn = bn_regression(momentum)
    reference = copy.deepcopy(net).train()
    with torch.no_grad():
        reference[1](reference[0](x))
    bnn.fit(x, y, epochs=1, num_particles=particles, progress=False, seed=0)
    assert_bitwise_equal(buffers_of(net[1]), buffers_of(reference[1]))
    assert float(net[1].num_batches_tracked) == 1
    assert bnn.bayesian_model.forward.vectorized is (True if particles > 1 else None)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_statistics_of_a_fit_step_update_once_per_draw(momentum):
    """Random weights before the BatchNorm: each of P particles normalises with its own batch
    statistics (a Python loop over the draws: training-mode BatchNorm has no vmap rule), and
    the running statistics are updated once per particle, in order, as P plain training
    forwards would. The failed vmap attempt leaves no trace (BatchNorm counts its batch before
    it fails, which used to count P + 1 batches)."""
    x, y = regression_data()
    net, bnn = bn_regression(momentum, random="all")
    reference = copy.deepcopy(net[1]).train()
    inputs = []
    handle = net[1].register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
    bnn.fit(x, y, epochs=1, num_particles=3, progress=False, seed=0)
    handle.remove()
    assert float(net[1].num_batches_tracked) == 3
    assert bnn.bayesian_model.forward.vectorized is False
    with torch.no_grad():
        for h in inputs[-3:]:  # the loop's three forwards (before them: probes, vmap's try)
            reference(h)
    assert_bitwise_equal(buffers_of(net[1]), buffers_of(reference))


def test_a_fallen_back_fit_equals_the_loop_bitwise():
    """``vectorize="auto"`` falls back to the loop for training-mode BatchNorm and then draws
    exactly what ``vectorize=False`` draws (the random stream and the buffers are restored)."""
    x, y = regression_data()
    results = []
    for vectorize in ("auto", False):
        torch.manual_seed(0)
        net = nn.Sequential(  # the dropout draws before the BatchNorm fails under vmap
            nn.Linear(3, 4), nn.Dropout(0.2), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1)
        )
        bnn = BNN(
            net,
            dist.Normal(0.0, 1.0),
            HomoskedasticGaussian(0.1),
            vectorize=vectorize,
            name=f"fallback-{vectorize}",
        )
        fit = bnn.fit(x, y, epochs=2, batch_size=12, num_particles=3, progress=False, seed=0)
        results.append((fit.step_elbo, state_of(net)))
    assert results[0][0] == results[1][0]
    assert_bitwise_equal(results[0][1], results[1][1])


def test_vmap_decision_is_kept_per_mode():
    """BatchNorm vectorises in eval mode but not in training mode: a prediction (eval, vmap)
    before a fit with particles (training, loop) and after it both work."""
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    fwd = BatchedForward(net)
    draws = {k: v.detach().expand(3, *v.shape) + 0.01 for k, v in net.named_parameters()}
    x = torch.randn(5, 3)
    with eval_mode(net):
        fwd(draws, x, sample_shape=(3,))
        assert fwd.vectorized is True
    assert fwd.vectorized is None  # training mode: not decided yet
    fwd(draws, x, sample_shape=(3,))
    assert fwd.vectorized is False
    with eval_mode(net):
        assert fwd.vectorized is True


# ----------------------------------------------------------------------------- dropout guides
def test_dropout_guide_masks_are_drawn_whatever_the_modes_and_the_nets_own_dropout_is_off():
    """A BernoulliDropout guide's masks are its posterior: predictions from a net with its own
    nn.Dropout layer (off while predicting) equal those of the same net without it."""
    torch.manual_seed(0)
    x, _ = regression_data(10)
    with_own = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 1))
    without = nn.Sequential(*with_own[:2], nn.Identity(), with_own[3])
    preds = []
    for name, net in (("own", with_own), ("none", without)):
        bnn = BNN(
            net,
            dist.Normal(0.0, 1.0),
            HomoskedasticGaussian(0.1),
            guide=BernoulliDropout(0.3),
            name=name,
        )
        bnn.mark_fitted()  # the guide's initial p and weights are the posterior compared
        preds.append(bnn.predict(x, 8, chunk_size=1, seed=4).samples)
    torch.testing.assert_close(preds[0], preds[1], rtol=0, atol=0)
    assert float(preds[0].std(0).min()) > 0  # the guide's masks are drawn
    assert with_own.training


# ----------------------------------------------------------------------------- distributed
def test_distributed_fit_and_predict_with_batchnorm(one_rank):
    """A data-parallel fit refuses training-mode BatchNorm (the default mode) and fits with
    fixed statistics in mode="eval"; distributed prediction runs in eval mode like predict."""
    x, y = regression_data()
    net, bnn = bn_regression(random="all")
    with pytest.raises(NotImplementedError, match="mode='eval'"):
        fit_distributed(bnn, x, y, progress=False)
    before = buffers_of(net)
    fit_distributed(bnn, x, y, epochs=2, batch_size=12, progress=False, seed=0, mode="eval")
    assert_bitwise_equal(buffers_of(net), before)
    assert net.training
    pred = predict_distributed(bnn, x[:1], 4, seed=0)
    torch.testing.assert_close(pred.samples, bnn.predict(x[:1], 4, seed=0).samples)
    assert_bitwise_equal(buffers_of(net), before)
    assert np.isfinite(pred.samples.numpy()).all()
