"""numpy arrays, lists and pandas objects at the public entry points, and integral counts.

An array-like is converted as the equivalent tensor would be given (floating values in the
network's dtype and on its device, integers as ``torch.long``), so every result equals the one
from tensors, bitwise, from the same seed.
"""

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.arviz import psis_khat, to_inference_data
from pyro_bdl.distill import TeacherTargets, gaussian_teacher_targets, teacher_targets

N, D, C = 10, 3, 4


def data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(N, D, generator=g)
    return x, x.sum(-1) + 0.1 * torch.randn(N, generator=g), torch.arange(N) % C


def regression_bnn(dtype=torch.float64):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, 5), nn.Tanh(), nn.Linear(5, 1)).to(dtype)
    bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.3))
    bnn.mark_fitted()  # these tests compare inputs, not posteriors: the initial q will do
    return bnn


def classifier():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, 5), nn.Tanh(), nn.Linear(5, C))
    return BNN(net, dist.Normal(0.0, 1.0), Categorical())


def fitted(bnn, x, y, **kw):
    result = bnn.fit(x, y, epochs=3, batch_size=4, seed=0, progress=False, **kw)
    return result.elbo, bnn.predict(x, 5, seed=1).samples


def test_fit_and_predict_take_numpy_and_lists_as_the_equivalent_tensors():
    x, y, _ = data()
    want = fitted(regression_bnn(), x, y)
    for xs, ys in [(x.numpy(), y.numpy()), (x.tolist(), y.tolist()), (x.numpy(), y[:, None])]:
        got = fitted(regression_bnn(), xs, ys)
        assert got[0] == want[0]
        assert torch.equal(got[1], want[1])


def test_float64_arrays_take_a_float32_networks_dtype():
    """numpy's default float64 meets nn.Module's default float32: converted, not refused."""
    x, y, _ = data()
    want = fitted(regression_bnn(torch.float32), x.float(), y.float())
    got = fitted(regression_bnn(torch.float32), x.numpy(), y.numpy())
    assert x.numpy().dtype == np.float64 and got[1].dtype == torch.float32
    assert got[0] == want[0] and torch.equal(got[1], want[1])
    # a float64 *tensor* is still refused: tensors are never converted behind the user's back
    with pytest.raises(TypeError, match="network's dtype torch.float32"):
        regression_bnn(torch.float32).predict(x, 2)


def test_integer_labels_stay_integral_in_any_container():
    pd = pytest.importorskip("pandas")  # optional: installed with ArviZ / xarray
    x, _, labels = data()
    want = fitted(classifier(), x, labels)
    frame = pd.DataFrame(x.numpy(), columns=["a", "b", "c"])
    for xs, ys in [
        (x.numpy(), labels.numpy().astype(np.int32)),
        (x.numpy(), labels.tolist()),
        (frame, pd.Series(labels.numpy())),
        (frame, pd.Series(labels.numpy()).astype("category").cat.codes),  # int8 codes
    ]:
        got = fitted(classifier(), xs, ys)
        assert got[0] == want[0] and torch.equal(got[1], want[1])
    # float labels are refused as a float tensor is
    with pytest.raises(TypeError, match=r"class labels .*long"):
        classifier().fit(x.numpy(), labels.numpy().astype(float), progress=False)
    # non-numeric columns get a message saying how to convert them
    with pytest.raises(TypeError, match=r"hold real numbers.*to_numpy\(dtype=float\)"):
        classifier().predict(frame.assign(c=list("abcdefghij")), 2)


