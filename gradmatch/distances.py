"""Layer-wise gradient distances (paper eqs. 7-9 and Table 2).

A distance compares two lists of per-parameter gradients. Every parameter
tensor with two or more dimensions is reshaped to ``(out, -1)`` (a conv
kernel becomes ``out x in*h*w``, a linear weight stays ``out x in``), a
per-row distance is computed, and the rows and layers are summed. Tensors with
one dimension (biases, normalisation scales) count 0, as in DC.

Per-row terms, with the names that are part of the public API:

========  =========================================  ======================
name      formula                                    paper
========  =========================================  ======================
``cos``   ``1 - a.b / (|a| |b| + 1e-6)``              d1 (angle, eq. 8)
``l2``    ``|a - b|``                                 d2
``sse``   ``|a - b|^2``                               d3
``mse``   ``|a - b|^2 / len(a)``                      d4
========  =========================================  ======================

A distance specification joins weighted terms with ``+``: ``"cos+l2"`` (the
paper's eq. 9, the default), ``"cos+0.1*l2"``, ``"cos+100*mse"``, ``"1e2*mse"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "ANGLE_EPS",
    "DISTANCE_TERMS",
    "LayerwiseDistance",
    "angle_rows",
    "euclidean_rows",
    "sse_rows",
    "mse_rows",
    "parse_distance",
    "make_distance",
]

#: Added to the product of norms in the angle term, as DC does; this is why the
#: angle of a row with itself is 0 only up to a tolerance.
ANGLE_EPS = 1e-6


def angle_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row ``1 - a.b / (|a||b| + 1e-6)`` (d1) of two ``(out, n)`` tensors."""
    dot = (a * b).sum(dim=-1)
    norms = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
    return 1.0 - dot / (norms + ANGLE_EPS)


def sse_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row sum of squared errors ``|a - b|^2`` (d3)."""
    return (a - b).pow(2).sum(dim=-1)


def euclidean_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Euclidean distance ``|a - b|`` (d2).

    ``vector_norm`` has a zero (not NaN) gradient at ``a == b``, which matters
    because a synthetic gradient can match a real one exactly.
    """
    return torch.linalg.vector_norm(a - b, dim=-1)


