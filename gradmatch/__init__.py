"""gradmatch: dataset condensation by effective gradient matching.

Condense a labelled training set into a few synthetic samples per class
(``GradientMatchingCondenser``), or select a coreset (``Herding``,
``RandomCoreset``), behind one scikit-learn style interface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# The public names load their modules (and torch) on first use, so that
# ``python -m gradmatch --help`` and ``import gradmatch`` alone stay quick.
_EXPORTS = {
    "GradientMatchingCondenser": ".condenser",
    "DistributionMatchingCondenser": ".dm",
    "Herding": ".selectors",
    "RandomCoreset": ".selectors",
    "DivergenceError": ".engine",
    "SyntheticSet": ".io",
    "save_set": ".io",
    "load_set": ".io",
    "CondensedEstimator": ".pipeline",
    "ResampleAdapter": ".pipeline",
    "keep_freed_memory": ".memory",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs, which do not run __getattr__
    from .condenser import GradientMatchingCondenser
    from .dm import DistributionMatchingCondenser
    from .engine import DivergenceError
    from .io import SyntheticSet, load_set, save_set
    from .memory import keep_freed_memory
    from .pipeline import CondensedEstimator, ResampleAdapter
    from .selectors import Herding, RandomCoreset


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
