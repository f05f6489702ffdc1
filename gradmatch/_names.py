"""Names of the choices that the command line lists, kept free of heavy imports.

The modules that implement them (:mod:`gradmatch.matching`,
:mod:`gradmatch.networks`) import torch; ``gradmatch --help`` should not.

``MODELS`` is no longer a list of its own: the registry in
:mod:`gradmatch.networks` is the one list of network names. Here it is read
on access: the registry itself when :mod:`gradmatch.networks` is already
imported (the names users registered included), else the built-in names read
from the ``@register_model("...")`` decorators in ``networks.py``'s source,
which needs no torch. It stays for the command line until that reads its
choices from the estimators; new code should use
:func:`gradmatch.networks.list_models` or :data:`gradmatch.networks.MODELS`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: Values of ``match``: which gradients are compared (the paper's Table 1).
MATCH_RULES = ("intra", "inter", "interleaved", "multilevel")

_NETWORKS = "gradmatch.networks"


def _registered_in_source(path: Path) -> tuple[str, ...]:
    """Names of the module-level ``@register_model("name")`` decorators in ``path``, in order."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in tree.body:
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        for deco in node.decorator_list:
            if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name)
                    and deco.func.id == "register_model" and len(deco.args) == 1
                    and isinstance(deco.args[0], ast.Constant) and isinstance(deco.args[0].value, str)):
                names.append(deco.args[0].value)
    return tuple(names)


def _models() -> tuple[str, ...]:
    networks = sys.modules.get(_NETWORKS)
    if networks is None:
        try:
            names = _registered_in_source(Path(__file__).with_name("networks.py"))
        except (OSError, SyntaxError):  # no source to read (a frozen install): import it
            names = ()
        if names:
            return names
        import importlib

        networks = importlib.import_module(_NETWORKS)
    return networks.MODELS


def __getattr__(name: str):
    # PEP 562: MODELS is derived from the registry each time it is read.
    if name == "MODELS":
        return _models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
