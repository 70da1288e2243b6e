"""The documentation: an offline ``sphinx-build -W`` with every tutorial executed, then a browser.

One build (module fixture, a few minutes at the docs' small budget) feeds every test:

* the build exits 0 with warnings as errors, and prints no warning;
* every tutorial notebook ran, cell by cell, without an error output
  (``nb_execution_raise_on_error`` already fails the build on one; the executed notebooks are
  checked as well);
* the tutorial pages reference their figures and the image files exist;
* math is rendered by a local MathJax, not a CDN (npm fetches it);
* headless Chromium opens the index and a tutorial, MathJax typesets the math (``mjx-container``
  elements in the DOM) and the figures load, and the screenshots are non-trivial images.

Without Chromium, or without npm to fetch MathJax, the browser and MathJax checks skip; under CI
(the variable ``CI`` set) they fail instead, as ``.ci/run`` installs both.

Set ``PYRO_BDL_DOCS_SCREENSHOTS=<folder>`` to keep the screenshots for a look by eye.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require_or_skip

pytestmark = pytest.mark.slow  # a full docs build with executed tutorials takes minutes

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted(p.stem for p in (DOCS / "tutorials").glob("*.md") if p.stem != "index")
API_MODULES = sorted(p.stem for p in (DOCS / "api").glob("*.rst") if p.stem != "index")
BUILD_TIMEOUT_S = 1800
CHROMIUM_TIMEOUT_S = 120


def _require_sphinx() -> None:
    for module in ("sphinx", "myst_nb", "furo", "sphinx_autodoc_typehints"):
        pytest.importorskip(
            module, reason=f"{module} is not installed: pip install -e '.[docs]' to build the docs"
        )


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build the HTML docs once into a temporary folder; return paths and the build log."""
    _require_sphinx()
    root = tmp_path_factory.mktemp("docs")
    html = root / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-T", "-b", "html"]
    cmd += ["-d", str(root / "doctrees"), str(DOCS), str(html)]
    env = {k: v for k, v in os.environ.items() if k != "PYRO_BDL_DOCS_EXECUTE"}  # always execute
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"sphinx-build -W failed (exit {proc.returncode}):\n{log[-8000:]}"
    return {"html": html, "executed": root / "jupyter_execute", "log": log}


def _page(build: dict, name: str) -> str:
    return (build["html"] / f"{name}.html").read_text(encoding="utf-8")


def test_build_is_warning_free(build):
    # Sphinx's own format, "path:line: WARNING: message [type]" (not a kernel's "WARNING |" log)
    warnings = [line for line in build["log"].splitlines() if "WARNING: " in line]
    assert not warnings, "\n".join(warnings)
    assert (build["html"] / "index.html").is_file()


@pytest.mark.parametrize("module", API_MODULES)
def test_api_page_documents_its_module_with_types(build, module):
    page = _page(build, f"api/{module}")
    assert f'id="module-pyro_bdl.{module}"' in page
    documented = re.findall(rf'<dt class="sig sig-object py" id="pyro_bdl\.{module}\.', page)
    assert documented, f"no object of pyro_bdl.{module} is documented"


def test_api_renders_types_from_signatures_and_math(build):
    page = _page(build, "api/bnn")
    fit = page[page.index('id="pyro_bdl.bnn.BNN.fit"') :]
    fit = fit[: fit.index("</dd>")]
    # sphinx-autodoc-typehints puts the annotations into the parameter list
    assert re.search(r"<strong>epochs</strong>.*?<code[^>]*>.*?int", fit, re.S), fit[:2000]
    guides = _page(build, "api/guides")
    assert guides.count('class="math') >= 3, "the .. math:: blocks of pyro_bdl.guides are missing"


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_executed_without_errors(build, name):
    notebook = build["executed"] / "tutorials" / f"{name}.ipynb"
    assert notebook.is_file(), f"{name} was not executed (no {notebook})"
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert code, f"{name} has no code cells"
    for i, cell in enumerate(code):
        assert cell.get("execution_count") is not None, f"{name}: code cell {i} did not run"
        errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
        assert not errors, f"{name}: code cell {i} raised {errors[0].get('ename')}"
    first = "".join(code[0]["source"])
    assert "PYRO_BDL_DOCS_BUDGET" in first, f"{name}: the first cell must read the budget"
    page = _page(build, f"tutorials/{name}")
    assert "Traceback" not in page


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_page_shows_its_figures(build, name):
    page_path = build["html"] / "tutorials" / f"{name}.html"
    sources = re.findall(r'<img[^>]+src="([^"]+\.png)"', page_path.read_text(encoding="utf-8"))
    assert sources, f"{name}: no figure in the built page"
    for src in sources:
        image = (page_path.parent / src).resolve()
        assert image.is_file(), f"{name}: missing image {src}"
        assert image.stat().st_size > 5_000, f"{name}: image {src} is suspiciously small"


