"""Every tensor the package creates follows the network's device and dtype (the GPU policy).

Two ways to check it:

- ``cuda``-marked tests run the core workflow (fit, predict, save/load, ArviZ export, PSIS k̂,
  distillation) on a CUDA device and compare with the same workflow on the CPU; they need a GPU
  and are skipped without one (no package install can provide a GPU).
- On every machine, the same workflow runs with the network on the CPU while torch's *default*
  device is ``meta`` (``torch.device("meta")`` as a context manager). A tensor the package creates
  without naming a device lands on ``meta`` and the first operation mixing it with the network's
  tensors fails, exactly as a CPU tensor mixed with CUDA tensors fails on a GPU. Likewise a float32
  network under a float64 default dtype catches tensors created in the default dtype.
"""

from __future__ import annotations

import contextlib
import math

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.likelihoods import Distillation
from pyro_bdl.workflows.teachers import teacher_targets


def _user_objects(device: str | torch.device, dtype: torch.dtype) -> dict:
    """What a user makes (data, nets, priors): on ``device``, outside any default-device context."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    w = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    y = x @ w + 0.1 * torch.randn(40, generator=g, dtype=torch.float64)
    xc = torch.randn(30, 4, generator=g, dtype=torch.float64)
    labels = (xc[:, 0] > 0).long() + (xc[:, 1] > 0.5).long()
    torch.manual_seed(0)
    kw = {"device": device, "dtype": dtype}
    return {
        "x": x.to(**kw),
        "y": y.to(**kw),
        "xc": xc.to(**kw),
        "labels": labels.to(device),
        "net": nn.Sequential(nn.Linear(3, 8, **kw), nn.Tanh(), nn.Linear(8, 1, **kw)),
        "net2": nn.Sequential(nn.Linear(3, 8, **kw), nn.Tanh(), nn.Linear(8, 1, **kw)),
        "teacher_net": nn.Sequential(nn.Linear(4, 6, **kw), nn.ReLU(), nn.Linear(6, 3, **kw)),
        "student_net": nn.Sequential(nn.Linear(4, 3, **kw)),
        "prior": dist.Normal(0.0, 1.0),
        "gaussian": HomoskedasticGaussian(),  # its learned noise scale starts on the CPU
        "categorical": Categorical(),
        "distillation": Distillation(2.0),
    }


def _workflow(
    device: str | torch.device, dtype: torch.dtype, tmp_path, during=contextlib.nullcontext
) -> dict[str, torch.Tensor]:
    """Fit, predict, save/load, export, k̂ and distillation, each package call inside ``during()``.

    Every number comes back as a float64 CPU tensor.
    """
    from pyro_bdl.arviz import psis_khat, to_inference_data

    u = _user_objects(device, dtype)
    kind = torch.device(device).type
    x, y, path = u["x"], u["y"], tmp_path / f"bnn-{kind}.pt"
    with during():
        bnn = BNN(u["net"], u["prior"], u["gaussian"], guide=MeanFieldNormal(1e-2))
        fit = bnn.fit(x, y, epochs=3, batch_size=20, lr=1e-2, seed=0, progress=False)
        pred = bnn.predict(x, num_samples=8, seed=3)
        parts = pred.decompose()
        bnn.save(path)
        loaded = BNN.load(path, net=u["net2"])
        again = loaded.predict(x, num_samples=8, seed=3)
        data = to_inference_data(bnn, x, y, num_samples=6, seed=5)
        khat = psis_khat(bnn, x, y, num_samples=20, seed=7)
        teacher = BNN(u["teacher_net"], u["prior"], u["categorical"], guide=MeanFieldNormal(1e-2))
        teacher.fit(u["xc"], u["labels"], epochs=2, lr=1e-2, seed=0, progress=False)
        soft = teacher_targets(teacher, u["xc"], 2.0, num_samples=4, seed=2)
        student = BNN(u["student_net"], u["prior"], u["distillation"], guide=MeanFieldNormal())
        res = student.fit(u["xc"], soft, epochs=2, lr=1e-2, seed=0, progress=False)
    for t in (pred.mean, parts.epistemic, again.mean, soft):
        assert t.device.type == kind and t.dtype == dtype
    assert torch.equal(again.mean, pred.mean)
    return {
        "elbo": torch.tensor(fit.elbo, dtype=torch.float64),
        "mean": pred.mean.detach().cpu().double(),
        "epistemic": parts.epistemic.detach().cpu().double(),
        "loglik": torch.as_tensor(data.log_likelihood["obs"].values).double(),
        "log_ratios": torch.as_tensor(khat.log_ratios).double(),
        "soft": soft.detach().cpu().double(),
        "student_elbo": torch.tensor(res.elbo, dtype=torch.float64),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_tensor_lands_on_the_default_device(dtype, tmp_path):
    """With the default device ``meta``, a tensor created without the net's device would fail."""
    out = _workflow("cpu", dtype, tmp_path, during=lambda: torch.device("meta"))
    assert all(torch.isfinite(v).all() for v in out.values())


