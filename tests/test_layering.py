"""The package's layering (docs: ARCHITECTURE.md §1), checked on the source with ``ast``.

The table below decides, not the code: every module under ``pyro_bdl/`` must appear in
``LAYERS``; a module's name is its first component under ``pyro_bdl`` (``pyro_bdl/inference/
loop.py`` is ``inference``, ``pyro_bdl/__init__.py`` is ``__init__``). Every import statement
counts, also the lazy ones inside functions and those under ``if TYPE_CHECKING:``, with the
exceptions each check states. The checks:

(a) a module imports only from lower layers, or from a sibling along an edge of
    ``SIBLING_EDGES``; ``__init__`` may import anything, L7 may import anything lazily;
(b) no ``_private`` name is imported from another module of the package;
(c) nothing below L6 imports matplotlib, arviz or xarray (``TYPE_CHECKING`` blocks excepted);
(d) no import cycle among the modules at import time (top-level imports only).

``KNOWN_VIOLATIONS`` and ``KNOWN_PRIVATE_IMPORTS`` list today's violations; each entry must
still be one (a stale entry fails), so the lists can only shrink. Fix a violation, then delete
its entry.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

PACKAGE = "pyro_bdl"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# ---------------------------------------------------------------------------------- the table
#: ARCHITECTURE.md §1: module -> layer (0 = base ... 7 = app).
LAYERS: dict[str, int] = {
    # L0 base
    "_version": 0,
    "_checks": 0,
    "registry": 0,
    "nn": 0,
    "_linear_chain": 0,
    "distributions": 0,
    "datasets": 0,
    # L1 readout (torch only)
    "uncertainty": 1,
    "metrics": 1,
    "calibration": 1,  # recalibration: temperature scaling, conformal prediction
    # L2 nouns
    "priors": 2,
    "hierarchical": 2,  # hierarchical priors (hyper-sites), beside priors
    "likelihoods": 2,
    # L3 assembly
    "model": 3,
    "guides": 3,
    # L4 inference
    "inference": 4,
    "posteriors": 4,
    "infer": 4,  # alias of inference
    # L5 facade
    "serialization": 5,
    "bnn": 5,
    "checkpoint": 5,  # alias of serialization
    # L6 workflows
    "arviz": 6,
    "plots": 6,
    "workflows": 6,
    "distill": 6,
    "distributed": 6,
    "testing": 6,
    # L7 app: may import anything, lazily (a fast `pyro-bdl --help`)
    "cli": 7,
    "report": 7,
}
#: The package's ``__init__`` re-exports the public API: it may import anything, and importing
#: from it (``from . import __version__``) is an upward import from every other module.
INIT = "__init__"
INIT_LAYER = 8
APP_LAYER = 7
HEADLESS_BELOW = 6
#: Allowed edges between modules of one layer (importer, imported).
SIBLING_EDGES: frozenset[tuple[str, str]] = frozenset(
    {
        ("nn", "_linear_chain"),
        ("metrics", "uncertainty"),
        ("calibration", "uncertainty"),
        ("posteriors", "inference"),
        ("infer", "inference"),  # infer.py is the alias of inference.elbo
        ("checkpoint", "serialization"),  # checkpoint.py is the alias of the file format
        ("bnn", "serialization"),
        ("distill", "workflows"),
        ("hierarchical", "priors"),  # hierarchical priors derive from Prior
    }
)
#: Every L0 module may import these two.
SHARED_BASE = frozenset({"_checks", "_version"})
HEAVY = frozenset({"matplotlib", "arviz", "xarray"})

#: Today's layering violations (importer, imported). A ratchet: it may only shrink.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("report", "cli"),  # deprecation shim of pyro_bdl.cli.report, FutureWarning, one release
        ("guides", "workflows"),  # deprecation shim of BernoulliDropout.from_dropout_net
    }
)
#: Today's imports of a private name from another module (importer, module, name). A ratchet.
KNOWN_PRIVATE_IMPORTS: frozenset[tuple[str, str, str]] = frozenset({})

HOW_TO_FIX = (
    "Move the shared code down to a layer both may import (a public name in a lower module), "
    "pass it in as an argument, or, in a deprecation shim only, import lazily with a "
    "FutureWarning and list the edge in KNOWN_VIOLATIONS with a comment."
)


# ------------------------------------------------------------------------------- the scanner
@dataclass(frozen=True)
class Import:
    """One imported thing: ``module`` (first component under the package) and maybe a name."""

    importer: str
    module: str  # a top-level module of the package, or a third-party top-level name
    name: str | None  # for ``from M import name`` when ``name`` is not itself a module
    internal: bool
    lazy: bool  # inside a function body (runs when called, not at import time)
    type_checking: bool  # under ``if TYPE_CHECKING:`` (never runs)
    file: Path
    line: int

    @property
    def runtime_top_level(self) -> bool:
        return not (self.lazy or self.type_checking)

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT.parent)}:{self.line}"


def module_of(path: Path) -> str:
    """``pyro_bdl/inference/loop.py`` -> ``inference``; ``pyro_bdl/__init__.py`` -> ``__init__``."""
    parts = path.relative_to(ROOT).parts
    return parts[0].removesuffix(".py")


def source_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _is_submodule(dotted: str) -> bool:
    """Whether ``pyro_bdl.a.b`` names a module or package on disk."""
    path = ROOT.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _package_of(path: Path) -> list[str]:
    """The dotted package a file's relative imports start from, as parts."""
    return [PACKAGE, *path.relative_to(ROOT).parent.parts]


