"""Tests for pyro_bdl.datasets: ground truth of the toys, IDX parsing, digits, UCI protocol."""

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_bdl import datasets
from pyro_bdl.datasets import (
    FASHION_MNIST_CLASSES,
    find_uci_dir,
    linear_toy,
    load_digits,
    load_fashion_mnist,
    load_uci,
    read_idx,
    standardize,
    toy_mean,
    toy_noise_std,
    toy_regression,
    uci_splits,
)

from .conftest import require_or_skip

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# --------------------------------------------------------------------------------------------
# toy_regression / linear_toy
# --------------------------------------------------------------------------------------------


def test_toy_regression_shapes_and_gap():
    x, y, info = toy_regression(500, seed=3)
    assert x.shape == (500, 1) and y.shape == (500,)
    assert x.dtype == y.dtype == torch.float64
    x1 = x[:, 0]
    assert bool(((x1 >= -1.0) & (x1 <= 1.0)).all())
    assert not bool(info.in_gap(x1).any())
    assert not bool(((x1 > -0.3) & (x1 < 0.3)).any())
    # Both clusters have the same length, so roughly half the points fall on each side.
    assert 200 < int((x1 < 0).sum()) < 300
    assert info.gap == (-0.3, 0.3) and info.domain == (-1.0, 1.0)


def test_toy_regression_noise_matches_ground_truth():
    # 20000 draws: the residual mean and std have standard errors ~0.007 and ~0.005.
    for heteroskedastic in (True, False):
        x, y, info = toy_regression(20000, heteroskedastic=heteroskedastic, seed=0)
        z = (y - info.mean(x[:, 0])) / info.noise_std(x[:, 0])
        assert abs(float(z.mean())) < 0.03
        assert abs(float(z.std()) - 1.0) < 0.03
    x, _, info = toy_regression(10, heteroskedastic=False)
    assert torch.equal(info.noise_std(x), torch.full_like(x, 0.1))


def test_toy_functions_known_values():
    x = torch.tensor([-1.0, 0.0, 0.5], dtype=torch.float64)
    assert torch.allclose(toy_mean(x), torch.sin(4 * x))
    assert torch.allclose(toy_noise_std(x), torch.tensor([0.25, 0.05, 0.15], dtype=torch.float64))
    assert torch.allclose(toy_noise_std(x, heteroskedastic=False), torch.full_like(x, 0.1))


def test_toy_regression_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = toy_regression(50, seed=7)
    b = toy_regression(50, seed=7)
    c = toy_regression(50, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_toy_regression_options():
    x, y, info = toy_regression(300, gap=None, domain=(0.0, 2.0), dtype=torch.float32, seed=1)
    assert x.dtype == y.dtype == torch.float32
    assert info.gap is None and not bool(info.in_gap(x).any())
    assert float(x.min()) >= 0.0 and float(x.max()) <= 2.0
    assert int(((x > 0.8) & (x < 1.2)).sum()) > 0
    x, _, _ = toy_regression(300, gap=(-1.0, 0.5), seed=1)  # gap touching the domain edge
    assert float(x.min()) >= 0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, r"Expected n >= 1, got 0"),
        ({"n": 2.5}, TypeError, r"Expected n to be an int"),
        ({"gap": (0.5, 2.0)}, ValueError, r"Expected gap inside domain"),
        ({"gap": (-1.0, 1.0)}, ValueError, r"Expected gap inside domain"),
        ({"gap": (0.3, -0.3)}, ValueError, r"Expected gap = \(low, high\) with finite low < high"),
        ({"domain": (1.0,)}, ValueError, r"Expected domain to be a pair"),
        ({"dtype": torch.int64}, ValueError, r"floating point torch dtype.*got torch.int64"),
        ({"seed": -1}, ValueError, r"Expected seed to be an int in \[0, 2\*\*32\), but got -1"),
        ({"seed": 1.0}, TypeError, r"Expected seed to be an int in \[0, 2\*\*32\), but got 1.0"),
    ],
)
def test_toy_regression_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        toy_regression(**kwargs)


