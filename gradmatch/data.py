"""Real training data as the condensation loop sees it.

The images stay in the caller's dtype and memory (a zero-copy view where
possible; uint8 stays uint8) and are normalised batch by batch when drawn, so
holding the training set costs no extra copy on the CPU and the smallest one on
a GPU. Each class has one pool of row indices on the data's device; a batch is
one ``randperm`` and one gather, with no DataLoader and no host round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Normalization", "ClassPools", "DatasetPools", "channel_stats", "channel_range"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``mean`` and ``std`` (each of length C), in the input's value scale."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def tensors(self, device, n_dims: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, len(self.mean)) + (1,) * (n_dims - 2)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).reshape(shape)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).reshape(shape)
        return mean, std

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> Normalization:
    """Per-channel mean and std of ``(n, C, H, W)`` images, in float64, chunk by chunk.

    Chunking keeps the extra memory to one chunk whatever the input dtype. A
    channel with zero spread gets std 1 so normalisation never divides by 0.
    """
    n, channels = images.shape[0], images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for start in range(0, n, chunk):
        block = images[start : start + chunk].to(device="cpu", dtype=torch.float64)
        block = block.transpose(0, 1).reshape(channels, -1)
        total += block.sum(dim=1)
        total_sq += block.pow(2).sum(dim=1)
        count += block.shape[1]
    mean = total / count
    var = (total_sq / count - mean.pow(2)).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return Normalization(tuple(mean.tolist()), tuple(std.tolist()))


def channel_range(images: torch.Tensor, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel minimum and maximum of ``(n, C, ...)`` data, chunk by chunk (float64)."""
    channels = images.shape[1]
    lo = np.full(channels, np.inf)
    hi = np.full(channels, -np.inf)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].to(device="cpu", dtype=torch.float64)
        block = block.transpose(0, 1).reshape(channels, -1)
        lo = np.minimum(lo, block.min(dim=1).values.numpy())
        hi = np.maximum(hi, block.max(dim=1).values.numpy())
    return lo, hi