def _resolve(path: Path, level: int, module: str | None) -> str:
    """The absolute dotted name of ``from <level dots><module> import ...`` in ``path``."""
    base = _package_of(path)
    if level > len(base):
        raise AssertionError(f"{path}: relative import beyond the top-level package")
    if level:
        base = base[: len(base) - level + 1]
    else:
        base = []
    return ".".join([*base, *(module.split(".") if module else [])])


def _entries(dotted: str, names: list[str | None]) -> Iterator[tuple[str, str | None, bool]]:
    """(module, name, internal) for ``from dotted import names`` (``None``: plain import)."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        yield parts[0], None, False
        return
    if len(parts) >= 2:
        for name in names:
            is_module = name is None or _is_submodule(f"{dotted}.{name}")
            yield parts[1], None if is_module else name, True
        return
    for name in names:  # `import pyro_bdl` / `from pyro_bdl import x`
        if name is not None and _is_submodule(f"{PACKAGE}.{name}"):
            yield name, None, True
        else:
            yield INIT, name, True


def scan(path: Path) -> list[Import]:
    """Every import in ``path``, lazy ones and ``TYPE_CHECKING`` ones included."""
    importer = module_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def add(dotted: str, names: list[str | None], node: ast.AST, lazy: bool, tc: bool) -> None:
        for module, name, internal in _entries(dotted, names):
            found.append(Import(importer, module, name, internal, lazy, tc, path, node.lineno))

    def visit(node: ast.AST, lazy: bool, tc: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, [None], node, lazy, tc)
        elif isinstance(node, ast.ImportFrom):
            dotted = _resolve(path, node.level, node.module)
            add(dotted, [a.name for a in node.names], node, lazy, tc)
        elif isinstance(node, ast.Call) and _import_module_target(node):
            add(_import_module_target(node) or "", [None], node, lazy, tc)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, lazy, True)
            for child in node.orelse:
                visit(child, lazy, tc)
            return
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner, tc)

    visit(tree, False, False)
    return found


def _import_module_target(node: ast.Call) -> str | None:
    """``importlib.import_module("pyro_bdl.x")`` / ``__import__("x")`` with a constant name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        if not first.value.startswith("."):
            return first.value
    return None


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return [imp for path in source_files() for imp in scan(path)]