def test_linear_toy_recovers_truth():
    # OLS on 10000 points: slope/intercept standard errors ~0.01, residual std ~0.007.
    x, y = linear_toy(10000, seed=0)
    assert x.shape == (10000, 1) and y.shape == (10000,)
    design = torch.cat([x, torch.ones_like(x)], dim=1)
    coef = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution.squeeze(-1)
    assert torch.allclose(coef, torch.tensor([2.0, 8.0], dtype=torch.float64), atol=0.05)
    assert abs(float((y - design @ coef).std()) - 1.0) < 0.03
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1.0) < 0.03
    x0, y0 = linear_toy(20, slope=-1.0, intercept=0.5, noise=0.0, seed=4)
    assert torch.allclose(y0, -x0[:, 0] + 0.5)
    assert torch.equal(linear_toy(5, seed=4)[0], linear_toy(5, seed=4)[0])


def test_linear_toy_validation():
    with pytest.raises(ValueError, match=r"Expected noise >= 0, got -1.0"):
        linear_toy(10, noise=-1.0)
    with pytest.raises(ValueError, match=r"Expected a finite slope, got nan"):
        linear_toy(10, slope=float("nan"))


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def test_load_digits_split():
    data = load_digits(test_size=0.25, seed=0)
    assert data.x_train.shape == (1347, 64) and data.x_test.shape == (450, 64)
    assert data.x_train.dtype == torch.float64 and data.y_train.dtype == torch.long
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    assert data.x_ood is None and data.y_ood is None
    assert data.class_names == tuple("0123456789")
    # Stratified: every class has ~25 % of its images in the test split.
    counts_test = torch.bincount(data.y_test, minlength=10).double()
    counts_all = counts_test + torch.bincount(data.y_train, minlength=10).double()
    assert torch.allclose(counts_test / counts_all, torch.full((10,), 0.25), atol=0.01)
    again = load_digits(test_size=0.25, seed=0)
    other = load_digits(test_size=0.25, seed=1)
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_test, again.y_test)
    assert not torch.equal(data.y_test, other.y_test)


def test_load_digits_held_out_classes():
    full = load_digits()
    data = load_digits(held_out_classes=(7, 3), seed=0, dtype=torch.float32)
    assert data.held_out_classes == (3, 7)
    assert data.class_names == ("0", "1", "2", "4", "5", "6", "8", "9")
    assert set(data.y_train.tolist()) == set(range(8)) == set(data.y_test.tolist())
    assert data.x_ood is not None and data.y_ood is not None
    assert data.x_ood.dtype == torch.float32
    all_labels = torch.cat([full.y_train, full.y_test])
    n_ood = int(((all_labels == 3) | (all_labels == 7)).sum())
    assert data.x_ood.shape == (n_ood, 64) and set(data.y_ood.tolist()) == {3, 7}
    assert len(data.x_train) + len(data.x_test) + n_ood == 1797
    # Re-indexing: new label k is digit class_names[k]; e.g. digit 9 -> label 7.
    mean_img_full = torch.cat([full.x_train, full.x_test])[all_labels == 9].mean(0)
    mean_img_new = torch.cat([data.x_train, data.x_test])[
        torch.cat([data.y_train, data.y_test]) == 7
    ]
    assert torch.allclose(mean_img_new.double().mean(0), mean_img_full, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"held_out_classes": (10,)}, ValueError, r"held-out class in \[0, 9\], got 10"),
        ({"held_out_classes": (1, 1)}, ValueError, r"distinct held_out_classes"),
        ({"held_out_classes": tuple(range(9))}, ValueError, r"at least two classes"),
        ({"test_size": 1.5}, ValueError, r"test_size fraction in \(0, 1\), got 1.5"),
        ({"test_size": 5000}, ValueError, r"test_size between 1 and 1796"),
        ({"test_size": "big"}, TypeError, r"test_size to be a float or int"),
    ],
)
def test_load_digits_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_digits(**kwargs)


def test_load_digits_without_sklearn(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r"pip install scikit-learn.*pyro-bdl\[test\]"):
        load_digits()


