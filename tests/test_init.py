"""The package root: every public name loads lazily and is the object of its module."""

import importlib

import pytest

import pyro_bdl
from pyro_bdl import guides


def test_every_guide_class_is_a_top_level_name():
    """``MeanFieldNormal`` is top-level, so are the other guide builders and guide classes."""
    expected = ["AutoDropout", "AutoMeanFieldNormal", "BernoulliDropout", "ConcreteDropout"]
    expected += ["MeanFieldNormal", "PyroGuide"]
    for name in expected:
        assert name in pyro_bdl.__all__, name
        assert getattr(pyro_bdl, name) is getattr(guides, name), name
    from pyro_bdl import AutoDropout, BernoulliDropout, ConcreteDropout  # noqa: F401


def test_all_lists_exactly_the_loadable_names():
    for name in pyro_bdl.__all__:
        value = getattr(pyro_bdl, name)
        if name not in ("__version__", "distill"):
            module = importlib.import_module(value.__module__)
            assert value is getattr(module, value.__name__), name
    assert set(pyro_bdl.__all__) <= set(dir(pyro_bdl))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchGuide'"):
        pyro_bdl.NoSuchGuide  # noqa: B018