def test_other_entry_points_take_arrays():
    x, y, _ = data()
    bnn = regression_bnn()
    bnn.fit(x, y, epochs=2, seed=0, progress=False)
    samples = {k: v.unsqueeze(0) for k, v in bnn.net.named_parameters()}
    samples = {k: v.detach() for k, v in samples.items()}
    want = bnn.predict_from_samples(x, samples).samples
    assert torch.equal(bnn.predict_from_samples(x.numpy(), samples).samples, want)
    a = bnn.posterior(x.numpy()).sample(3, offset=0)
    b = bnn.posterior(x).sample(3, offset=0)
    assert a.sites.keys() == b.sites.keys()
    checked_x, checked_y = bnn.check_data(x.numpy(), y.tolist())
    assert torch.equal(checked_x, x) and checked_y is not None and torch.equal(checked_y, y)
    khat = psis_khat(bnn, x.numpy(), y.numpy(), num_samples=20, seed=0).khat
    assert khat == psis_khat(bnn, x, y, num_samples=20, seed=0).khat
    idata = to_inference_data(bnn, x.numpy(), y.numpy(), num_samples=np.int64(4), seed=0)
    assert idata.posterior["obs_mean"].shape == (1, 4, N)
    gauss = gaussian_teacher_targets(bnn, x.numpy(), num_samples=np.int64(4), seed=0)
    assert torch.equal(gauss, gaussian_teacher_targets(bnn, x, num_samples=4, seed=0))


def test_teacher_targets_take_arrays_in_the_teachers_dtype():
    x, _, _ = data()
    teacher = nn.Linear(D, C)  # float64 here (conftest's default dtype)
    soft = teacher_targets(teacher, x.numpy(), 2.0)
    assert torch.equal(soft, teacher_targets(teacher, x, 2.0))
    float32_teacher = nn.Linear(D, C).float()
    assert teacher_targets(float32_teacher, x.numpy(), 2.0).dtype == torch.float32
    data_set = TeacherTargets(teacher, x.tolist(), 2.0, num_samples=np.int64(3))
    assert torch.equal(data_set.x, x) and data_set.num_samples == 3


def test_integral_counts_of_any_type_are_accepted_and_floats_refused():
    x, y, _ = data()
    counts = dict(epochs=2, batch_size=4, num_particles=2)
    want = regression_bnn().fit(x, y, seed=0, progress=False, **counts).elbo
    numpy_counts = {k: np.int64(v) for k, v in counts.items()}
    assert regression_bnn().fit(x, y, seed=np.int32(0), progress=False, **numpy_counts).elbo == (
        want
    )
    bnn = regression_bnn()
    pred = bnn.predict(x, np.int64(6), chunk_size=np.uint8(4), seed=np.int64(2))
    assert pred.samples.shape[0] == 6
    assert torch.equal(pred.samples, bnn.predict(x, 6, chunk_size=4, seed=2).samples)
    with pytest.raises(ValueError, match=r"num_samples to be a positive int, but got 5.0\. .*int"):
        bnn.predict(x, 5.0)
    with pytest.raises(ValueError, match="epochs to be a positive int, but got True"):
        bnn.fit(x, y, epochs=True, progress=False)
    with pytest.raises(ValueError, match="num_samples to be a positive int, but got np.int64"):
        bnn.predict(x, np.int64(0))


def test_conversion_rules_at_the_edges():
    x, y, labels = data()
    bnn = regression_bnn()
    want = bnn.predict(x, 3, seed=0).samples
    # non-native byte order, read-only values (pandas' arrays are): converted, copied, no warning
    frozen = x.numpy().copy()
    frozen.flags.writeable = False
    for xs in (x.numpy().astype(">f8"), frozen):
        assert torch.equal(bnn.predict(xs, 3, seed=0).samples, want)
    # narrow unsigned integers are labels too
    fit8 = classifier().fit(x, labels.numpy().astype(np.uint8), epochs=2, seed=0, progress=False)
    assert fit8.elbo == classifier().fit(x, labels, epochs=2, seed=0, progress=False).elbo
    # a DataLoader is not an array-like: it is used as it is
    loader = torch.utils.data.DataLoader(list(zip(x, y, strict=True)), batch_size=5)
    assert regression_bnn().fit(loader, epochs=1, progress=False).num_steps == 2
    with pytest.raises(TypeError, match="x to be a tensor or a rectangular array of numbers"):
        bnn.predict([[1.0, 2.0, 3.0], [1.0]], 2)
    with pytest.raises(TypeError, match="x to hold real numbers.*complex128"):
        bnn.predict(np.ones((2, D), dtype=complex), 2)
    with pytest.raises(ValueError, match="finite values in x"):
        bnn.predict(np.full((2, D), np.nan), 2)
