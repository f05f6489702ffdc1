"""Sphinx configuration of the gradmatch documentation.

Build (from the repository root; warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Needs the packages in ``docs/requirements.txt``. Nothing is fetched at build
time: no intersphinx, and the examples are described, not executed. Pages are
Markdown (MyST) except the API reference, which is reStructuredText because
autodoc's output is reStructuredText.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# The package is normally installed (editable) in the build environment; the
# checkout goes first so that the documented code is the code next to docs/.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import gradmatch  # noqa: E402

# -- Project -------------------------------------------------------------------
project = "gradmatch"
author = "gradmatch developers"
copyright = "gradmatch developers, BSD-3-Clause"
release = gradmatch.__version__
version = release

# -- General -------------------------------------------------------------------
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "gradmatch_docs",  # docs/_ext/gradmatch_docs.py: optional pages, CLI help
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_ext",
    "requirements.txt",
    # Benchmark outputs: included by benchmarks.md, not pages of their own.
    "results/**",
]
templates_path: list[str] = []

# Modules documented only when they exist: they are being written while these
# docs are. A missing module drops its page (and its toctree entry, see
# docs/_ext/gradmatch_docs.py); a module that exists but fails to import still
# fails the build, as it should.
OPTIONAL_API_PAGES = {"api/pipeline": "gradmatch.pipeline", "api/cli": "gradmatch.cli"}
for _page, _module in OPTIONAL_API_PAGES.items():
    if importlib.util.find_spec(_module) is None:
        exclude_patterns.append(_page + ".rst")

# -- MyST (Markdown) -----------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
# Anchors for "page.md#section" links, as GitHub renders them.
myst_heading_anchors = 3

# -- autodoc / autosummary / numpydoc -------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
# The API pages use autosummary tables only (no :toctree:), so nothing is
# generated into the source folder.
autosummary_generate = False
autosummary_imported_members = False

# Members are listed by autodoc's :members: on each page, not by numpydoc (its
# member tables would need autosummary stub pages).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Types in the docstrings are prose ("array-like of shape (n, d)"), not targets.
numpydoc_xref_param_type = False

# -- HTML ----------------------------------------------------------------------
# furo if it is installed (it ships its assets: nothing is downloaded), else
# Sphinx's built-in alabaster.
if importlib.util.find_spec("furo") is not None:
    html_theme = "furo"
    html_theme_options = {"navigation_with_keys": True}
else:
    html_theme = "alabaster"
    html_theme_options = {"description": "Dataset condensation by effective gradient matching"}
html_title = f"gradmatch {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
