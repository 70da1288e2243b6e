"""Saving and loading posteriors: round trips, corrupted files, code payloads, resume, seeds."""

import io
import os
import pickle
import struct
import subprocess
import sys
import textwrap

import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoLowRankMultivariateNormal
from torch import nn

from pyro_bdl import (
    BNN,
    HeteroskedasticGaussian,
    HomoskedasticGaussian,
    LayerwiseNormalPrior,
    MeanFieldNormal,
    ScaleMixturePrior,
)
from pyro_bdl.checkpoint import MAGIC, CheckpointError, read_checkpoint, write_checkpoint
from pyro_bdl.guides import BernoulliDropout, ConcreteDropout


def make_net(width=8, out=1):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, out))


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    return x, x[:, 0] - x[:, 1] + 0.1 * torch.randn(40, generator=g)


CASES = [
    (
        lambda: dist.Normal(0.0, 1.0),
        lambda: HomoskedasticGaussian(),
        lambda: MeanFieldNormal(1e-2),
        1,
    ),
    (
        lambda: LayerwiseNormalPrior("kaiming"),
        lambda: HeteroskedasticGaussian(),
        lambda: BernoulliDropout(0.1),
        2,
    ),
    (
        lambda: ScaleMixturePrior(0.5, 1.0, 0.1),
        lambda: HomoskedasticGaussian(0.3),
        lambda: AutoLowRankMultivariateNormal,
        1,
    ),
    (
        lambda: dist.Normal(0.0, 1.0),
        lambda: HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 1.0)),
        lambda: MeanFieldNormal(),
        1,
    ),
    (
        lambda: dist.Normal(0.0, 1.0),
        lambda: HeteroskedasticGaussian(),
        lambda: ConcreteDropout(0.2),
        2,
    ),
]


@pytest.mark.parametrize("prior, lik, guide, out", CASES)
def test_round_trip_gives_bitwise_identical_predictions(tmp_path, prior, lik, guide, out):
    x, y = data()
    bnn = BNN(make_net(out=out), prior(), lik(), guide=guide())
    bnn.fit(x, y, epochs=5, lr=0.01, progress=False, seed=0)
    path = bnn.save(tmp_path / "posterior.pt")
    loaded = BNN.load(path, net=make_net(out=out))
    a = bnn.predict(x, num_samples=7, seed=3)
    b = loaded.predict(x, num_samples=7, seed=3)
    assert torch.equal(a.samples, b.samples)
    assert (a.scale is None and b.scale is None) or torch.equal(a.scale, b.scale)
    assert (
        type(loaded.likelihood) is type(bnn.likelihood) and loaded.random_names == bnn.random_names
    )


def test_last_layer_only_and_unfitted_round_trips(tmp_path):
    x, y = data()
    bnn = BNN(
        make_net(),
        dist.Normal(0.0, 1.0),
        HomoskedasticGaussian(1.0),
        include=lambda n, p: n.startswith("2."),
    )
    bnn.save(tmp_path / "unfitted.pt")  # the guide has no parameters yet
    assert BNN.load(tmp_path / "unfitted.pt", net=make_net()).random_names == ["2.weight", "2.bias"]
    bnn.fit(x, y, epochs=3, progress=False)
    bnn.save(tmp_path / "fitted.pt")
    loaded = BNN.load(tmp_path / "fitted.pt", net=make_net())
    assert torch.equal(loaded.net[0].weight, bnn.net[0].weight)  # point estimates come back too


def test_custom_components_must_be_passed_back(tmp_path):
    x, y = data()
    bnn = BNN(make_net(), lambda n, p: dist.Normal(0.0, 2.0), HomoskedasticGaussian(1.0))
    bnn.fit(x, y, epochs=2, progress=False)
    bnn.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="saved prior was custom.*pass prior="):
        BNN.load(tmp_path / "c.pt", net=make_net())
    loaded = BNN.load(tmp_path / "c.pt", net=make_net(), prior=lambda n, p: dist.Normal(0.0, 2.0))
    assert torch.equal(loaded.predict(x, 3, seed=0).samples, bnn.predict(x, 3, seed=0).samples)


# --------------------------------------------------------------------------- corrupted files
@pytest.fixture
def saved(tmp_path):
    x, y = data()
    bnn = BNN(make_net(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=MeanFieldNormal())
    bnn.fit(x, y, epochs=3, progress=False)
    return bnn.save(tmp_path / "ok.pt")


def _corrupt(raw: bytes, how: str) -> bytes:
    if how == "truncated":
        return raw[: len(raw) // 2]
    if how == "empty":
        return b""
    if how == "bit-flipped payload":
        i = len(raw) - 100
        return raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
    if how == "bit-flipped header":
        return raw[:3] + bytes([raw[3] ^ 0x10]) + raw[4:]
    if how == "wrong format version":
        return raw[: len(MAGIC)] + struct.pack("<I", 99) + raw[len(MAGIC) + 4 :]
    if how == "plain torch.save":
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(3)}, buf)
        return buf.getvalue()
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how, match",
    [
        ("truncated", "corrupted or truncated"),
        ("empty", "not one"),
        ("bit-flipped payload", "corrupted or truncated"),
        ("bit-flipped header", "not one"),
        ("wrong format version", "format version 1, but .* has version 99"),
        ("plain torch.save", "not one"),
    ],
)
def test_corrupted_files_are_rejected(saved, tmp_path, how, match):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(_corrupt(saved.read_bytes(), how))
    with pytest.raises(CheckpointError, match=match):
        BNN.load(bad, net=make_net())