class ClassPools:
    """Real images grouped by class, drawn as normalised float32 batches.

    Parameters
    ----------
    images : torch.Tensor
        ``(n, C, H, W)`` in any real dtype; not copied.
    labels : torch.Tensor
        ``(n,)`` class indices in ``0 .. n_classes - 1``.
    n_classes : int
    normalization : Normalization
    device : torch.device
        Where batches are produced. ``images`` are moved there once.
    owned : range, optional
        Class sharding: keep only the images of these classes. Draws for the
        other classes still consume the generator exactly as the full pools
        would (so every rank follows the single-process random stream) but
        return no images.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, n_classes: int,
                 normalization: Normalization, device: torch.device, owned: range | None = None):
        self.device = torch.device(device)
        labels = labels.to(self.device)
        self.n_classes = int(n_classes)
        self.pools: list[torch.Tensor] = [
            torch.nonzero(labels == c, as_tuple=False).flatten() for c in range(self.n_classes)
        ]
        self._set_owned(owned, labels)
        if owned is None:
            self.images = images.to(self.device)
        else:
            # Only this rank's classes reach its device.
            keep = self._local >= 0
            self.images = images[keep.to(images.device)].to(self.device)
        self.mean, self.std = normalization.tensors(self.device, self.images.dim())
        # Label tensors for batches, made once per (class, size): not one per sample.
        self._labels: dict[tuple[int, int], torch.Tensor] = {}

    def _set_owned(self, owned: range | None, labels: torch.Tensor) -> None:
        self.owned = owned
        self._local = None
        if owned is not None:
            keep = (labels >= owned.start) & (labels < owned.stop)
            # global row -> row among the kept images (-1: another rank's)
            self._local = torch.full((labels.shape[0],), -1, dtype=torch.long, device=self.device)
            self._local[keep] = torch.arange(int(keep.sum()), device=self.device)

    def owns(self, c: int) -> bool:
        return self.owned is None or c in self.owned

    @property
    def class_sizes(self) -> list[int]:
        return [len(p) for p in self.pools]

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw.to(torch.float32) - self.mean) / self.std

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        """Normalised float32 images of the given (global) rows, all owned."""
        if self._local is not None:
            rows = self._local[rows]
        return self.normalize(self.images[rows])

    def _mine(self, rows: torch.Tensor) -> torch.Tensor:
        """Which of the given (global) rows this rank holds."""
        return self._local[rows] >= 0

    def take_partial(self, rows: torch.Tensor) -> torch.Tensor:
        """Like :meth:`take`, with zeros in place of other ranks' rows (to be summed over ranks)."""
        if self.owned is None:
            return self.take(rows)
        mine = self._mine(rows)
        out = torch.zeros((rows.shape[0],) + self.image_shape, device=self.device)
        if bool(mine.any()):
            out[mine] = self.take(rows[mine])
        return out

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def sample(self, c: int, size: int, generator: torch.Generator,
               partial: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``min(size, n_c)`` images of class ``c`` drawn without replacement, and their labels.

        For a class another rank owns, the draw is made (the generator moves
        on) and the images are None, or zeros with ``partial=True``.
        """
        pool = self.pools[c]
        size = min(int(size), len(pool))
        perm = torch.randperm(len(pool), generator=generator, device=generator.device)[:size]
        labels = self._labels.get((c, size))
        if labels is None:
            labels = self._labels[(c, size)] = torch.full((size,), c, dtype=torch.long, device=self.device)
        if not self.owns(c):
            images = torch.zeros((size,) + self.image_shape, device=self.device) if partial else None
            return images, labels
        rows = pool[perm.to(pool.device)]
        return self.take(rows), labels

    @property
    def n_items(self) -> int:
        return self._local.shape[0] if self._local is not None else self.images.shape[0]

    def sample_mixed(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` images drawn without replacement from all classes (at most all of them)."""
        n = self.n_items
        size = min(int(size), n)
        rows = torch.randperm(n, generator=generator, device=generator.device)[:size].to(self.device)
        labels = torch.empty(n, dtype=torch.long, device=self.device)
        for c, pool in enumerate(self.pools):
            labels[pool] = c
        return self.take_partial(rows), labels[rows]

    def initial_images(self, counts: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """Normalised real images to start the synthetic set from (``init="real"``).

        Class ``c`` gets ``counts[c]`` distinct images, or, when it has fewer,
        all of them and then draws with replacement. Sharded: only the owned
        classes' images, in class order.
        """
        chosen = []
        for c, k in enumerate(counts):
            pool = self.pools[c]
            if k <= len(pool):
                perm = torch.randperm(len(pool), generator=generator, device=generator.device)[:k]
            else:
                extra = torch.randint(len(pool), (k - len(pool),), generator=generator,
                                      device=generator.device)
                perm = torch.cat([torch.randperm(len(pool), generator=generator,
                                                 device=generator.device), extra])
            if self.owns(c):
                chosen.append(pool[perm.to(pool.device)])
        return self.take(torch.cat(chosen))


class DatasetPools(ClassPools):
    """:class:`ClassPools` over a torch Dataset too large for memory.

    Only the labels are held; each batch reads its items from the Dataset
    (per-class index pools, the same draws as :class:`ClassPools`), stacks,
    reshapes them to ``shape`` and moves them to the device.
    """

    def __init__(self, dataset, labels: torch.Tensor, n_classes: int, normalization: Normalization,
                 device: torch.device, shape: tuple[int, ...], owned: range | None = None):
        from .validation import stack_items

        self._stack = stack_items
        self.dataset = dataset
        self.shape = tuple(shape)
        self._n = int(labels.shape[0])
        self.device = torch.device(device)
        self.n_classes = int(n_classes)
        labels = labels.to(self.device)
        self.pools = [torch.nonzero(labels == c, as_tuple=False).flatten() for c in range(self.n_classes)]
        # Sharded, only owned rows are ever read (the Dataset itself stays where it is).
        self.owned = owned
        self._local = None
        self.mean, self.std = normalization.tensors(self.device, len(self.shape) + 1)
        self._labels = {}
        self._all_labels = labels

    @property
    def n_items(self) -> int:
        return self._n

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.shape

    def _mine(self, rows: torch.Tensor) -> torch.Tensor:
        labels = self._all_labels[rows]
        return (labels >= self.owned.start) & (labels < self.owned.stop)

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        images, _ = self._stack(self.dataset, rows.cpu().tolist(), self._n)
        return self.normalize(images.reshape((-1,) + self.shape).to(self.device))
