"""Greedy herding selection (Welling, 2009), a pure function on feature vectors."""

from __future__ import annotations

import torch

__all__ = ["herding_order"]


def herding_order(features: torch.Tensor, k: int) -> torch.Tensor:
    """Pick ``k`` rows greedily so the running mean stays closest to the mean of all rows.

    At step ``j`` (1-based) the row ``i`` not yet chosen that minimises
    ``| mu - (s + f_i) / j |`` is added, ``s`` being the sum of the rows chosen so
    far and ``mu`` the mean of all rows.

    Parameters
    ----------
    features : torch.Tensor
        ``(n, d)`` feature vectors of one class.
    k : int
        How many rows to pick, ``1 <= k <= n``.

    Returns
    -------
    torch.Tensor
        ``(k,)`` row indices in the order chosen.

    Examples
    --------
    >>> f = torch.tensor([[0.0], [10.0], [4.0], [6.0]])
    >>> herding_order(f, 2).tolist()     # mean is 5: 4 first, then 6
    [2, 3]
    """
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot pick {k} rows out of {n}")
    feats = features.to(torch.float64)
    mu = feats.mean(dim=0)
    chosen_sum = torch.zeros_like(mu)
    available = torch.ones(n, dtype=torch.bool, device=feats.device)
    order = []
    for j in range(1, k + 1):
        candidate_means = (chosen_sum.unsqueeze(0) + feats) / j
        dist = torch.linalg.vector_norm(candidate_means - mu, dim=1)
        dist = torch.where(available, dist, torch.full_like(dist, float("inf")))
        i = int(torch.argmin(dist))
        order.append(i)
        available[i] = False
        chosen_sum += feats[i]
    return torch.tensor(order, dtype=torch.long)
