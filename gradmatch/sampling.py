"""Where each matching step's real batch comes from: random draws or representative samples.

``RandomBatches`` is the paper's rule: ``batch_real`` images of the class drawn
at random in every matching step. ``RepresentativeBatches`` is DREAM's (Liu
et al., ICCV 2023): the class's real images are embedded with the current
network (the features before its classifier), clustered by k-means into
``batch_real`` clusters, and the image nearest each centre makes the batch,
which is kept for ``every`` matching steps before the next clustering. Such a
batch covers the class's modes evenly instead of at random, so matching its
gradient is less noisy.

Both are small components of the loop: ``begin_step`` is told each matching
step (with the network), ``draw`` gives a class's batch. All randomness comes
from the loop's generator, and every class's draws are made in every rank, so a
class-sharded run follows the single-process random stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["RandomBatches", "RepresentativeBatches", "nearest_to_centres", "CLUSTER_SAMPLES",
           "make_real_sampler"]

#: At most this many real images of a class are clustered (a seeded subsample of larger
#: classes, drawn afresh at each clustering): k-means on all 6,000 images of a
#: Fashion-MNIST class costs seconds per class on two cores.
CLUSTER_SAMPLES = 2000

#: Embeddings are computed in chunks of this many images.
_EMBED_CHUNK = 1024


class RandomBatches:
    """``batch_real`` random images of the class in every matching step (the whole class if smaller)."""

    history_keys: tuple[str, ...] = ()

    def __init__(self, batch_real: int):
        self.batch_real = int(batch_real)

    def begin_step(self, step: int, embed: Callable | None, pools, generator: torch.Generator) -> None:
        """Nothing to prepare: each draw is independent."""

    def draw(self, pools, c: int, generator: torch.Generator):
        return pools.sample(c, self.batch_real, generator)

    def record(self) -> dict:
        return {}

    def state(self) -> dict:
        return {}

    def state_problem(self, state: dict) -> str | None:
        return None

    def restore(self, state: dict) -> None:
        pass


def nearest_to_centres(features: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Rows of ``features`` nearest the centres of a k-means clustering into ``n_clusters``.

    scikit-learn's ``KMeans`` (k-means++, one initialisation, seeded); one row
    per cluster, in cluster order. Two clusters may share their nearest row
    (as in DREAM); then the batch simply holds it twice.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.array([[0.0], [0.1], [10.0], [10.2], [10.1]])
    >>> sorted(nearest_to_centres(points, 2, seed=0).tolist())
    [0, 4]
    """
    from sklearn.cluster import KMeans

    n_clusters = min(int(n_clusters), len(features))
    kmeans = KMeans(n_clusters=n_clusters, n_init=1, random_state=int(seed)).fit(features)
    centres = kmeans.cluster_centers_
    # squared distances of every row to every centre: (clusters, rows)
    if len(features) * n_clusters * features.shape[1] < 2**24:
        gaps = ((centres[:, None, :] - features[None, :, :]) ** 2).sum(axis=2)
    else:
        gaps = _chunked_gaps(centres, features)
    # A two-member cluster's centre is equally far from both: rounding (which
    # differs with the thread count) must not decide, so the first row within
    # a relative 1e-6 of the nearest wins.
    nearest = gaps.min(axis=1, keepdims=True)
    return np.argmax(gaps <= nearest + 1e-6 * np.abs(nearest) + 1e-12, axis=1)


def _chunked_gaps(centres: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Squared distances centres x rows without a (clusters, rows, dims) intermediate."""
    return ((centres ** 2).sum(1)[:, None] - 2.0 * centres @ features.T + (features ** 2).sum(1)[None, :])


class RepresentativeBatches(RandomBatches):
    """DREAM's representative real batches, re-clustered every ``every`` matching steps.

    Parameters
    ----------
    batch_real : int
        Clusters per class, so images per batch (the whole class if smaller).
    every : int
        Matching steps between clusterings (DREAM: 10).
    max_samples : int, default=CLUSTER_SAMPLES
        Largest number of a class's images clustered at once.
    """

    history_keys = ("sampling_seconds",)

    def __init__(self, batch_real: int, every: int, max_samples: int = CLUSTER_SAMPLES):
        super().__init__(batch_real)
        self.every = int(every)
        self.max_samples = int(max_samples)
        self.rows: dict[int, torch.Tensor] = {}
        self._seconds = 0.0

    def begin_step(self, step: int, embed: Callable | None, pools, generator: torch.Generator) -> None:
        """Cluster every owned class anew when ``step`` is a multiple of ``every`` (or nothing is held)."""
        if step % self.every and self.rows:
            return
        start = time.perf_counter()
        rows = {}
        for c in range(pools.n_classes):
            pool = pools.pools[c]
            # Both draws are made for every class, so every rank consumes the same stream.
            order = torch.randperm(len(pool), generator=generator, device=generator.device)
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())
            if pools.owns(c):
                candidates = pool[order[: self.max_samples].to(pool.device)]
                rows[c] = candidates[torch.as_tensor(self._choose(embed, pools, candidates, seed),
                                                     device=pool.device)]
        self.rows = rows
        self._seconds += time.perf_counter() - start

    def _choose(self, embed: Callable, pools, candidates: torch.Tensor, seed: int) -> np.ndarray:
        if len(candidates) <= self.batch_real:
            return np.arange(len(candidates))
        with torch.no_grad():
            features = torch.cat([embed(pools.take(candidates[i:i + _EMBED_CHUNK])).flatten(1)
                                  for i in range(0, len(candidates), _EMBED_CHUNK)])
        return nearest_to_centres(features.double().cpu().numpy(), self.batch_real, seed)

    def draw(self, pools, c: int, generator: torch.Generator):
        if not pools.owns(c):
            return None, None  # another rank's class: nothing drawn, nothing to hold
        rows = self.rows[c]
        return pools.take(rows), torch.full((len(rows),), c, dtype=torch.long, device=pools.device)

    def record(self) -> dict:
        """Seconds spent clustering since the last record (part of the iteration's seconds)."""
        seconds, self._seconds = self._seconds, 0.0
        return {"sampling_seconds": seconds}

    def state(self) -> dict:
        """The batches held, as ``{"real_rows": {class: [rows]}}`` (plain ints, JSON-able)."""
        return {"real_rows": {str(c): rows.cpu().tolist() for c, rows in self.rows.items()}}

    def state_problem(self, state: dict) -> str | None:
        saved = state.get("real_rows")
        if not isinstance(saved, dict) or not all(
                isinstance(rows, list) and all(isinstance(r, int) and r >= 0 for r in rows)
                for rows in saved.values()):
            return "it holds no representative real batches (was it written with real_sampling='random'?)"
        return None

    def restore(self, state: dict) -> None:
        self.rows = {int(c): torch.as_tensor(rows, dtype=torch.long) for c, rows in state["real_rows"].items()}


def make_real_sampler(real_sampling: str, batch_real: int, every: int) -> RandomBatches:
    """The sampler named by ``real_sampling`` (``"random"`` or ``"representative"``)."""
    if real_sampling == "representative":
        return RepresentativeBatches(batch_real, every)
    return RandomBatches(batch_real)