# --------------------------------------------------------------------------------------------
# IDX / Fashion-MNIST
# --------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, type_code: int, compress: bool = False) -> Path:
    """Write ``array`` as an IDX file (big-endian header and data), optionally gzipped."""
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    payload = (
        bytes([0, 0, type_code, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + big_endian.tobytes()
    )
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def fake_fashion(root: Path, prefix: str, n: int, compress: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write_idx(root / f"{prefix}-images-idx3-ubyte", images, 0x08, compress)
    write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, 0x08, compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("dtype", "code"),
    [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float64, 0x0E)],
)
def test_read_idx_roundtrip(tmp_path, compress, dtype, code):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    path = write_idx(tmp_path / "a-idx3", array, code, compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    np.testing.assert_array_equal(read_idx(path, limit=1), array[:1])
    np.testing.assert_array_equal(read_idx(path, limit=10), array)


def test_read_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match=r"not an IDX file.*got 0x00000701"):
        read_idx(bad)
    path = write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8), 0x08)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"Truncated IDX file .*expected 10 bytes.*got 7"):
        read_idx(truncated)
    gz_truncated = tmp_path / "truncated.gz"
    gz_truncated.write_bytes(gzip.compress(path.read_bytes())[:-12])
    with pytest.raises(ValueError, match=r"IDX file"):
        read_idx(gz_truncated)
    trailing = tmp_path / "trailing"
    trailing.write_bytes(path.read_bytes() + b"\x01")
    with pytest.raises(ValueError, match=r"data past its declared shape \(10,\)"):
        read_idx(trailing)
    with pytest.raises(ValueError, match=r"Expected limit >= 1, got 0"):
        read_idx(path, limit=0)


@pytest.mark.parametrize("compress", [False, True])
def test_load_fashion_mnist_from_idx(tmp_path, compress):
    images, labels = fake_fashion(tmp_path, "t10k", 6, compress)
    x, y = load_fashion_mnist("test", root=tmp_path, dtype=torch.float32)
    assert x.shape == (6, 784) and x.dtype == torch.float32
    assert y.shape == (6,) and y.dtype == torch.long
    expected = torch.from_numpy(images.reshape(6, 784).astype(np.float32)) / 255
    assert torch.equal(x, expected)
    assert float(x[0, 0]) == 0.0 and float(x[0, 1]) == 1.0
    assert y.tolist() == labels.tolist()
    x3, y3 = load_fashion_mnist("test", root=str(tmp_path), limit=3, dtype=torch.float64)
    assert x3.shape == (3, 784) and x3.dtype == torch.float64
    assert torch.allclose(x3, expected[:3].double(), atol=1e-7) and torch.equal(y3, y[:3])
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*apt-get install"):
        load_fashion_mnist("train", root=tmp_path)


def test_load_fashion_mnist_validation(tmp_path):
    with pytest.raises(ValueError, match=r"Expected split 'train' or 'test', got 'val'"):
        load_fashion_mnist("val", root=tmp_path)
    fake_fashion(tmp_path, "train", 4, compress=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match=r"labels of shape \(4,\).*got uint8 of shape \(3,\)"):
        load_fashion_mnist("train", root=tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(4, 10, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match=r"labels in \[0, 9\].*maximum of 10"):
        load_fashion_mnist("train", root=tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 8, 8), np.uint8), 0x08)
    with pytest.raises(ValueError, match=r"shape \(N, 28, 28\).*got uint8 of shape \(4, 8, 8\)"):
        load_fashion_mnist("train", root=tmp_path)


def test_load_fashion_mnist_debian_package():
    if not DEBIAN_FASHION_MNIST.is_dir():
        require_or_skip(f"no {DEBIAN_FASHION_MNIST}: apt-get install -y dataset-fashion-mnist")
    x, y = load_fashion_mnist("test", limit=2000)
    assert x.shape == (2000, 784) and y.shape == (2000,)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(y.tolist()) == set(range(len(FASHION_MNIST_CLASSES)))


# --------------------------------------------------------------------------------------------
# UCI
# --------------------------------------------------------------------------------------------


def write_uci(folder: Path, data: np.ndarray, features, target, n_hidden=50, n_epochs=40):
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", data)
    (folder / "index_features.txt").write_text("".join(f"{i}\n" for i in features))
    (folder / "index_target.txt").write_text("".join(f"{i}\n" for i in target))
    (folder / "n_hidden.txt").write_text(f"{n_hidden}\n")
    (folder / "n_epochs.txt").write_text(f"{n_epochs}\n")
    return folder


@pytest.fixture
def shared_uci_dir():
    try:
        return find_uci_dir()
    except FileNotFoundError as error:
        pytest.skip(f"shared UCI data not found: {error}")


