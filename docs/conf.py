"""Sphinx configuration: API reference (autodoc) and tutorials executed at build time (myst-nb).

The build is offline and warning-free: ``sphinx-build -W -b html docs docs/_build/html``.

* No intersphinx: inventories would be fetched from the network, and a failed fetch is a warning
  that ``-W`` turns into an error.
* Math is rendered by a local copy of MathJax 3 that ``docs/fetch_mathjax.py`` fetches from the npm
  registry at build time (``npm pack``, integrity-checked) into the ignored ``docs/_vendor/``.
  Without npm the build still passes, and the pages point at MathJax's CDN instead (a note says
  so in the build log): math then renders only for readers who are online.
* Tutorials are MyST notebooks (``tutorials/*.md``) executed on every build; an error in any cell
  fails the build. ``PYRO_BDL_DOCS_BUDGET=full`` runs them with release-sized budgets (the
  default, ``small``, keeps the whole build to a few minutes on two CPU cores).
  ``PYRO_BDL_DOCS_EXECUTE=cache|off`` reuses executed notebooks while editing prose.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from sphinx.deprecation import RemovedInSphinx10Warning
from sphinx.util import logging

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # fetch_mathjax
sys.path.insert(0, str(HERE.parent))  # the package, when it is not installed

from fetch_mathjax import ENTRY, ensure_mathjax  # noqa: E402

import pyro_bdl  # noqa: E402

logger = logging.getLogger("pyro_bdl.docs")
# sphinx-autodoc-typehints 3.6 calls an API Sphinx 9 deprecates, once per docstring: log noise only.
warnings.filterwarnings(
    "ignore", message=".*sphinx_autodoc_typehints", category=RemovedInSphinx10Warning
)

# -- Project ----------------------------------------------------------------------------------
project = "pyro-bdl"
author = "pyro-bdl developers"
copyright = "pyro-bdl developers"  # noqa: A001
release = pyro_bdl.__version__
version = ".".join(release.split(".")[:2])

# -- General ----------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",  # after autodoc: types from signatures into the :param: fields
    "myst_nb",
]
exclude_patterns = [
    "README.md",
    "_build",
    "_vendor",
    "jupyter_execute",
    ".jupyter_cache",
    "**.ipynb_checkpoints",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
nitpicky = False  # no intersphinx, so references into torch/pyro cannot resolve
intersphinx_mapping: dict = {}  # deliberately empty: offline build (see module docstring)

# -- autodoc ----------------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_class_signature = "mixed"
autodoc_typehints = "description"  # sphinx-autodoc-typehints renders them in the field lists
python_use_unqualified_type_names = True
typehints_fully_qualified = False
always_document_param_types = False
typehints_document_rtype = True
typehints_defaults = None  # the signature shows defaults; reprs of callables carry addresses

# -- Math: a local MathJax 3 (see fetch_mathjax.py) -------------------------------------------
html_static_path = ["_static"]
mathjax_available, mathjax_message = ensure_mathjax()
if mathjax_available:
    html_static_path.append("_vendor")  # copied to _static/mathjax/ in the output
    mathjax_path = f"mathjax/{ENTRY}"
    logger.info(f"[pyro_bdl docs] {mathjax_message}; math renders offline.")
else:
    mathjax_path = f"https://cdn.jsdelivr.net/npm/mathjax@3/es5/{ENTRY}"
    logger.info(
        f"[pyro_bdl docs] NOTE: no local MathJax ({mathjax_message}). The pages load MathJax "
        "from its CDN, so math renders only for readers who are online."
    )
# MathJax 3 options. textmacros makes LaTeX text-mode escapes such as ``\text{fan\_in}`` (used in
# docstrings) render as in LaTeX. Being non-empty also makes myst-parser add its classes to this
# config rather than to Sphinx 9's MathJax 4 one.
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {"packages": {"[+]": ["textmacros"]}},
}

# -- MyST / myst-nb ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("PYRO_BDL_DOCS_EXECUTE", "force")
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True  # ... and its traceback is printed in the log
nb_execution_timeout = 900  # seconds per cell
nb_execution_in_temp = True  # files a tutorial writes go to a temporary folder
nb_merge_streams = True

# -- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"pyro-bdl {release}"
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