# ------------------------------------------------------------------------------- the rules
def _layer(module: str) -> int:
    return INIT_LAYER if module == INIT else LAYERS[module]


def layering_violation(imp: Import) -> str | None:
    """Why ``imp`` breaks rule (a), or None."""
    src, dst = imp.importer, imp.module
    if not imp.internal or src == dst or src == INIT:
        return None
    if src not in LAYERS or (dst not in LAYERS and dst != INIT):
        return None  # reported by test_every_module_is_in_the_table
    have, want = _layer(src), _layer(dst)
    if have == APP_LAYER and (imp.lazy or imp.type_checking):
        return None
    if want < have:
        return None
    if want > have:
        return f"imports from a higher layer (L{have} {src} -> L{want} {dst})"
    if (src, dst) in SIBLING_EDGES or (have == 0 and dst in SHARED_BASE):
        return None
    return f"imports an independent module of its own layer L{have} ({src} -> {dst})"


def test_every_module_is_in_the_table(imports):
    files = {module_of(p) for p in source_files()} - {INIT}
    imported = {imp.module for imp in imports if imp.internal} - {INIT}
    unknown = sorted((files | imported) - set(LAYERS))
    assert not unknown, (
        f"Modules of {PACKAGE} not in the layer table: {unknown}. Every module must have a "
        f"layer: add each to LAYERS at the top of {Path(__file__).name}, with the layer "
        "ARCHITECTURE.md §1 gives it (or add it to ARCHITECTURE.md first)."
    )
    missing = sorted(m for m in LAYERS if m not in files and m in imported)
    assert not missing, f"Imported but missing on disk: {missing}"


def test_table_is_consistent():
    for src, dst in SIBLING_EDGES:
        assert LAYERS[src] == LAYERS[dst], f"sibling edge {src} -> {dst} crosses layers"
    for src, dst in KNOWN_VIOLATIONS:
        assert src in LAYERS and (dst in LAYERS or dst == INIT), (src, dst)


def test_imports_respect_the_layers(imports):
    found: dict[tuple[str, str], list[str]] = {}
    for imp in imports:
        why = layering_violation(imp)
        if why is not None:
            kind = "lazy" if imp.lazy else "TYPE_CHECKING" if imp.type_checking else "top-level"
            lines = found.setdefault((imp.importer, imp.module), [])
            line = f"  {imp.where()}: {why} [{kind}]"
            if line not in lines:  # one line per statement, not per imported name
                lines.append(line)
    new = {edge: lines for edge, lines in found.items() if edge not in KNOWN_VIOLATIONS}
    assert not new, (
        "Imports that break the layering (ARCHITECTURE.md §1: a module imports only from lower "
        "layers, or from a sibling along an allowed edge):\n"
        + "\n".join(line for lines in new.values() for line in lines)
        + f"\nHow to fix: {HOW_TO_FIX}"
    )
    stale = sorted(KNOWN_VIOLATIONS - set(found))
    assert not stale, (
        f"KNOWN_VIOLATIONS lists edges that are no longer violations: {stale}. Good: delete "
        f"them from KNOWN_VIOLATIONS in {Path(__file__).name} so they cannot come back."
    )


def test_no_private_name_is_imported_across_modules(imports):
    found: dict[tuple[str, str, str], list[str]] = {}
    for imp in imports:
        if not imp.internal or imp.importer == imp.module or imp.name is None:
            continue
        if imp.name.startswith("_") and not imp.name.startswith("__"):
            key = (imp.importer, imp.module, imp.name)
            found.setdefault(key, []).append(
                f"  {imp.where()}: {imp.importer} imports {imp.name} from {imp.module}"
            )
    new = {key: lines for key, lines in found.items() if key not in KNOWN_PRIVATE_IMPORTS}
    assert not new, (
        "Private names imported from another module (ARCHITECTURE.md §1 rule 1):\n"
        + "\n".join(line for lines in new.values() for line in lines)
        + "\nHow to fix: make the helper public (drop the underscore, document it), in the lowest "
        "module both may import (e.g. _checks.py)."
    )
    stale = sorted(KNOWN_PRIVATE_IMPORTS - set(found))
    assert not stale, (
        f"KNOWN_PRIVATE_IMPORTS lists imports that are gone: {stale}. Delete them from "
        f"KNOWN_PRIVATE_IMPORTS in {Path(__file__).name}."
    )


