"""MC dropout = the imported posterior, mask for mask: ``from_dropout_net(net).predict(x, S,
chunk_size=1, seed=s)`` equals S passes of ``net`` with dropout on after ``manual_seed(s)``, for
every placement of the dropout layers, and the layouts where no such equality can hold (the masks
do not reach the weights unchanged) are refused instead of read as a different model."""

import pytest
import torch
from torch import nn

from pyro_bdl import HomoskedasticGaussian
from pyro_bdl.guides import BernoulliDropout
from pyro_bdl.workflows.dropout_nets import from_dropout_net

S = 20


def mc_passes(net, x, seed):
    net.train()
    torch.manual_seed(seed)
    with torch.no_grad():
        return torch.stack([net(x).squeeze(-1) for _ in range(S)])


def imported_draws(net, x, seed):
    bnn = from_dropout_net(net, HomoskedasticGaussian(0.1))
    return bnn, bnn.predict(x, S, chunk_size=1, seed=seed).samples


LAYOUTS = {
    # dropout before every Linear
    "every layer": lambda: nn.Sequential(
        nn.Dropout(0.2), nn.Linear(3, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 1)
    ),
    # the dropout tutorial's net: no dropout before the first Linear
    "not the first": lambda: nn.Sequential(
        nn.Linear(3, 50), nn.Tanh(), nn.Dropout(0.1), nn.Linear(50, 1)
    ),
    "only the first": lambda: nn.Sequential(
        nn.Dropout(0.25), nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)
    ),
    # two Linear layers in a row without dropout between them
    "two in a row": lambda: nn.Sequential(
        nn.Dropout(0.2),
        nn.Linear(3, 16),
        nn.Linear(16, 8),
        nn.Tanh(),
        nn.Dropout(0.4),
        nn.Linear(8, 1),
    ),
    # modules the masks pass through unchanged may sit between dropout and its layer
    "through relu": lambda: nn.Sequential(
        nn.Linear(3, 16), nn.Dropout(0.3), nn.ReLU(), nn.Identity(), nn.Linear(16, 1)
    ),
    # nested containers: the dropout outside, its layer first in the next container
    "nested": lambda: nn.Sequential(
        nn.Linear(3, 16),
        nn.LeakyReLU(),
        nn.Dropout(0.3),
        nn.Sequential(nn.Sequential(nn.Linear(16, 8)), nn.Tanh()),
        nn.Linear(8, 1),
    ),
}

DROP = {  # the drop probability each layout's Linear layers get (0: no dropout before it)
    "every layer": [0.2, 0.3],
    "not the first": [0.0, 0.1],
    "only the first": [0.25, 0.0],
    "two in a row": [0.2, 0.0, 0.4],
    "through relu": [0.0, 0.3],
    "nested": [0.0, 0.3, 0.0],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_mask_for_mask_in_every_layout(layout):
    torch.manual_seed(0)
    net = LAYOUTS[layout]()
    x = torch.randn(30, 3)
    bnn, draws = imported_draws(net, x, seed=7)
    passes = mc_passes(net, x, seed=7)
    torch.testing.assert_close(draws, passes, rtol=0, atol=1e-12)
    assert float((passes[0] - passes[1]).abs().max()) > 1e-3  # dropout is on: draws differ
    assert list(bnn.guide.drop_probabilities().values()) == pytest.approx(DROP[layout])


def test_the_tutorials_net_in_float32():
    """The issue's exact case: the tutorial's float32 net, 20 draws, seed 7 (differed by 2.0)."""
    torch.manual_seed(0)
    net = LAYOUTS["not the first"]().float()
    x = torch.linspace(-1.5, 1.5, 301, dtype=torch.float32).unsqueeze(-1).expand(301, 3)
    _, draws = imported_draws(net, x.contiguous(), seed=7)
    passes = mc_passes(net, x.contiguous(), seed=7)
    assert draws.dtype == torch.float32
    # M = W / (1 - p) is stored and multiplied back: float32 rounding, nothing more
    torch.testing.assert_close(draws, passes, rtol=1e-5, atol=1e-5)


class OwnForward(nn.Module):
    """A net with its own forward, run in registration order: read as registered."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.drop, self.fc2 = (
            nn.Linear(3, 8),
            nn.Tanh(),
            nn.Dropout(0.3),
            nn.Linear(8, 1),
        )

    def forward(self, x):
        return self.fc2(self.drop(self.act(self.fc1(x))))


def test_a_net_with_its_own_forward_is_read_in_registration_order():
    torch.manual_seed(0)
    net = OwnForward()
    x = torch.randn(10, 3)
    bnn, draws = imported_draws(net, x, seed=3)
    torch.testing.assert_close(draws, mc_passes(net, x, seed=3), rtol=0, atol=1e-12)
    assert bnn.guide.drop_probabilities() == pytest.approx({"fc1.weight": 0.0, "fc2.weight": 0.3})


@pytest.mark.parametrize(
    "layers, match",
    [
        (  # the masks would go after the Tanh instead of before it: another model
            lambda: [nn.Linear(3, 8), nn.Dropout(0.3), nn.Tanh(), nn.Linear(8, 1)],
            r"masks of dropout layer '1' to reach layer '3' unchanged, but Tanh '2'",
        ),
        (
            lambda: [nn.Linear(3, 8), nn.Dropout(0.3), nn.BatchNorm1d(8), nn.Linear(8, 1)],
            r"BatchNorm1d '2' runs between them",
        ),
        (
            lambda: [nn.Dropout(0.3), nn.Sequential(nn.Sigmoid(), nn.Linear(3, 1))],
            r"but Sigmoid '1.0' runs between them",
        ),
        (  # two dropout layers before one layer: one would be lost
            lambda: [nn.Dropout(0.1), nn.Dropout(0.2), nn.Linear(3, 1)],
            r"one dropout layer before each Linear/Conv layer, but Dropout '1' follows Dropout '0'",
        ),
        (  # dropout of the outputs: a distribution over no weight
            lambda: [nn.Dropout(0.1), nn.Linear(3, 4), nn.Dropout(0.2)],
            r"Linear/Conv layer after every dropout layer, but Dropout '2' drops the network's",
        ),
    ],
)
def test_layouts_without_an_equality_are_refused(layers, match):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=match):
        from_dropout_net(nn.Sequential(*layers()), HomoskedasticGaussian(0.1))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_a_drop_probability_outside_the_interval_says_so(p):
    with pytest.raises(ValueError, match=r"in \[0, 1\), but got [-\w.]+\.$") as error:
        BernoulliDropout(p)
    assert "would drop every unit" not in str(error.value)
    with pytest.raises(ValueError, match=r"but got 1.0: p = 1 would drop every unit"):
        BernoulliDropout(1.0)
    with pytest.raises(ValueError, match=r"but got str '0.1': pass a float"):
        BernoulliDropout("0.1")
