"""Indexing a Prediction over its data points (issue #15, item 12): ``pred[index]`` is the
prediction at the selected points, so every summary of the slice equals the slice of the full
summary, for every kind and every kind of index."""

import numpy as np
import pytest
import torch
from torch.distributions import Independent, LogisticNormal, Normal, Poisson, StudentT

from pyro_bdl.uncertainty import Prediction

S, N = 30, 9


def predictions() -> dict[str, Prediction]:
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    probs = torch.softmax(randn(S, N, 4), -1)
    loc, scale = randn(S, N), randn(S, N).exp()
    return {
        "categorical": Prediction("categorical", samples=probs, outputs=randn(S, N, 4)),
        "bernoulli": Prediction("bernoulli", samples=torch.sigmoid(randn(S, N, 2))),
        "gaussian": Prediction("gaussian", samples=loc, scale=scale),
        "gaussian_noise_free": Prediction("gaussian", samples=loc),
        "gaussian_one_scale": Prediction("gaussian", samples=loc, scale=torch.tensor(0.5)),
        # generic: moments from the family (StudentT, Poisson), or Monte Carlo (LogisticNormal
        # has no mean), in one or several chunks, with event dims (Independent)
        "student_t": Prediction.from_dist(StudentT(3.0 + scale, loc, scale), mc_draws=300),
        "poisson_chunks": Prediction.cat(
            [Prediction.from_dist(Poisson(scale[:10])), Prediction.from_dist(Poisson(scale[10:]))]
        ),
        "independent": Prediction.from_dist(
            Independent(Normal(randn(S, N, 3), 1.0), 1), closed_form=False, mc_draws=50
        ),
        "logistic_normal": Prediction.from_dist(LogisticNormal(randn(S, N, 2), 1.0), mc_draws=50),
    }


def targets(pred: Prediction) -> torch.Tensor:
    if pred.kind == "categorical":
        return torch.arange(N) % 4
    if pred.kind == "bernoulli":
        return (torch.arange(2 * N).reshape(N, 2) % 3 == 0).double()
    if pred.dists and isinstance(pred.dists[0], Poisson):
        return torch.arange(N).double() % 3
    if pred.dists and isinstance(pred.dists[0], LogisticNormal):
        return torch.tensor([0.2, 0.3, 0.5]).expand(N, 3)
    return torch.linspace(-1, 1, N * pred.samples[0, 0].numel()).reshape(pred.samples.shape[1:])


INDICES = {
    "int": 3,
    "negative int": -1,
    "numpy int": np.int64(4),
    "slice": slice(2, 7),
    "strided slice": slice(None, None, 3),
    "bool mask": torch.arange(N) % 2 == 0,
    "list": [8, 0, 5],
    "long tensor": torch.tensor([1, 1, 6]),
    "numpy array": np.array([7, 2]),
}


def positions(index) -> torch.Tensor:
    return torch.arange(N)[index].reshape(-1)


def assert_same(a, b, bisection=False):
    """Equal up to the rounding of a reduction over the draws (a sliced tensor may be summed in
    another order); with ``bisection``, up to the Gaussian quantile's tolerance (it stops when
    every point of the call has converged, so a slice may stop earlier)."""
    tol = 1e-10 if bisection else 1e-13
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("index", sorted(INDICES))
@pytest.mark.parametrize("kind", sorted(predictions()))
def test_a_slice_summarises_as_the_slice_of_the_summaries(kind, index):
    full = predictions()[kind]
    idx = INDICES[index]
    part, at = full[idx], positions(idx)
    assert type(part) is Prediction and part.kind == full.kind
    assert part.num_samples == S and part.samples.shape[1] == len(at)
    assert torch.equal(part.samples, full.samples[:, at])
    if full.scale is not None:
        assert torch.equal(part.scale, full.scale[:, at])
    if full.outputs is not None:
        assert torch.equal(part.outputs, full.outputs[:, at])
    assert_same(part.mean, full.mean[at])
    assert_same(part.variance, full.variance[at])
    parts, whole = part.decompose(), full.decompose()
    assert parts.kind == whole.kind
    for field in ("total", "aleatoric", "epistemic"):
        assert_same(parts[field], whole[field][at])
    y = targets(full)
    if not (full.kind == "gaussian" and full.scale is None):  # a point mass has no density
        assert_same(part.log_prob(y[at]), full.log_prob(y)[at])
    if full.kind in ("gaussian", "generic") and full.scale is not None or full.kind == "generic":
        bisection = full.kind == "gaussian"  # generic: the same seeded draws, indexed
        for a, b in zip(part.interval(0.9), full.interval(0.9), strict=True):
            assert_same(a, b[at], bisection)
        assert_same(part.quantile(0.3), full.quantile(0.3)[at], bisection)


@pytest.mark.parametrize("kind", ["gaussian", "student_t", "poisson_chunks"])
def test_indexing_composes(kind):
    full = predictions()[kind]
    twice = full[1:8][torch.tensor([True, False, True, True, False, False, True])]
    at = torch.tensor([1, 3, 4, 7])
    assert torch.equal(twice.samples, full.samples[:, at])
    bisection = full.kind == "gaussian"
    assert_same(twice.interval(0.5)[1], full.interval(0.5)[1][at], bisection)
    assert_same(twice.decompose().epistemic, full.decompose().epistemic[at])


def test_a_slice_of_a_generic_prediction_keeps_per_point_distributions():
    full = predictions()["student_t"]
    part = full[2:4]
    d = part.dist
    assert isinstance(d, StudentT) and d.batch_shape == (S, 2)
    torch.testing.assert_close(d.loc, full.dist.loc[:, 2:4], rtol=0, atol=0)
    assert part.mc_draws == full.mc_draws and part.seed == full.seed
    assert repr(part).endswith("shape=(30, 2), family=StudentT)")
    assert full.samples.shape == (S, N)  # the original is untouched


def test_bad_indices_are_refused_saying_what_is_expected():
    pred = predictions()["gaussian"]
    with pytest.raises(
        IndexError, match=rf"Expected an int, a slice, a boolean mask of length {N}"
    ):
        pred[N]
    with pytest.raises(IndexError, match="boolean mask of length"):
        pred[torch.ones(3, dtype=torch.bool)]
    with pytest.raises(TypeError, match="indexed over its data points only"):
        pred[0, 1]
    with pytest.raises(TypeError, match="indexed over its data points only"):
        pred[None]
    with pytest.raises(ValueError, match="selects none"):
        pred[torch.zeros(N, dtype=torch.bool)]
    with pytest.raises(TypeError, match="got a 2-D index"):
        pred[torch.zeros(2, 2, dtype=torch.long)]
    odd = Prediction("gaussian", samples=torch.zeros(S, N), outputs=torch.zeros(5))
    with pytest.raises(ValueError, match=r"outputs of shape \(S, N, \.\.\.\)"):
        odd[0:2]
