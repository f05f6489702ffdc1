"""The vocabulary of parameter rules the estimators declare, in scikit-learn's terms.

Every estimator of the package declares ``_parameter_constraints`` with
scikit-learn's validation vocabulary (``Interval``, ``StrOptions``,
``HasMethods``, ``"boolean"``, ``"random_state"``, ``"verbose"``, ...), and
checks them first in ``fit``, before anything else is touched. This module
adds the few rules scikit-learn's vocabulary lacks, each written once:

- :class:`Count` and :class:`Number`: integer and real intervals that refuse
  booleans (``True`` is an ``int`` to Python, never a count to a user);
- :class:`ClassCounts`: a non-empty ``{class: count >= 1}`` dict (``ipc``);
- :class:`ImageShape`: three positive integers ``(C, H, W)``;
- :class:`DistanceSpec`: a distance string of the grammar of
  :func:`gradmatch.distances.parse_distance`;
- :class:`MeanStd`: a ``(mean, std)`` pair or a ``{"mean", "std"}`` dict;
- :class:`AugmentSpec`: what :func:`gradmatch.augment.make_augment` accepts;
- :class:`ModelName`: ``"auto"`` or a registered network name;
- :class:`Folder`: a non-empty path.

The command line reads the same declarations (:func:`choices_of`), so a
rule is never copied.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping

import numpy as np
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = [
    "Count", "Number", "ClassCounts", "ImageShape", "DistanceSpec", "MeanStd", "AugmentSpec",
    "ModelName", "Folder",
    "HasMethods", "Interval", "Options", "StrOptions", "InvalidParameterError",
    "validate_parameter_constraints", "choices_of", "is_count", "POSITIVE", "NON_NEGATIVE", "FLOAT32_MAX",
]


class _Rule(Options):
    """A rule of our own, in the shape scikit-learn's validation accepts (an ``Options``).

    Subclasses define ``is_satisfied_by`` and ``__str__`` (the text of the error message).
    """

    def __init__(self):
        super().__init__(object, set())


#: The largest float32: the networks compute in float32, so larger rates overflow.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _accepted_by(check, value) -> bool:
    """Whether ``check(value)`` (a function that raises on bad input) accepts ``value``."""
    try:
        check(value)
    except (ValueError, TypeError):
        return False
    return True


def is_count(value, minimum: int = 1) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``minimum``."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
            and value >= minimum)


class Count(Interval):
    """An integer interval that refuses ``True``/``False``.

    Examples
    --------
    >>> Count(1).is_satisfied_by(3), Count(1).is_satisfied_by(True), Count(1).is_satisfied_by(0)
    (True, False, False)
    """

    def __init__(self, left: int = 1, right: int | None = None):
        super().__init__(numbers.Integral, left, right, closed="left" if right is None else "both")

    def is_satisfied_by(self, val) -> bool:
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


class Number(Interval):
    """A real interval that refuses ``True``/``False``, NaN and infinity.

    Examples
    --------
    >>> Number(0, None, closed="neither").is_satisfied_by(0.1)
    True
    >>> Number(0, 1, closed="left").is_satisfied_by(1.0)
    False
    """

    def __init__(self, left: float | None, right: float | None, *, closed: str):
        super().__init__(numbers.Real, left, right, closed=closed)

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, (bool, np.bool_)) or not isinstance(val, numbers.Real):
            return False
        return bool(np.isfinite(float(val))) and super().is_satisfied_by(val)

    def __str__(self) -> str:
        return super().__str__().replace(repr(FLOAT32_MAX), "3.4e38 (float32's largest)")


#: A learning rate or another strictly positive scale.
POSITIVE = Number(0, FLOAT32_MAX, closed="neither")
#: A weight that may be zero.
NON_NEGATIVE = Number(0, FLOAT32_MAX, closed="left")


class ClassCounts(_Rule):
    """A non-empty dict ``{class: integer >= 1}`` (which classes it names is checked against ``y``)."""

    def is_satisfied_by(self, val) -> bool:
        return isinstance(val, Mapping) and len(val) > 0 and all(is_count(v) for v in val.values())

    def __str__(self) -> str:
        return "a non-empty dict {class: int >= 1} naming every class of y"


class ImageShape(_Rule):
    """Three positive integers ``(C, H, W)``, as a tuple or list."""

    def is_satisfied_by(self, val) -> bool:
        return isinstance(val, (tuple, list)) and len(val) == 3 and all(is_count(v) for v in val)

    def __str__(self) -> str:
        return "a tuple (C, H, W) of three positive integers"


class DistanceSpec(_Rule):
    """A distance string such as ``"cos+l2"`` or ``"cos+0.1*l2"``."""

    def is_satisfied_by(self, val) -> bool:
        from .distances import parse_distance

        return isinstance(val, str) and _accepted_by(parse_distance, val)

    def __str__(self) -> str:
        return ("a distance string of '+'-joined terms [weight*]name with names 'cos', 'l2', 'sse', "
                "'mse' (e.g. 'cos+l2', 'cos+0.1*l2')")


class MeanStd(_Rule):
    """Given normalisation statistics: ``(mean, std)`` or ``{"mean": ..., "std": ...}``.

    Each side a scalar or a sequence of finite numbers; every std positive.
    """

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, Mapping):
            if set(val) != {"mean", "std"}:
                return False
            val = (val["mean"], val["std"])
        if not isinstance(val, (tuple, list)) or len(val) != 2:
            return False
        try:
            mean = np.asarray(val[0], dtype=np.float64).reshape(-1)
            std = np.asarray(val[1], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            return False
        return (mean.size > 0 and std.size > 0 and bool(np.all(np.isfinite(mean)))
                and bool(np.all(np.isfinite(std))) and bool(np.all(std > 0)))

    def __str__(self) -> str:
        return "a pair (mean, std) or a dict {'mean', 'std'} of finite numbers (std > 0)"


class AugmentSpec(_Rule):
    """None, ``"none"``, ``"dsa"``, a DSA strategy string or a :class:`~gradmatch.augment.DSA`."""

    def is_satisfied_by(self, val) -> bool:
        from .augment import make_augment

        return _accepted_by(make_augment, val)

    def __str__(self) -> str:
        return ("None, 'dsa', a strategy string of operation names joined by '_' (e.g. "
                "'color_crop_cutout_scale_rotate') or a gradmatch.augment.DSA")


class ModelName(_Rule):
    """``"auto"`` or the name of a registered network (see :mod:`gradmatch.networks`)."""

    def is_satisfied_by(self, val) -> bool:
        from .networks import check_model

        return isinstance(val, str) and (val == "auto" or _accepted_by(check_model, val))

    def __str__(self) -> str:
        from .networks import MODELS

        return "'auto' or a network name (" + ", ".join(repr(m) for m in MODELS) + ")"


class Folder(_Rule):
    """A non-empty folder path (str or path-like)."""

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, os.PathLike):
            val = os.fspath(val)
        return isinstance(val, str) and val.strip() != ""

    def __str__(self) -> str:
        return "a non-empty folder path"


def choices_of(estimator_class, name: str) -> tuple[str, ...]:
    """The string options a class declares for parameter ``name`` (for the command line).

    Examples
    --------
    >>> from gradmatch import GradientMatchingCondenser
    >>> choices_of(GradientMatchingCondenser, "match")
    ('inter', 'interleaved', 'intra', 'multilevel')
    """
    found: list[str] = []
    for constraint in estimator_class._parameter_constraints[name]:
        if isinstance(constraint, StrOptions):
            found.extend(sorted(constraint.options - constraint.deprecated))
    return tuple(found)
