"""gradmatch: dataset condensation by effective gradient matching.

Condense a labelled training set into a few synthetic samples per class
(``GradientMatchingCondenser``), or select a coreset (``Herding``,
``RandomCoreset``), behind one scikit-learn style interface.
"""

from ._version import __version__
from .condenser import GradientMatchingCondenser
from .engine import DivergenceError
from .io import SyntheticSet, load_set, save_set
from .pipeline import CondensedEstimator, ResampleAdapter
from .selectors import Herding, RandomCoreset

__all__ = [
    "__version__",
    "GradientMatchingCondenser",
    "Herding",
    "RandomCoreset",
    "DivergenceError",
    "SyntheticSet",
    "save_set",
    "load_set",
    "CondensedEstimator",
    "ResampleAdapter",
]
