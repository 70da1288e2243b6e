"""The tutorials open with the modelling: the cell of imports, warning filters, thread settings
and the ``PYRO_BDL_DOCS_BUDGET`` switch is folded away in the rendered pages (myst-nb's
``hide-cell`` tag), and myst-nb renders that tag as a folded ``<details>`` block.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted(p for p in (ROOT / "docs" / "tutorials").glob("*.md") if p.stem != "index")
CELL = re.compile(r"```\{code-cell\} ipython3\n(.*?)```", re.S)
BOILERPLATE = ("PYRO_BDL_DOCS_BUDGET", "filterwarnings", "set_num_threads")


def code_cells(text: str) -> list[tuple[list[str], str]]:
    """``(option lines, source)`` of every code cell of a MyST notebook."""
    cells = []
    for body in CELL.findall(text):
        lines = body.splitlines()
        options = [line for line in lines if line.startswith(":")]
        cells.append((options, "\n".join(lines[len(options) :])))
    return cells


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_the_boilerplate_cell_comes_first_and_is_folded(path):
    cells = code_cells(path.read_text(encoding="utf-8"))
    options, source = cells[0]
    assert options == [":tags: [hide-cell]"], f"{path.name}: first cell's options {options}"
    for word in BOILERPLATE:
        assert word in source, f"{path.name}: the first cell lacks {word}"
    for i, (options, later) in enumerate(cells[1:], 1):
        assert "hide-cell" not in " ".join(options), f"{path.name}: cell {i} is hidden too"
        assert "PYRO_BDL_DOCS_BUDGET" not in later, f"{path.name}: cell {i} reads the budget"


def test_myst_nb_renders_the_first_cell_folded(tmp_path):
    pytest.importorskip("myst_nb", reason="pip install -e '.[docs]' to build the docs")
    source = ROOT / "docs" / "tutorials" / "regression.md"
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(source, project / "index.md")
    (project / "conf.py").write_text('extensions = ["myst_nb"]\nnb_execution_mode = "off"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(project), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    cells = [m.start() for m in re.finditer(r'<div class="cell[ "]', html)]
    assert len(cells) > 1
    first = html[cells[0] : cells[1]]
    assert "tag_hide-cell" in first and "<details" in first and "PYRO_BDL_DOCS_BUDGET" in first
    assert "<details" not in html[cells[1] : cells[1] + 300]  # the modelling is shown
