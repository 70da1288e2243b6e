"""Priors: shapes, dtypes, formulas, the accepted forms, and the include predicate; each
built-in prior passes :class:`pyro_bdl.testing.PriorContract`."""

import math

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_bdl.priors import (
    CallablePrior,
    DictPrior,
    IIDPrior,
    LayerwiseNormalPrior,
    Prior,
    ScaleMixturePrior,
    as_prior,
)
from pyro_bdl.testing import PriorContract


def net():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_iid_prior_expands_and_follows_dtype():
    prior = IIDPrior(dist.Normal(torch.tensor(0.0, dtype=torch.float32), 2.0))
    p = torch.zeros(3, 4, dtype=torch.float64)
    d = prior.site_dist("0.weight", p)
    assert d.event_shape == (3, 4) and d.batch_shape == ()
    assert d.mean.dtype == torch.float64
    x = torch.randn(3, 4)
    torch.testing.assert_close(d.log_prob(x), dist.Normal(0.0, 2.0).log_prob(x).sum())


def test_scalar_parameter_site():
    d = IIDPrior(dist.Normal(0.0, 1.0)).site_dist("s", torch.zeros(()))
    assert d.event_shape == () and d.batch_shape == ()


@pytest.mark.parametrize(
    "method, expected",
    [
        ("radford", 1 / math.sqrt(4)),
        ("kaiming", math.sqrt(2.0) / math.sqrt(4)),
        ("xavier", math.sqrt(2.0) * math.sqrt(2.0 / (4 + 3))),
    ],
)
def test_layerwise_normal_std(method, expected):
    d = LayerwiseNormalPrior(method).prior_dist("0.weight", torch.zeros(3, 4))
    assert d.scale.item() == pytest.approx(expected, rel=1e-12)
    bias = LayerwiseNormalPrior(method).prior_dist("0.bias", torch.zeros(9))
    assert bias.scale.item() == pytest.approx(
        expected * math.sqrt(4 / 9) if method != "xavier" else math.sqrt(2.0) * math.sqrt(2 / 18)
    )


def test_layerwise_rejects_unknown_method():
    with pytest.raises(ValueError, match="Expected method in .* but got 'he'"):
        LayerwiseNormalPrior("he")


def test_scale_mixture_log_density():
    prior = ScaleMixturePrior(0.25, 1.0, 0.01)
    w = torch.tensor([0.0, 0.003, -0.5, 2.0])
    got = prior.site_dist("w", w).log_prob(w)
    n1 = torch.distributions.Normal(0.0, 1.0).log_prob(w).exp()
    n2 = torch.distributions.Normal(0.0, 0.01).log_prob(w).exp()
    torch.testing.assert_close(got, torch.log(0.25 * n1 + 0.75 * n2).sum())
    with pytest.raises(ValueError, match="0 < pi < 1"):
        ScaleMixturePrior(1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="sigma1, sigma2 > 0"):
        ScaleMixturePrior(0.5, -1.0, 0.1)


def test_dict_prior_selects_its_keys_and_rejects_unknown_names():
    normal = dist.Normal(0.0, 1.0)
    prior = as_prior({"2.weight": normal, "2.bias": None, "0.weight": None, "0.bias": None})
    assert isinstance(prior, DictPrior)
    assert [n for n, _ in prior.random_parameters(net())] == ["2.weight"]
    bad = as_prior({"2.wieght": normal})
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['2.wieght'\]"):
        bad.random_parameters(net())
    with pytest.raises(TypeError, match=r"Expected a Distribution \(or None: deterministic\) for "):
        DictPrior({"0.bias": 1.0})
    with pytest.raises(ValueError, match="selected none"):
        DictPrior({"0.weight": None}, unlisted="deterministic").random_parameters(net())
    with pytest.raises(ValueError, match=r"unlisted in \('error', 'deterministic'\)"):
        DictPrior({"0.weight": normal}, unlisted="ignore")


def test_dict_prior_omitting_a_parameter_is_an_error_naming_it():
    normal = dist.Normal(0.0, 1.0)
    prior = as_prior({"0.weight": normal, "2.weight": normal})
    with pytest.raises(ValueError, match=r"no entry for \['0.bias', '2.bias'\]\. .*None"):
        prior.random_parameters(net())
    # the same from BNN, before anything is built
    from pyro_bdl import BNN, Categorical

    with pytest.raises(ValueError, match=r"no entry for \['0.bias', '2.bias'\]"):
        BNN(net(), {"0.weight": normal, "2.weight": normal}, Categorical())


