"""Matching rules: which gradients are compared (paper section 3.1, eqs. 4-6).

Given per-class gradients of the synthetic and the real batches, the rules
build the matching loss

* ``"intra"``: ``sum_c D(g_c^S, g_c^T)`` (eq. 4, the DC baseline);
* ``"inter"``: ``lambda * D(sum_c w_c g_c^S, sum_c w_c g_c^T)`` (the second
  term alone, still weighted by lambda, as the authors' code does);
* ``"multilevel"``: both terms (eq. 6);
* ``"interleaved"``: ``"intra"`` in even iterations and ``"inter"`` in odd
  ones (paper footnote 3).

The weights ``w_c`` are the class priors of the real training set, the same on
both sides; with equal batch sizes eq. 5 makes the weighted sum the gradient of
the union batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

#: Values of ``match``: which gradients are compared (the paper's Table 1).
MATCH_RULES = ("intra", "inter", "interleaved", "multilevel")

__all__ = ["MATCH_RULES", "check_match", "union_gradient", "matching_loss", "rule_for_iteration"]

Gradients = Sequence[torch.Tensor]


def check_match(match: str) -> str:
    """Return ``match`` if valid, else raise a ValueError listing the valid names."""
    if not isinstance(match, str) or match not in MATCH_RULES:
        valid = ", ".join(repr(m) for m in MATCH_RULES)
        raise ValueError(f"unknown match {match!r}: valid values are {valid}")
    return match


def union_gradient(per_class: Sequence[Gradients], weights: Sequence[float] | torch.Tensor) -> list[torch.Tensor]:
    """Weighted sum ``sum_c w_c g_c`` of per-class gradient lists.

    With ``w_c = |B_c| / sum_k |B_k|`` this is the gradient of the mean loss on
    the union of the class batches (paper eq. 5).

    Parameters
    ----------
    per_class : sequence of gradient lists
        ``per_class[c][l]`` is the gradient of parameter ``l`` for class ``c``.
    weights : sequence of float
        One weight per class; used as given (not renormalised).

    Returns
    -------
    list of torch.Tensor
        One tensor per parameter.
    """
    if len(per_class) != len(weights):
        raise ValueError(f"{len(per_class)} classes of gradients but {len(weights)} weights")
    if len(per_class) == 0:
        raise ValueError("no class gradients to combine")
    n_layers = len(per_class[0])
    out = []
    for layer in range(n_layers):
        total = None
        for grads, w in zip(per_class, weights):
            term = grads[layer] * w
            total = term if total is None else total + term
        out.append(total)
    return out


def rule_for_iteration(match: str, iteration: int) -> str:
    """The rule in force at outer iteration ``iteration``: resolves ``"interleaved"``."""
    if match == "interleaved":
        return "intra" if iteration % 2 == 0 else "inter"
    return match


def matching_loss(
    g_syn: Sequence[Gradients],
    g_real: Sequence[Gradients],
    *,
    distance: Callable[[Gradients, Gradients], torch.Tensor],
    match: str = "multilevel",
    lam: float = 1.0,
    weights: Sequence[float] | torch.Tensor | None = None,
    iteration: int = 0,
    union_reduce: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
    inter_share: float = 1.0,
) -> torch.Tensor:
    """The gradient-matching loss of one matching step.

    Parameters
    ----------
    g_syn, g_real : sequence of gradient lists
        Per-class gradients of the synthetic and the real batch.
    distance : callable
        Layer-wise distance ``D(list, list) -> scalar``.
    match : {"intra", "inter", "interleaved", "multilevel"}
        Which terms to use (see the module docstring).
    lam : float
        Weight lambda of the inter-class term.
    weights : sequence of float, optional
        Class weights ``w_c`` of the inter-class term; uniform ``1/C`` if omitted.
    iteration : int
        Outer iteration index, used by ``"interleaved"``.
    union_reduce : callable, optional
        Class sharding: completes this rank's partial class-weighted sums into
        the sums over all classes (an autograd-aware all-reduce), applied to
        both sides before the inter-class distance.
    inter_share : float, default=1.0
        Factor on the inter-class term: ``1 / world_size`` when sharded, since
        every rank computes the same term and the all-reduce's backward pass
        sums their gradients.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    check_match(match)
    n_classes = len(g_syn)
    if len(g_real) != n_classes:
        raise ValueError(f"{n_classes} synthetic class gradients but {len(g_real)} real ones")
    if weights is None:
        weights = [1.0 / n_classes] * n_classes
    rule = rule_for_iteration(match, iteration)
    loss = None
    if rule in ("intra", "multilevel"):
        for gs, gr in zip(g_syn, g_real):
            term = distance(gs, gr)
            loss = term if loss is None else loss + term
    if rule in ("inter", "multilevel") and lam != 0:
        u_syn, u_real = union_gradient(g_syn, weights), union_gradient(g_real, weights)
        if union_reduce is not None:
            u_syn, u_real = union_reduce(u_syn), union_reduce(u_real)
        inter = (lam * inter_share) * distance(u_syn, u_real)
        loss = inter if loss is None else loss + inter
    if loss is None:
        # "inter" with lambda = 0: a zero that still depends on the synthetic set.
        loss = sum(g.sum() for g in g_syn[0]) * 0.0
    return loss
