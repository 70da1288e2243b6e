"""The one registry of the classes a saved file may name."""

import pyro.distributions as dist
import pytest

from pyro_bdl.guides import BernoulliDropout, ConcreteDropout, MeanFieldNormal
from pyro_bdl.likelihoods import Categorical, HomoskedasticGaussian
from pyro_bdl.priors import IIDPrior, LayerwiseNormalPrior, ScaleMixturePrior
from pyro_bdl.registry import Configurable, from_config, registered, to_config


def test_the_package_classes_register_under_their_class_names():
    assert {"IIDPrior", "LayerwiseNormalPrior", "ScaleMixturePrior", "DictPrior"} <= set(
        registered("prior")
    )
    assert {"Categorical", "Bernoulli", "HomoskedasticGaussian", "Distillation"} <= set(
        registered("likelihood")
    )
    assert set(registered("guide")) == {"MeanFieldNormal", "BernoulliDropout", "ConcreteDropout"}
    # the family bases are not types a file may name
    assert "Prior" not in registered("prior") and "Likelihood" not in registered("likelihood")


@pytest.mark.parametrize(
    "obj, kind",
    [
        (IIDPrior(dist.Normal(0.0, 2.0)), "prior"),
        (LayerwiseNormalPrior("xavier"), "prior"),
        (ScaleMixturePrior(0.25, 1.0, 0.01), "prior"),
        (Categorical(dataset_size=7), "likelihood"),
        (HomoskedasticGaussian(precision_prior=dist.Gamma(2.0, 3.0)), "likelihood"),
        (MeanFieldNormal(1e-3, estimator="flipout"), "guide"),
        (BernoulliDropout({"0.weight": 0.2}), "guide"),
        (ConcreteDropout(0.3), "guide"),
    ],
    ids=lambda o: type(o).__name__ if not isinstance(o, str) else o,
)
def test_plain_data_round_trip(obj, kind):
    data = to_config(obj)
    assert data is not None and data["type"] == type(obj).__name__
    again = from_config(data, kind)
    assert type(again) is type(obj)
    assert to_config(again) == data  # the same configuration, rebuilt from plain data only


def test_unknown_names_and_kinds_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"Expected a prior type among \[.*'IIDPrior'.*got 'os'"):
        from_config({"type": "os", "config": {}}, "prior")
    with pytest.raises(ValueError, match="Expected a likelihood type among"):
        from_config({"type": "IIDPrior", "config": {}}, "likelihood")  # a name of another kind


def test_a_user_class_registers_only_by_an_explicit_key():
    class Family(Configurable):
        config_kind = "test-family"

    class Implicit(Family):  # defined outside pyro_bdl, no config_key: not registered
        pass

    class Explicit(Family):
        config_key = "explicit-v1"

        def __init__(self, a: int) -> None:
            self.a = a

        def config(self) -> dict:
            return {"a": self.a}

    assert set(registered("test-family")) == {"explicit-v1"}
    assert from_config(to_config(Explicit(3)), "test-family").a == 3
    assert to_config(Implicit()) is None  # not describable: config() is None by default