def mse_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared error ``|a - b|^2 / len(a)`` (d4)."""
    return (a - b).pow(2).mean(dim=-1)


#: The per-row terms by public name.
DISTANCE_TERMS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cos": angle_rows,
    "l2": euclidean_rows,
    "sse": sse_rows,
    "mse": mse_rows,
}

_TERM_RE = re.compile(
    r"^(?:(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)$"
)


def _valid_names_message() -> str:
    names = ", ".join(repr(n) for n in DISTANCE_TERMS)
    return (
        f"valid term names are {names}; join terms with '+' and weight them "
        "with 'w*name', e.g. 'cos+l2', 'cos+0.1*l2', 'cos+100*mse'"
    )


def parse_distance(spec: str) -> tuple[tuple[float, str], ...]:
    """Parse a distance specification into ``((weight, name), ...)``.

    Parameters
    ----------
    spec : str
        Terms joined by ``+``, each ``[weight*]name``; spaces are ignored.

    Returns
    -------
    tuple of (float, str)
        The weighted terms in the order written. A term written twice keeps
        both entries (their weights add up when evaluated).

    Raises
    ------
    ValueError
        If the string is empty, malformed, names an unknown term or has a
        weight that is not a finite non-negative number.

    Examples
    --------
    >>> parse_distance("cos+0.1*l2")
    ((1.0, 'cos'), (0.1, 'l2'))
    >>> parse_distance("cos + 1e2*mse")
    ((1.0, 'cos'), (100.0, 'mse'))
    """
    if not isinstance(spec, str):
        raise TypeError(f"distance must be a string or a callable, got {type(spec).__name__}")
    compact = re.sub(r"\s+", "", spec)
    if not compact:
        raise ValueError(f"distance {spec!r} is empty: {_valid_names_message()}")
    terms = []
    # Split on "+" except inside an exponent such as "1e+2".
    for part in re.split(r"(?<![\d.][eE])\+", compact):
        match = _TERM_RE.match(part)
        if match is None:
            raise ValueError(
                f"cannot parse distance term {part!r} in {spec!r}: {_valid_names_message()}"
            )
        name = match.group("name").lower()
        if name not in DISTANCE_TERMS:
            raise ValueError(f"unknown distance term {name!r} in {spec!r}: {_valid_names_message()}")
        weight = float(match.group("weight")) if match.group("weight") else 1.0
        if not (weight >= 0.0 and weight != float("inf")):
            raise ValueError(
                f"distance weight {weight!r} in {spec!r} must be finite and >= 0: {_valid_names_message()}"
            )
        terms.append((weight, name))
    return tuple(terms)


@dataclass(frozen=True)
class LayerwiseDistance:
    """Sum of weighted per-row terms over the rows of every 2+-D gradient.

    Parameters
    ----------
    terms : tuple of (float, str)
        Output of :func:`parse_distance`.

    Examples
    --------
    >>> import torch
    >>> d = LayerwiseDistance(parse_distance("cos+l2"))
    >>> g = [torch.ones(3, 4), torch.ones(3)]      # a weight and a bias
    >>> float(d(g, [2 * t for t in g]))             # angle 0, l2 = 3 rows * 2
    6.0...
    """

    terms: tuple[tuple[float, str], ...]

    def layer(self, g_syn: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
        """Distance between the gradients of one parameter tensor."""
        if g_syn.dim() < 2:
            # Biases and norm scales count 0, as in DC.
            return g_syn.new_zeros(())
        a = g_syn.reshape(g_syn.shape[0], -1)
        b = g_real.reshape(g_real.shape[0], -1)
        total = a.new_zeros(())
        for weight, name in self.terms:
            total = total + weight * DISTANCE_TERMS[name](a, b).sum()
        return total

    def __call__(
        self, g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Sum of :meth:`layer` over paired gradient lists."""
        return _sum_layers(self.layer, g_syn, g_real)

    def __str__(self) -> str:
        return "+".join(name if w == 1.0 else f"{w:g}*{name}" for w, name in self.terms)


@dataclass(frozen=True)
class CallableDistance:
    """A user per-layer distance ``fn(g_syn, g_real) -> scalar``, summed over layers.

    It is called for every parameter tensor with two or more dimensions, with the
    gradients in the parameter's own shape; 1-D tensors are skipped as for the
    built-in distances.
    """

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def layer(self, g_syn: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
        if g_syn.dim() < 2:
            return g_syn.new_zeros(())
        value = self.fn(g_syn, g_real)
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                "a distance callable must return a torch scalar tensor, got "
                f"{type(value).__name__}"
            )
        if value.numel() != 1:
            raise ValueError(
                f"a distance callable must return a scalar, got shape {tuple(value.shape)}"
            )
        if g_syn.requires_grad and not value.requires_grad:
            raise ValueError(
                "the distance callable returned a tensor that carries no gradient back to the synthetic "
                "images (detached, or computed through .item(), numpy or torch.no_grad): compute it with "
                "torch operations on its two arguments"
            )
        return value.reshape(())

    def __call__(
        self, g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        return _sum_layers(self.layer, g_syn, g_real)


def _sum_layers(layer_fn, g_syn, g_real) -> torch.Tensor:
    if len(g_syn) != len(g_real):
        raise ValueError(f"gradient lists differ in length: {len(g_syn)} != {len(g_real)}")
    total = None
    for a, b in zip(g_syn, g_real):
        if a.shape != b.shape:
            raise ValueError(f"gradient shapes differ: {tuple(a.shape)} != {tuple(b.shape)}")
        value = layer_fn(a, b)
        total = value if total is None else total + value
    if total is None:
        raise ValueError("no gradients to compare")
    return total


def make_distance(spec: str | Callable) -> LayerwiseDistance | CallableDistance:
    """Turn a ``distance`` parameter value into a layer-wise distance object."""
    if isinstance(spec, str):
        return LayerwiseDistance(parse_distance(spec))
    if callable(spec):
        return CallableDistance(spec)
    raise TypeError(
        f"distance must be a string or a callable, got {type(spec).__name__}: "
        + _valid_names_message()
    )