def test_math_is_rendered_by_a_local_mathjax(build):
    local = build["html"] / "_static" / "mathjax" / "tex-mml-chtml.js"
    if not local.is_file():
        assert "no local MathJax" in build["log"], "neither a local MathJax nor the fallback note"
        require_or_skip(
            "npm could not fetch MathJax here (apt-get install -y npm, and reach the npm "
            "registry): the pages fall back to MathJax's CDN"
        )
    for name in ("index", "tutorials/regression", "api/guides"):
        page = _page(build, name)
        assert re.search(r'<script[^>]+src="[./]*_static/mathjax/tex-mml-chtml\.js', page), name
        assert "cdn.jsdelivr.net" not in page, f"{name} still loads something from a CDN"


def test_index_snippet_runs():
    """The code on the front page runs as shown (in a fresh interpreter, default dtypes)."""
    snippet = re.search(r"```python\n(.*?)```", (DOCS / "index.md").read_text(), re.S)
    assert snippet, "no python snippet on the front page"
    code = snippet.group(1) + "\nassert parts.epistemic.shape == (50,)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


# ------------------------------------------------------------------------------- the browser
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    require_or_skip("chromium is not installed (Debian: apt-get install -y chromium)")


def _run_chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1200,2000",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)


#: Appended to a copy of a page: once everything has loaded and MathJax has typeset, record what
#: the browser sees in attributes of <body>, which ``--dump-dom`` then prints.
_PROBE = """
<script>
window.addEventListener("load", () => {
  const done = () => {
    const images = Array.from(document.images).filter(i => /\\.png$/.test(i.src));
    document.body.dataset.images = images.length;
    const loaded = images.filter(i => i.complete && i.naturalWidth > 0);
    document.body.dataset.imagesLoaded = loaded.length;
    document.body.dataset.mathjax = window.MathJax && MathJax.startup ? "typeset" : "absent";
    document.body.dataset.mjx = document.querySelectorAll("mjx-container").length;
  };
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(done, done);
  } else {
    done();
  }
});
</script>
"""


@pytest.mark.parametrize("name", ["index", "tutorials/regression"])
def test_chromium_renders_math_and_figures(build, name, tmp_path):
    _chromium()
    if not (build["html"] / "_static" / "mathjax" / "tex-mml-chtml.js").is_file():
        require_or_skip(
            "no local MathJax (npm could not fetch it; apt-get install -y npm): "
            "math cannot render offline"
        )
    page = build["html"] / f"{name}.html"
    probe = page.with_name(page.stem + ".probe.html")  # same folder: relative links still work
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"))
    proc = _run_chromium(["--dump-dom", probe.as_uri()], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = re.search(r"<body([^>]*)>", proc.stdout)
    assert body, proc.stdout[:2000]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("mathjax") == "typeset", attrs
    assert int(attrs.get("mjx", 0)) > 0, f"MathJax rendered no math on {name}: {attrs}"
    assert "mjx-container" in proc.stdout
    assert attrs.get("images-loaded") == attrs.get("images"), f"figures did not load: {attrs}"
    if name.startswith("tutorials/"):
        assert int(attrs["images"]) > 0, attrs

    screenshot = tmp_path / (name.replace("/", "_") + ".png")
    proc = _run_chromium([f"--screenshot={screenshot}", page.as_uri()], tmp_path)
    assert proc.returncode == 0 and screenshot.is_file(), proc.stderr[-3000:]
    keep = os.environ.get("PYRO_BDL_DOCS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / screenshot.name)
    from PIL import Image  # a matplotlib dependency

    with Image.open(screenshot) as image:
        assert image.size == (1200, 2000), image.size
        pixels = image.convert("RGB").resize((300, 500))
        colours = pixels.getcolors(maxcolors=300 * 500)
    assert colours is not None and len(colours) > 50, "the screenshot is nearly uniform"
    white = sum(count for count, rgb in colours if min(rgb) > 245)
    assert white < 0.95 * 300 * 500, "the screenshot is nearly blank"
