"""``pyro_bdl.report``: a deprecation shim of ``pyro_bdl.cli.report`` for one release."""

import importlib
import sys

import pytest

import pyro_bdl.cli.report as report


def test_the_shim_warns_and_re_exports_every_public_name(monkeypatch):
    monkeypatch.delitem(sys.modules, "pyro_bdl.report", raising=False)
    with pytest.warns(FutureWarning, match=r"import from pyro_bdl\.cli\.report"):
        shim = importlib.import_module("pyro_bdl.report")
    defined = {  # the public names cli.report defines (not those it imports)
        name
        for name, obj in vars(report).items()
        if not name.startswith("_")
        and (getattr(obj, "__module__", None) == report.__name__ or isinstance(obj, str | tuple))
    }
    assert set(shim.__all__) == set(report.__all__) == defined
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(report, name), name
