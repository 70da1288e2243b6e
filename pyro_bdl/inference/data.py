"""Where a fit's minibatches come from: tensors reshuffled by the fit's generator, or a
DataLoader yielding ``(x, y)`` pairs. A strategy decides which rows of each batch a process reads
(see :mod:`pyro_bdl.inference.strategies`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from .._checks import positive_int
from .strategies import checksum

__all__ = ["LoaderBatches", "TensorBatches", "make_batches"]


class TensorBatches:
    """Minibatches of tensors, reshuffled every epoch by the fit's generator.

    :param x: inputs ``(N, ...)``.
    :param y: targets ``(N, ...)``.
    :param batch_size: minibatch size (``None``: all N).
    :param shuffle: draw a new order each epoch (when ``batch_size < N``).

    Example::

        >>> data = TensorBatches(torch.zeros(5, 1), torch.zeros(5), batch_size=2, shuffle=False)
        >>> [len(xb) for xb, _ in data.epoch(torch.Generator())]
        [2, 2, 1]
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None, shuffle: bool = True
    ) -> None:
        self.x, self.y = x, y
        self.size = len(x)
        self.batch_size = self.size if batch_size is None else min(batch_size, self.size)
        self.shuffle = shuffle

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The minibatches of one epoch."""
        n, bs = self.size, self.batch_size
        order = (
            torch.randperm(n, generator=generator, device="cpu")
            if self.shuffle and bs < n
            else None
        )
        for i in range(0, n, bs):
            idx = order[i : i + bs] if order is not None else slice(i, i + bs)
            yield self.x[idx], self.y[idx]

    def example(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Two rows, for probes (building parameters, choosing the estimator)."""
        return self.x[:2], self.y[:2]

    def checksums(self) -> list[float]:
        """Cheap fingerprints of x and y (data-parallel ranks compare them)."""
        return [checksum(self.x), checksum(self.y)]

    def index_batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """The row indices of one epoch's minibatches, in :meth:`epoch`'s order."""
        n, bs = self.size, self.batch_size
        order = (
            torch.randperm(n, generator=generator, device="cpu")
            if self.shuffle and bs < n
            else None
        )
        for i in range(0, n, bs):
            yield (
                order[i : i + bs]
                if order is not None
                else torch.arange(i, min(i + bs, n), device="cpu")
            )


class LoaderBatches:
    """Minibatches from a ``DataLoader`` yielding ``(x, y)`` pairs, each checked as it comes.

    :param loader: the DataLoader over a map-style dataset (it owns the order; the fit's
        generator is not used).
    :param check: ``check(x, y) -> (x, y)`` applied to every batch.
    :raises TypeError: for an ``IterableDataset`` or a dataset without a length.
    """

    def __init__(
        self,
        loader: torch.utils.data.DataLoader,
        check: Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        self.loader = loader
        self.check = check
        if isinstance(loader.dataset, torch.utils.data.IterableDataset):
            raise TypeError(
                "Expected a DataLoader over a map-style dataset (indexable, with a length: N "
                "scales the ELBO, and data-parallel ranks read their rows of each batch), but "
                f"got an IterableDataset ({type(loader.dataset).__name__}). Use a map-style "
                "dataset, or tensors."
            )
        try:
            self.size = len(loader.dataset)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                "Expected a DataLoader over a dataset with a length (N, the data set size the "
                f"ELBO is scaled to), but got {type(loader.dataset).__name__} without __len__ "
                "(an IterableDataset?): give the dataset a __len__."
            ) from None

    def checksums(self) -> list[float]:
        """None: the dataset is not read up front."""
        return []

    def example(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The dataset's first row (checked), read without drawing a batch."""
        x0, y0 = self.loader.dataset[0]
        return self.check(torch.as_tensor(x0)[None], torch.as_tensor(y0)[None])

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The minibatches of one epoch."""
        for batch in self.loader:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError(
                    "Expected the DataLoader to yield (x, y) pairs, but got "
                    f"{type(batch).__name__} of length {len(batch)}."
                )
            yield self.check(*batch)


def make_batches(
    x: Any,
    y: Any,
    batch_size: int | None,
    shuffle: bool,
    check: Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]],
) -> TensorBatches | LoaderBatches:
    """The minibatch source of a fit: tensors ``(x, y)`` or a DataLoader ``x`` (``y=None``).

    :param check: ``check(x, y) -> (x, y)``, applied to the tensors once or to every batch.
    :raises ValueError: for ``y`` given with a DataLoader, or a bad ``batch_size``.

    Example::

        >>> make_batches(torch.zeros(5, 1), torch.zeros(5), 2, True, lambda x, y: (x, y)).size
        5
    """
    if isinstance(x, torch.utils.data.DataLoader):
        if y is not None:
            raise ValueError("Expected y=None when x is a DataLoader (it yields (x, y) pairs).")
        return LoaderBatches(x, check)
    x, y = check(x, y)
    batch_size = positive_int("batch_size", batch_size, optional=True)
    return TensorBatches(x, y, batch_size, shuffle)
