"""``pyro_bdl.workflows.dropout_nets``: reading a plain dropout network as a posterior (nested
modules, a prefix, layers without dropout) and the errors of both directions. The export/import
round trip and the conv case are in ``tests/test_guides.py``."""

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian
from pyro_bdl.guides import AutoDropout, ConcreteDropout
from pyro_bdl.workflows.dropout_nets import from_dropout_net, to_dropout_net


def nested_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Dropout(0.1), nn.Linear(3, 6)),
        nn.ReLU(),
        nn.Linear(6, 5),  # no dropout before it: p = 0
        nn.Tanh(),
        nn.Dropout(0.4),
        nn.Linear(5, 3),
    )


def test_reads_p_per_layer_and_m_from_a_nested_net_with_a_prefix():
    net = nested_net()
    bnn = from_dropout_net(net, Categorical(), prefix="f.", name="nested")
    assert isinstance(bnn.guide, AutoDropout) and bnn.name == "nested"
    bnn.predict(torch.randn(2, 3), 1)  # builds the guide
    assert bnn.guide.drop_probabilities() == pytest.approx(
        {"f.0.1.weight": 0.1, "f.2.weight": 0.0, "f.5.weight": 0.4}, abs=1e-15
    )
    assert bnn.random_names == [
        "0.1.weight",
        "0.1.bias",
        "2.weight",
        "2.bias",
        "5.weight",
        "5.bias",
    ]
    for name, p in (("0.1.weight", 0.1), ("5.weight", 0.4)):
        q = bnn.guide.get_site_dist("f." + name)
        w = dict(net.named_parameters())[name]
        torch.testing.assert_close(q.loc, w / (1 - p), rtol=0, atol=1e-14)  # M = W / (1 - p)
        torch.testing.assert_close(q.mean, w, rtol=0, atol=1e-14)
    # the original network is left as it was; the copy has no dropout layers
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 2
    assert not any(isinstance(m, nn.Dropout) for m in bnn.net.modules())
    assert bnn.net is not net


def dropout_everywhere():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Dropout(0.1), nn.Linear(3, 6)),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(6, 5),
        nn.Tanh(),
        nn.Dropout(0.4),
        nn.Linear(5, 3),
    )


def last_layer_dropout():
    """The docstring's example: dropout before the last layer only (the first has p = 0)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.25), nn.Linear(4, 3))


@pytest.mark.parametrize(
    "make",
    [
        dropout_everywhere,
        nested_net,
        last_layer_dropout,
    ],
)
def test_predictions_equal_mc_dropout_passes_of_the_original_net(make):
    net = make()
    x = torch.randn(7, 3)
    bnn = from_dropout_net(net, Categorical(), prefix="f.")
    pred = bnn.predict(x, num_samples=5, chunk_size=1, seed=11)
    net.train()
    torch.manual_seed(11)
    with torch.no_grad():
        mc = torch.stack([torch.softmax(net(x), -1) for _ in range(5)])
    torch.testing.assert_close(pred.samples, mc, rtol=0, atol=1e-12)
    # and the draws do differ (dropout is on): not a deterministic net in disguise
    assert (mc[0] - mc[1]).abs().max() > 1e-3


def test_from_dropout_net_errors():
    with pytest.raises(TypeError, match="nn.Module, but got function"):
        from_dropout_net(lambda x: x, Categorical())
    plain = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="found none.*BernoulliDropout"):
        from_dropout_net(plain, Categorical())
    trailing = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.2))  # no layer after the dropout
    with pytest.raises(ValueError, match="found none"):
        from_dropout_net(trailing, Categorical())
    with pytest.raises(
        ValueError, match=r"Expected Dropout before Linear '1', but got Dropout1d '0'"
    ):
        from_dropout_net(nn.Sequential(nn.Dropout1d(0.1), nn.Linear(2, 2)), Categorical())
    with pytest.raises(ValueError, match=r"Expected Dropout1d before Conv1d '1'.*Dropout2d '0'"):
        from_dropout_net(nn.Sequential(nn.Dropout2d(0.1), nn.Conv1d(1, 1, 1)), Categorical())


def test_to_dropout_net_errors():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(TypeError, match="dropout guide.*AutoMeanFieldNormal"):
        to_dropout_net(BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0)))
    concrete = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(1.0), guide=ConcreteDropout())
    with pytest.raises(RuntimeError, match="no parameters yet"):
        to_dropout_net(concrete)
    concrete.fit(torch.randn(4, 2), torch.randn(4), epochs=1, progress=False)
    with pytest.raises(ValueError, match="hard Bernoulli masks"):
        to_dropout_net(concrete)


def test_predictions_with_a_layer_without_dropout_are_draws_of_mc_dropout():
    """Whatever the random stream, each predicted row is the net under one of the 2^4 keep
    masks of the last layer's inputs (the first layer, p = 0, is never masked)."""
    net = last_layer_dropout()
    x = torch.randn(6, 3)
    bnn = from_dropout_net(net, Categorical())
    pred = bnn.predict(x, num_samples=20, chunk_size=1, seed=3)
    with torch.no_grad():
        h = torch.relu(net[0](x))  # (N, 4)
        masks = torch.tensor([[(k >> j) & 1 for j in range(4)] for k in range(16)]).double()
        outs = torch.softmax(net[3](h[None] * masks[:, None] / 0.75), -1)  # (16, N, 3)
    dist_to_masks = (pred.samples[:, None] - outs[None]).abs().amax(-1)  # (S, 16, N)
    assert dist_to_masks.amin(1).max() < 1e-12
    # and the masks vary (not all draws use the same mask)
    assert len({int(k) for k in dist_to_masks.argmin(1).flatten()}) > 1