def test_load_uci_from_folder(tmp_path, monkeypatch):
    data = np.arange(30, dtype=np.float64).reshape(10, 3) / 4
    write_uci(tmp_path / "toy", data, features=[0, 2], target=[1], n_hidden=7, n_epochs=3)
    for source in (
        load_uci("toy", data_dir=tmp_path),
        load_uci(tmp_path / "toy", dtype=torch.float64),
        load_uci(str(tmp_path / "toy")),
    ):
        assert source.name == "toy" and len(source) == 10
        assert source.n_hidden == 7 and source.n_epochs == 3
        assert source.x.dtype == source.y.dtype == torch.float64
        np.testing.assert_array_equal(source.x.numpy(), data[:, [0, 2]])
        np.testing.assert_array_equal(source.y.numpy(), data[:, 1])
    monkeypatch.setenv("PYRO_BDL_UCI_DIR", str(tmp_path))
    assert find_uci_dir() == tmp_path
    assert load_uci("toy").path == tmp_path / "toy"


def test_load_uci_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_BDL_UCI_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"searched: .*missing.*PYRO_BDL_UCI_DIR"):
        load_uci("concrete")
    monkeypatch.delenv("PYRO_BDL_UCI_DIR")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "_REPO_ROOT", tmp_path / "repo")
    with pytest.raises(FileNotFoundError, match=r"shared/data/uci"):
        find_uci_dir()
    write_uci(tmp_path / "uci" / "a", np.ones((4, 2)), [0], [1])
    with pytest.raises(FileNotFoundError, match=r"'nope' not found.*Available in .*\['a'\]"):
        load_uci("nope", data_dir=tmp_path / "uci")
    write_uci(tmp_path / "uci" / "b", np.ones((4, 2)), [0], [0, 1])
    with pytest.raises(ValueError, match=r"Expected one target index.*got \[0, 1\]"):
        load_uci("b", data_dir=tmp_path / "uci")
    write_uci(tmp_path / "uci" / "c", np.ones((4, 2)), [0, 2], [1])
    with pytest.raises(ValueError, match=r"feature indices in \[0, 1\].*got \[0, 2\]"):
        load_uci("c", data_dir=tmp_path / "uci")
    (tmp_path / "uci" / "a" / "n_epochs.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"n_epochs.txt"):
        load_uci("a", data_dir=tmp_path / "uci")


@pytest.mark.parametrize(
    ("name", "shape", "sizes"),
    [
        ("bostonHousing", (506, 13), (455, 51)),
        ("boston", (506, 13), (455, 51)),
        ("concrete", (1030, 8), (927, 103)),
        ("wine-quality-red", (1599, 11), (1439, 160)),
        ("wine", (1599, 11), (1439, 160)),
    ],
)
def test_shared_uci_sets(shared_uci_dir, name, shape, sizes):
    data = load_uci(name)
    assert tuple(data.x.shape) == shape and tuple(data.y.shape) == shape[:1]
    assert data.n_hidden == 50 and data.n_epochs == 40
    assert bool(torch.isfinite(data.x).all()) and bool(torch.isfinite(data.y).all())
    splits = uci_splits(len(data))
    assert len(splits) == 20
    for train, test in splits:
        assert (len(train), len(test)) == sizes
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(data)))


@pytest.mark.parametrize("n", [5, 506, 1030, 1599])
def test_uci_splits_match_the_global_seed_recipe(n):
    saved = np.random.get_state()
    try:
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        splits = uci_splits(n)
        assert np.array_equal(np.random.get_state()[1], before)  # global state untouched
        np.random.seed(1)  # the PROVENANCE.md recipe, verbatim
        for train, test in splits:
            perm = np.random.choice(range(n), n, replace=False)
            assert np.array_equal(train, perm[: round(0.9 * n)])
            assert np.array_equal(test, perm[round(0.9 * n) :])
    finally:
        np.random.set_state(saved)


def test_uci_splits_arguments():
    a = uci_splits(50, num_splits=3, seed=2)
    assert len(a) == 3 and not np.array_equal(a[0][0], a[1][0])
    assert np.array_equal(a[0][1], uci_splits(50, num_splits=1, seed=2)[0][1])
    with pytest.raises(ValueError, match=r"non-empty 90/10 split.*got n=4"):
        uci_splits(4)
    with pytest.raises(ValueError, match=r"Expected num_splits >= 1, got 0"):
        uci_splits(10, num_splits=0)
    with pytest.raises(
        ValueError, match=r"Expected seed to be an int in \[0, 2\*\*32\), but got -1"
    ):
        uci_splits(10, seed=-1)
    assert uci_splits(10, seed=np.int64(2))[0][1].tolist() == uci_splits(10, seed=2)[0][1].tolist()


