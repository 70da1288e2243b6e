"""Shared test set-up: float64, fixed seeds, a clean Pyro param store for every test.

Also :func:`require_or_skip`, for tests that need something outside Python (a system package,
a file that ``.ci/run`` installs): they skip on a developer's machine and fail under CI.
"""

import datetime
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import matplotlib
import pyro
import pytest
import torch
import torch.distributed as tdist

matplotlib.use("Agg")


def under_ci() -> bool:
    """Whether the environment variable ``CI`` is set to something other than empty/0/false."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


#: the repository's root (benchmarks/ and examples/ are scripts there, not packages)
ROOT = Path(__file__).resolve().parent.parent


def load_script(path: Path, name: str | None = None) -> ModuleType:
    """Import a script (``benchmarks/*.py``, ``examples/*.py``) as a module, without ``sys.path``.

    ``name`` (default ``"script_" + its stem``) is the module's ``__name__``; it is not put in
    ``sys.modules``.
    """
    spec = importlib.util.spec_from_file_location(name or f"script_{path.stem}", path)
    assert spec is not None and spec.loader is not None, f"cannot import {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_or_skip(reason: str) -> NoReturn:
    """Give up on the calling test because a requirement is missing: skip it, or fail under CI.

    ``.ci/run`` installs every system package the tests need and sets no fallbacks, so under CI
    (the variable ``CI`` set) a missing requirement is a broken CI machine, not a reason to skip.
    ``reason`` should say what is missing and how to install it.
    """
    if under_ci():
        pytest.fail(
            f"{reason}. CI is set, so this test fails instead of skipping: "
            "install it (.ci/run --install-only does) or unset CI to skip locally.",
            pytrace=False,
        )
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _float64_and_clean_state():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
    torch.set_default_dtype(dtype)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request) -> torch.device:
    """The devices to run a test on: the CPU always, CUDA (marked ``cuda``) where torch sees one.

    A GPU cannot be installed, so the CUDA case skips on machines without one, CI included
    (state in a closing note which machine ran it); ``pytest -m cuda`` runs only the CUDA cases.
    """
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device; torch.cuda.is_available() is False on this machine")
    return torch.device(request.param)


@pytest.fixture
def one_rank():
    """A one-process gloo group (an in-memory store) for the test, destroyed after it."""
    if tdist.is_initialized():
        pytest.skip("a process group is already initialised")
    tdist.init_process_group(
        "gloo",
        store=tdist.HashStore(),
        rank=0,
        world_size=1,
        timeout=datetime.timedelta(seconds=10),
    )
    yield
    tdist.destroy_process_group()
