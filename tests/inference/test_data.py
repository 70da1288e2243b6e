"""``pyro_bdl.inference.data``: tensor minibatches, DataLoader minibatches, ``make_batches``."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from pyro_bdl.inference.data import LoaderBatches, TensorBatches, make_batches
from pyro_bdl.inference.strategies import checksum


def rows(n=7):
    x = torch.arange(n, dtype=torch.float64).unsqueeze(-1) * torch.tensor([1.0, 10.0])
    return x, torch.arange(n, dtype=torch.float64)


def identity(x, y):
    return x, y


@pytest.mark.parametrize("shuffle", [True, False])
def test_epoch_and_index_batches_give_the_same_rows_in_the_same_order(shuffle):
    x, y = rows(7)
    data = TensorBatches(x, y, batch_size=3, shuffle=shuffle)
    batches = list(data.epoch(torch.Generator().manual_seed(4)))
    indices = list(data.index_batches(torch.Generator().manual_seed(4)))
    assert [len(b[0]) for b in batches] == [3, 3, 1]  # the last batch is partial
    assert [len(i) for i in indices] == [3, 3, 1]
    for (xb, yb), idx in zip(batches, indices, strict=True):
        assert torch.equal(xb, x[idx]) and torch.equal(yb, y[idx])
    order = torch.cat(indices)
    assert sorted(order.tolist()) == list(range(7))  # every row once
    if shuffle:
        expected = torch.randperm(7, generator=torch.Generator().manual_seed(4))
        assert torch.equal(order, expected)
    else:
        assert order.tolist() == list(range(7))


def test_the_generator_advances_from_epoch_to_epoch():
    x, y = rows(8)
    data = TensorBatches(x, y, batch_size=4)
    g = torch.Generator().manual_seed(0)
    first = torch.cat([yb for _, yb in data.epoch(g)])
    second = torch.cat([yb for _, yb in data.epoch(g)])
    assert not torch.equal(first, second)  # a new order each epoch (8! orders: p = 1/40320)
    g2 = torch.Generator().manual_seed(0)
    list(data.index_batches(g2))
    assert torch.equal(torch.cat(list(data.index_batches(g2))).double(), second)


def test_full_batch_and_oversized_batches_do_not_shuffle_or_draw():
    x, y = rows(5)
    for batch_size in (None, 5, 50):
        data = TensorBatches(x, y, batch_size=batch_size)
        assert data.batch_size == 5
        g = torch.Generator().manual_seed(0)
        state = g.get_state()
        ((xb, yb),) = list(data.epoch(g))
        assert torch.equal(yb, y) and torch.equal(g.get_state(), state)
    assert data.size == 5
    assert all(torch.equal(a, b[:2]) for a, b in zip(data.example(), (x, y), strict=True))
    assert data.checksums() == [checksum(x), checksum(y)] == [110.0, 10.0]


def test_make_batches_checks_once_and_refuses_bad_arguments():
    x, y = rows(5)
    calls = []

    def check(a, b):
        calls.append(len(a))
        return a, b

    data = make_batches(x, y, 2, False, check)
    assert isinstance(data, TensorBatches) and calls == [5]
    list(data.epoch(torch.Generator()))
    assert calls == [5]  # tensors are checked once, not per batch
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match=f"batch_size to be a positive int, but got {bad}"):
            make_batches(x, y, bad, True, identity)
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    with pytest.raises(ValueError, match="y=None when x is a DataLoader"):
        make_batches(loader, y, None, True, identity)
    assert isinstance(make_batches(loader, None, None, True, identity), LoaderBatches)


class Stream(IterableDataset):
    def __iter__(self):
        yield from zip(torch.zeros(3, 1), torch.zeros(3), strict=True)


class NoLength(Dataset):
    def __getitem__(self, i):
        return torch.zeros(1), torch.zeros(())


def test_loader_batches_refuses_iterable_datasets_and_datasets_without_a_length():
    with pytest.raises(TypeError, match=r"map-style dataset.*got an IterableDataset \(Stream\)"):
        LoaderBatches(DataLoader(Stream(), batch_size=2), identity)
    with pytest.raises(TypeError, match=r"got NoLength without __len__"):
        LoaderBatches(DataLoader(NoLength(), batch_size=2, sampler=[0, 1]), identity)


def test_loader_batches_check_every_batch_and_read_one_example_row():
    x, y = rows(5)
    seen = []

    def check(a, b):
        seen.append(a.shape)
        if not torch.isfinite(a).all():
            raise ValueError("Expected finite values in x")
        return a, b

    data = LoaderBatches(DataLoader(TensorDataset(x, y), batch_size=2), check)
    assert data.size == 5 and data.checksums() == []
    xe, ye = data.example()
    assert torch.equal(xe, x[:1]) and torch.equal(ye, y[:1]) and seen == [(1, 2)]
    batches = list(data.epoch(torch.Generator()))
    assert [len(b[0]) for b in batches] == [2, 2, 1] and seen[1:] == [(2, 2), (2, 2), (1, 2)]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    x_bad = x.clone()
    x_bad[3, 0] = float("nan")
    bad = LoaderBatches(DataLoader(TensorDataset(x_bad, y), batch_size=2), check)
    it = bad.epoch(torch.Generator())
    next(it)  # the first batch is fine; the second holds the NaN
    with pytest.raises(ValueError, match="finite"):
        next(it)


def test_loader_batches_refuse_batches_that_are_not_pairs():
    x, y = rows(4)
    data = LoaderBatches(DataLoader(TensorDataset(x, y, y), batch_size=2), identity)
    with pytest.raises(ValueError, match=r"\(x, y\) pairs, but got list of length 3"):
        list(data.epoch(torch.Generator()))