# --------------------------------------------------------------------------------------------
# standardize
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_standardize(backend):
    rng = np.random.default_rng(0)
    train = np.column_stack([rng.normal(3.0, 2.0, 50), np.full(50, 0.1), rng.uniform(size=50)])
    test = rng.normal(size=(7, 3))
    if backend == "torch":
        train, test = torch.from_numpy(train), torch.from_numpy(test)
    (train_s, test_s), mean, std = standardize(train, test)
    assert type(train_s) is type(train) and type(test_s) is type(test)
    to_np = np.asarray
    np.testing.assert_allclose(to_np(train_s.mean(0)), 0.0, atol=1e-12)
    np.testing.assert_allclose(to_np(train_s)[:, [0, 2]].std(0), 1.0, rtol=1e-12)  # ddof=0
    assert to_np(std)[1] == 1.0 and to_np(mean)[1] == 0.1
    assert np.all(to_np(train_s)[:, 1] == 0.0)
    np.testing.assert_allclose(to_np(test_s * std + mean), to_np(test), rtol=1e-12)
    np.testing.assert_allclose(to_np(std)[[0, 2]], np.asarray(train)[:, [0, 2]].std(0))
    (y_s,), y_mean, y_std = standardize(train[:, 0])
    assert y_mean.shape == () and y_std.shape == ()
    np.testing.assert_allclose(to_np(y_s), to_np(train_s[:, 0]), rtol=1e-12)


def test_standardize_validation():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"others\[0\] of shape \(M, 2\).*got shape \(3, 3\)"):
        standardize(x, np.zeros((3, 3)))
    with pytest.raises(TypeError, match=r"others\[0\] to be a ndarray like train, got Tensor"):
        standardize(x, torch.zeros(3, 2))
    with pytest.raises(TypeError, match=r"floating point train array, got dtype int64"):
        standardize(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"N >= 1, got shape \(0, 2\)"):
        standardize(np.zeros((0, 2)))
    with pytest.raises(TypeError, match=r"torch.Tensor or numpy.ndarray, got list"):
        standardize([1.0, 2.0])


# --------------------------------------------------------------------------------------------
# the default dtype
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("default", [torch.float32, torch.float64])
def test_every_loader_defaults_to_torchs_default_dtype(tmp_path, default):
    """The data take what a new ``nn.Module`` has, so they fit it without ``dtype=``."""
    torch.set_default_dtype(default)  # the conftest fixture restores float64 afterwards
    assert torch.nn.Linear(1, 1).weight.dtype == default
    fake_fashion(tmp_path, "t10k", 3, compress=False)
    write_uci(tmp_path / "toy", np.arange(12.0).reshape(4, 3) / 7, [0, 1], [2])
    x_toy, y_toy, _ = toy_regression(20, seed=0)
    x_lin, y_lin = linear_toy(20, seed=0)
    digits = load_digits(held_out_classes=(9,), seed=0)
    x_fashion, y_fashion = load_fashion_mnist("test", root=tmp_path)
    uci = load_uci(tmp_path / "toy")
    floating = [x_toy, y_toy, x_lin, y_lin, digits.x_train, digits.x_test, digits.x_ood]
    floating += [x_fashion, uci.x, uci.y]
    assert [t.dtype for t in floating] == [default] * len(floating)
    assert digits.y_train.dtype == y_fashion.dtype == torch.long
    # the values are those of the explicit dtype: the default only picks it
    assert torch.equal(x_toy, toy_regression(20, seed=0, dtype=default).x)
    assert torch.equal(x_lin, linear_toy(20, seed=0, dtype=default)[0])
    # and a default-dtype network takes them as they are
    torch.nn.Linear(1, 1)(x_toy)


def test_dataset_seeds_follow_the_one_seed_rule():
    for bad, error in ((-1, ValueError), (2**32, ValueError), (1.0, TypeError), ("0", TypeError)):
        with pytest.raises(error, match=r"Expected seed to be an int in \[0, 2\*\*32\)"):
            linear_toy(5, seed=bad)
    assert torch.equal(linear_toy(5, seed=np.int64(3))[0], linear_toy(5, seed=3)[0])
    assert torch.equal(toy_regression(5, seed=2**32 - 1).x, toy_regression(5, seed=2**32 - 1).x)
