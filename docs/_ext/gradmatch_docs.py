"""Local Sphinx extension of the gradmatch docs.

* ``source-read``: fills two markers in the Markdown pages, so that the build
  passes with warnings as errors whatever optional parts exist today:

  - ``<!-- optional-api-pages -->`` (inside a toctree) becomes the entries of
    the optional API pages whose module exists (``OPTIONAL_API_PAGES`` in
    conf.py);
  - ``<!-- include-if-exists PATH [heading-offset N] -->`` becomes a MyST
    ``{include}`` of PATH (relative to the page) when the file exists, else
    the text between it and ``<!-- end-include-if-exists -->``.
    Without the marker pair an include of a missing file would be an error.

* ``autodoc-skip-member``: leaves out the methods every scikit-learn
  estimator inherits from scikit-learn.

* ``gradmatch-cli-help``: a directive that prints the ``--help`` text of the
  ``gradmatch`` command line (or of one command), taken from
  ``gradmatch.cli.build_parser()`` at build time, so the reference cannot go
  stale.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

_OPTIONAL_PAGES = re.compile(r"^(?P<indent>[ \t]*)<!-- optional-api-pages -->$", re.M)
_INCLUDE = re.compile(
    r"<!-- include-if-exists (?P<path>\S+)(?: heading-offset (?P<offset>\d+))? -->\n"
    r"(?P<fallback>.*?)<!-- end-include-if-exists -->",
    re.S,
)


def _fill_markers(app, docname: str, source: list[str]) -> None:
    text = source[0]
    excluded = set(app.config.exclude_patterns)
    pages = [
        page.split("/", 1)[1] if docname.startswith("api/") else page
        for page in app.config.OPTIONAL_API_PAGES
        if page + ".rst" not in excluded
    ]
    text = _OPTIONAL_PAGES.sub(lambda m: "\n".join(m["indent"] + p for p in pages), text)

    def include(match: re.Match) -> str:
        rel = match["path"]
        here = Path(app.env.doc2path(docname)).parent
        if not (here / rel).is_file():
            return match["fallback"]
        offset = f":heading-offset: {match['offset']}\n" if match["offset"] else ""
        return f"```{{include}} {rel}\n{offset}```\n"

    source[0] = _INCLUDE.sub(include, text)


def _skip_sklearn_members(app, what, name, obj, skip, options):
    """Leave out the methods that scikit-learn defines for every estimator.

    ``get_params``, ``set_params``, ``score``, ``get_metadata_routing`` and
    the generated ``set_*_request`` methods are scikit-learn's, documented
    there; their docstrings refer to labels of scikit-learn's own docs, which
    cannot resolve here without intersphinx (and warnings are errors).
    """
    module = getattr(obj, "__module__", None) or ""
    if what in ("class", "exception") and module.split(".")[0] == "sklearn":
        return True
    return None


class CliHelp(SphinxDirective):
    """``.. gradmatch-cli-help:: [COMMAND]``: the help text of the command line."""

    optional_arguments = 1
    has_content = False

    def run(self):
        from gradmatch.cli import build_parser

        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal width
        try:
            parser = build_parser(lazy=False)
            if self.arguments:
                name = self.arguments[0]
                commands = next(
                    a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
                )
                if name not in commands.choices:
                    raise self.error(f"gradmatch has no command {name!r}")
                parser = commands.choices[name]
            text = parser.format_help()
        finally:
            if old is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = old
        node = nodes.literal_block(text, text)
        node["language"] = "text"
        return [node]


def setup(app):
    app.add_config_value("OPTIONAL_API_PAGES", {}, "env")
    app.connect("source-read", _fill_markers)
    app.connect("autodoc-skip-member", _skip_sklearn_members)
    app.add_directive("gradmatch-cli-help", CliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