def test_float32_net_under_float64_default_gives_float32_everywhere(tmp_path):
    assert torch.get_default_dtype() == torch.float64
    out = _workflow("cpu", torch.float32, tmp_path)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_workflow_runs_on_the_device(device, tmp_path):
    """Fit, predict, save/load, export, k̂ and distillation with the net on ``device``."""
    out = _workflow(device, torch.float64, tmp_path)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_fixed_draws_predict_the_same_on_every_device(device):
    """With the same weight draws, the predictive on ``device`` equals the CPU's (float64)."""
    from pyro_bdl.inference import SamplesPosterior

    u = _user_objects("cpu", torch.float64)
    g = torch.Generator().manual_seed(3)
    shapes = {n: p.shape for n, p in u["net"].named_parameters()}
    draws = {
        n: 0.5 * torch.randn((6, *s), generator=g, dtype=torch.float64) for n, s in shapes.items()
    }
    results = []
    for where in ("cpu", device):
        net = u["net"].to(where)
        bnn = BNN(net, u["prior"], HomoskedasticGaussian(scale=0.3))
        moved = {n: v.to(where) for n, v in draws.items()}
        pred = bnn.predict(u["x"].to(where), posterior=SamplesPosterior(moved), num_samples=6)
        assert pred.mean.device.type == torch.device(where).type
        results.append(pred)
    cpu, there = results
    torch.testing.assert_close(there.samples.cpu(), cpu.samples, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        there.decompose().epistemic.cpu(), cpu.decompose().epistemic, rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("guide", ["bernoulli", "concrete"])
def test_dropout_guides_follow_the_net(guide):
    """The dropout guides' masks, logits and constants follow the net (meta default device)."""
    from pyro_bdl.guides import BernoulliDropout, ConcreteDropout

    u = _user_objects("cpu", torch.float32)
    builder = BernoulliDropout(0.1) if guide == "bernoulli" else ConcreteDropout(0.1)
    with torch.device("meta"):
        bnn = BNN(u["net"], u["prior"], u["gaussian"], guide=builder)
        fit = bnn.fit(u["x"], u["y"], epochs=2, batch_size=20, lr=1e-2, seed=0, progress=False)
        pred = bnn.predict(u["x"], num_samples=5, seed=1)
    assert pred.mean.device.type == "cpu" and pred.mean.dtype == torch.float32
    assert torch.isfinite(pred.mean).all() and all(math.isfinite(e) for e in fit.elbo)


def test_inputs_on_another_device_are_refused_with_both_devices_named():
    """A tensor on another device than the net's is refused up front, not inside the network."""
    u = _user_objects("cpu", torch.float64)
    bnn = BNN(u["net"], u["prior"], u["gaussian"])
    elsewhere = torch.empty(5, 3, device="meta")
    for call in (
        lambda: bnn.predict(elsewhere, num_samples=2),
        lambda: bnn.fit(elsewhere, u["y"][:5]),
    ):
        with pytest.raises(ValueError, match=r"network's device cpu, but got x on meta"):
            call()