def test_wrong_architecture_names_the_parameter(saved):
    with pytest.raises(
        ValueError, match=r"parameter '0.weight' of shape \(8, 2\) .* has shape \(9, 2\)"
    ):
        BNN.load(saved, net=make_net(width=9))
    deeper = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Tanh(), nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"parameter\(s\) \['4.weight', '4.bias'\]"):
        BNN.load(saved, net=deeper)
    other = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Identity(), nn.Linear(8, 1))
    with pytest.raises(ValueError, match="'2.weight'.*no such parameter"):
        BNN.load(saved, net=other)


class _Payload:
    """Unpickling this object would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_never_executes(tmp_path):
    marker = tmp_path / "PWNED"
    evil = pickle.dumps(_Payload(marker))
    # 1. a raw pickle file
    raw = tmp_path / "raw.pt"
    raw.write_bytes(evil)
    # 2. a torch.save of the object
    buf = io.BytesIO()
    torch.save({"config": "{}", "tensors": {}, "x": _Payload(marker)}, buf)
    (tmp_path / "torch.pt").write_bytes(buf.getvalue())
    # 3. a forged file: our magic, version and a valid checksum around a malicious payload
    import hashlib

    forged = MAGIC + struct.pack("<I", 1) + hashlib.sha256(buf.getvalue()).digest() + buf.getvalue()
    (tmp_path / "forged.pt").write_bytes(forged)
    for name in ("raw.pt", "torch.pt", "forged.pt"):
        with pytest.raises(CheckpointError):
            BNN.load(tmp_path / name, net=make_net())
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="non-plain data"):
        read_checkpoint(tmp_path / "forged.pt")
    assert not marker.exists()


def test_write_is_atomic_and_config_must_be_plain(tmp_path):
    path = write_checkpoint(tmp_path / "a.pt", {"k": [1, 2]}, {"t": torch.ones(2)})
    cfg, tensors = read_checkpoint(path)
    assert cfg == {"k": [1, 2]} and torch.equal(tensors["t"], torch.ones(2))
    with pytest.raises(TypeError, match="JSON-serialisable"):
        write_checkpoint(tmp_path / "b.pt", {"k": object()}, {})
    assert not (tmp_path / "b.pt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


# --------------------------------------------------------------------------- resume and seeds
@pytest.mark.parametrize("guide", [MeanFieldNormal(), BernoulliDropout(0.1)])
def test_resuming_reproduces_the_uninterrupted_run_exactly(tmp_path, guide):
    x, y = data()

    def fresh():
        return BNN(make_net(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(), guide=guide)

    kw = dict(epochs=6, batch_size=10, lr=0.01, progress=False, num_particles=2)
    full = fresh()
    r_full = full.fit(x, y, seed=3, **kw)
    stopped = fresh()
    stopped.fit(
        x,
        y,
        seed=3,
        checkpoint_every=3,
        checkpoint_path=tmp_path / "ck.pt",
        callback=lambda e, r: e == 2,
        **kw,
    )
    resumed = fresh()
    r_res = resumed.fit(x, y, seed=123, resume_from=tmp_path / "ck.pt", **kw)
    assert r_res.elbo == r_full.elbo and r_res.step_kl == r_full.step_kl
    for (n, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.equal(a, b), n
    # the checkpoint is also a loadable posterior
    assert BNN.load(tmp_path / "ck.pt", net=make_net()).random_names == full.random_names
    with pytest.raises(CheckpointError, match="no optimiser state"):
        fresh().fit(x, y, resume_from=full.save(tmp_path / "plain.pt"), **kw)
    with pytest.raises(ValueError, match="checkpoint_path"):
        fresh().fit(x, y, checkpoint_every=2, **kw)


SCRIPT = textwrap.dedent(
    """
    import hashlib, torch, pyro.distributions as dist
    from torch import nn
    from pyro_bdl import BNN, HomoskedasticGaussian
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=g); y = x.sum(-1)
    net = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.linspace(-0.5, 0.5, p.numel()).reshape(p.shape))
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5))
    fit = bnn.fit(x, y, epochs=5, batch_size=10, progress=False, seed=7)
    pred = bnn.predict(x, num_samples=5, seed=11)
    print(hashlib.sha256(pred.samples.numpy().tobytes()).hexdigest(), repr(fit.elbo[-1]))
    """
)


def test_seeded_runs_are_identical_in_process_and_across_processes():
    outs = [
        subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    assert outs[0] == outs[1] and len(outs[0].split()) == 2
    namespace = {}
    import contextlib

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(SCRIPT, namespace)
    assert buf.getvalue() == outs[0]


def test_isolation_guides_with_identical_site_names_keep_their_own_values():
    x, y = data()
    a = BNN(make_net(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0), name="same-arch-a")
    b = BNN(make_net(), dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0), name="same-arch-b")
    a.fit(x, y, epochs=5, lr=0.1, progress=False)
    b.fit(x, 2 * y, epochs=5, lr=0.1, progress=False)
    la = a.guide.loc_scale()["2.weight"][0]
    lb = b.guide.loc_scale()["2.weight"][0]
    assert not torch.equal(la, lb)
    a.fit(x, y, epochs=1, lr=0.1, progress=False)
    assert torch.equal(b.guide.loc_scale()["2.weight"][0], lb)
    assert os.environ.get("PWNED") is None