def test_core_is_headless(imports):
    bad = [
        f"  {imp.where()}: L{LAYERS[imp.importer]} {imp.importer} imports {imp.module}"
        + (" (lazily)" if imp.lazy else "")
        for imp in imports
        if not imp.internal
        and imp.module in HEAVY
        and not imp.type_checking
        and imp.importer in LAYERS
        and LAYERS[imp.importer] < HEADLESS_BELOW
    ]
    assert not bad, (
        f"Modules below L{HEADLESS_BELOW} import {sorted(HEAVY)} (ARCHITECTURE.md §1 rule 2, "
        "headless core), lazy imports included:\n"
        + "\n".join(bad)
        + "\nHow to fix: move the plotting or ArviZ code to an L6 module (plots, arviz) that "
        "calls the core; a type-only import may go under `if TYPE_CHECKING:`."
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = dfs(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_at_import_time(imports):
    # The package's __init__ runs before any of its modules, so every module depends on it;
    # edges into __init__ are upward imports, which test_imports_respect_the_layers reports.
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for imp in imports:
        if imp.internal and imp.runtime_top_level and INIT not in (imp.importer, imp.module):
            if imp.importer != imp.module:
                graph.setdefault(imp.importer, set()).add(imp.module)
                where.setdefault((imp.importer, imp.module), imp.where())
    cycle = find_cycle(graph)
    assert cycle is None, (
        "Import cycle among the package's modules at import time: "
        + " -> ".join(cycle or [])
        + "\n"
        + "\n".join(f"  {where[(a, b)]}: {a} imports {b}" for a, b in pairwise(cycle or []))
        + "\nHow to fix: the lower module must not import the higher one; move the shared code "
        "down a layer."
    )


# ------------------------------------------------------------------------- the scanner works
def test_scanner_sees_lazy_type_checking_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / PACKAGE
    (pkg / "inference").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0'\n")
    (pkg / "nn.py").write_text("")
    (pkg / "_checks.py").write_text("")
    (pkg / "inference" / "__init__.py").write_text("")
    (pkg / "inference" / "elbo.py").write_text("")
    loop = pkg / "inference" / "loop.py"
    loop.write_text(
        "from typing import TYPE_CHECKING\n"
        "import matplotlib.pyplot as plt\n"
        "from . import elbo\n"
        "from .. import nn, __version__\n"
        "from ..nn import _helper, public\n"
        "import pyro_bdl.bnn\n"
        "if TYPE_CHECKING:\n"
        "    from ..bnn import BNN\n"
        "class A:\n"
        "    from .._checks import check\n"
        "def f():\n"
        "    from ..cli import main\n"
        "    import importlib\n"
        "    importlib.import_module('pyro_bdl.report')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    got = {(i.module, i.name, i.internal, i.lazy, i.type_checking) for i in scan(loop)}
    assert got == {
        ("typing", None, False, False, False),
        ("matplotlib", None, False, False, False),
        ("inference", None, True, False, False),
        ("nn", None, True, False, False),
        (INIT, "__version__", True, False, False),
        ("nn", "_helper", True, False, False),
        ("nn", "public", True, False, False),
        ("bnn", None, True, False, False),
        ("bnn", "BNN", True, False, True),
        ("_checks", "check", True, False, False),
        ("cli", "main", True, True, False),
        ("importlib", None, False, True, False),
        ("report", None, True, True, False),
    }
    assert module_of(loop) == "inference" and module_of(pkg / "__init__.py") == INIT