def test_dict_prior_keeps_documented_ways_to_make_parameters_deterministic():
    """A last-layer BNN from a dict: None entries, unlisted='deterministic', or include=."""
    from pyro_bdl import BNN, Categorical

    normal = dist.Normal(0.0, 1.0)
    last = {"2.weight": normal, "2.bias": normal}
    ways = [
        DictPrior({**last, "0.weight": None, "0.bias": None}),
        DictPrior(last, unlisted="deterministic"),
        DictPrior(last, include=lambda n, p: n.startswith("2.")),
        as_prior(last, include=lambda n, p: n.startswith("2.")),
    ]
    for prior in ways:
        assert [n for n, _ in prior.random_parameters(net())] == ["2.weight", "2.bias"]
        assert prior.site_dist("2.bias", torch.zeros(2)).event_shape == (2,)
    bnn = BNN(net(), last, Categorical(), include=lambda n, p: n.startswith("2."))
    assert bnn.random_names == ["2.weight", "2.bias"]
    assert bnn.deterministic_names == ["0.weight", "0.bias"]
    # an include that keeps a parameter without an entry still names it
    with pytest.raises(ValueError, match=r"no entry for \['0.bias'\]"):
        DictPrior(last, include=lambda n, p: n != "0.weight").random_parameters(net())


def test_dict_prior_config_round_trip_keeps_none_entries_and_reads_old_configs():
    normal = dist.Normal(0.0, 1.0)
    prior = DictPrior({"2.weight": normal, "2.bias": normal, "0.weight": None, "0.bias": None})
    config = prior.config()
    assert config is not None and config["priors"]["0.weight"] is None
    again = DictPrior.from_config(config)
    assert again.unlisted == "error" and again.priors["0.bias"] is None
    assert [n for n, _ in again.random_parameters(net())] == ["2.weight", "2.bias"]
    # a config written before None entries existed: unlisted parameters were deterministic
    old = {"priors": {"2.weight": config["priors"]["2.weight"]}}
    assert [n for n, _ in DictPrior.from_config(old).random_parameters(net())] == ["2.weight"]


def test_callable_prior_none_means_deterministic():
    prior = as_prior(lambda n, p: dist.Normal(0.0, 1.0) if p.dim() == 2 else None)
    assert isinstance(prior, CallablePrior)
    assert [n for n, _ in prior.random_parameters(net())] == ["0.weight", "2.weight"]


def test_include_predicate_and_no_mutation_of_the_callers_prior():
    base = IIDPrior(dist.Normal(0.0, 1.0))
    last = as_prior(base, include=lambda n, p: n.startswith("2."))
    assert [n for n, _ in last.random_parameters(net())] == ["2.weight", "2.bias"]
    assert base.include is None  # the caller's object is unchanged
    with pytest.raises(ValueError, match="selected none"):
        as_prior(base, include=lambda n, p: False).random_parameters(net())


def test_prior_shape_errors_and_bad_forms():
    class Wrong(Prior):
        def prior_dist(self, name, param):
            return dist.Normal(torch.zeros(5), 1.0)

    with pytest.raises(ValueError, match=r"broadcastable to \(3, 4\)"):
        Wrong().site_dist("w", torch.zeros(3, 4))
    with pytest.raises(TypeError, match="Expected a Prior, a Distribution"):
        as_prior(3.0)
    with pytest.raises(ValueError, match="scalar distribution"):
        IIDPrior(dist.Normal(torch.zeros(2), 1.0))
    with pytest.raises(TypeError, match="callable"):
        IIDPrior(dist.Normal(0.0, 1.0), include="weights")


# ------------------------------------------------------------- the shipped contract, per prior
class TestIIDPriorContract(PriorContract):
    def make(self):
        return IIDPrior(dist.Normal(0.0, 2.0))


class TestIIDPriorLastLayerContract(PriorContract):
    expected_random = ("2.weight", "2.bias")

    def make(self):
        return IIDPrior(dist.Laplace(0.0, 1.0), include=lambda name, p: name.startswith("2."))


@pytest.mark.parametrize("method", ["kaiming", "xavier", "radford"])
class TestLayerwiseNormalPriorContract(PriorContract):
    @pytest.fixture(autouse=True)
    def _method(self, method):
        self.method = method

    def make(self):
        return LayerwiseNormalPrior(self.method, nonlinearity="tanh")


class TestScaleMixturePriorContract(PriorContract):
    def make(self):
        return ScaleMixturePrior(0.25, 1.0, math.exp(-3))


class TestDictPriorLastLayerContract(PriorContract):
    expected_random = ("2.weight", "2.bias")

    def make(self):
        return DictPrior(
            {
                "0.weight": None,
                "0.bias": None,
                "2.weight": dist.Normal(0.0, 0.5),
                "2.bias": dist.Laplace(0.0, 1.0),
            }
        )
