"""Class sharding over ``torch.distributed``: which rank owns which classes, and the collectives.

Per-class work in a matching step is independent: each class's real and
synthetic gradients and its intra-class distance need only that class. Three
things cross classes, and each gets one collective:

* the inter-class term compares ``sum_c w_c g_c`` of both sides: each rank sums
  its own classes and an autograd-aware all-reduce (:class:`SumOverRanks`,
  whose backward pass all-reduces the incoming gradients) completes the sums,
  so the gradient of the distance flows back to every rank's synthetic images
  (one reduce of the size of the network's parameters, per side, per matching
  step);
* the network steps need the whole synthetic set: every rank trains the same
  network on it (same initialisation and batches from the shared generator),
  so the ranks' shards are all-gathered (small: the synthetic set is a few
  images per class);
* a few real batches that mix classes (BatchNorm statistics, the held batch of
  the "overfit" schedule) are assembled the same way.

Gathering the synthetic set, rather than averaging network gradients across
ranks, keeps the network steps identical to the single-process ones without a
collective per network step; the set is small and is gathered once per matching
step. Every rank draws every random number the single process draws, in the
same order, and only materialises what it owns; that is what makes the sharded
run give the single-process set up to float summation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ClassShard", "SumOverRanks", "split_classes", "current_shard", "distributed_world"]


class SumOverRanks(torch.autograd.Function):
    """``sum_r x_r`` on every rank; backward: ``sum_r dL_r/dy`` to every rank.

    Written here on the stable ``torch.distributed.all_reduce`` because
    ``torch.distributed.nn.functional.all_reduce``, which does the same, is
    deprecated in PyTorch 2.14 in favour of a private module. When each of N
    ranks computes the same loss from the sum, the gradients add up N times:
    the caller scales such a loss by 1/N (``matching_loss``'s ``inter_share``).
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over all ranks (a new tensor)."""
        import torch.distributed as dist

        out = tensor.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of the gradients arriving at the output."""
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def split_classes(n_classes: int, world_size: int) -> list[range]:
    """Contiguous, balanced blocks of classes, one per rank.

    Examples
    --------
    >>> split_classes(10, 3)
    [range(0, 3), range(3, 7), range(7, 10)]
    """
    if world_size > n_classes:
        raise ValueError(
            f"{world_size} processes for {n_classes} classes: class sharding needs at least one "
            "class per process; launch at most as many processes as there are classes"
        )
    bounds = np.linspace(0, n_classes, world_size + 1).round().astype(int)
    blocks = [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    # linspace rounding can leave a block empty only when world_size > n_classes (excluded above)
    return blocks


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised default process group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class ClassShard:
    """This rank's block of classes and the collectives of a sharded run.

    Attributes
    ----------
    rank, world_size : int
    owned : range
        Class indices this rank owns.
    """

    rank: int
    world_size: int
    owned: range

    # ------------------------------------------------------------ collectives
    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (no autograd); returns ``tensor``."""
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def sum_with_grad(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Sum over ranks; the backward pass sums the gradients back to every rank."""
        return [SumOverRanks.apply(t) if t.requires_grad else self.sum_(t.detach().clone())
                for t in tensors]

    def sum_value(self, value: float) -> float:
        return float(self.sum_(torch.tensor([value], dtype=torch.float64, device=self._device())).item())

    def all_true(self, flag: bool) -> bool:
        return self.sum_value(0.0 if flag else 1.0) == 0.0

    def broadcast_int(self, value: int) -> int:
        import torch.distributed as dist

        t = torch.tensor([int(value)], dtype=torch.int64, device=self._device())
        dist.broadcast(t, src=0)
        return int(t.item())

    def same_everywhere(self, values: np.ndarray) -> bool:
        """Whether an int64 vector (e.g. class counts) is the same on every rank."""
        import torch.distributed as dist

        mine = torch.as_tensor(np.asarray(values, dtype=np.int64), device=self._device())
        first = mine.clone()
        dist.broadcast(first, src=0)
        return self.all_true(bool(torch.equal(mine, first)))

    def assemble(self, local: torch.Tensor, block_sizes: Sequence[int]) -> torch.Tensor:
        """The ranks' ``local`` blocks (``block_sizes[r]`` rows on rank r) stacked in rank order.

        One all-gather of blocks padded to the largest: about half the traffic
        of summing zero-filled full tensors.
        """
        import torch.distributed as dist

        rows = max(block_sizes)
        padded = local.detach().new_zeros((rows,) + tuple(local.shape[1:]))
        padded[: local.shape[0]] = local.detach()
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded.contiguous())
        return torch.cat([g[:n] for g, n in zip(gathered, block_sizes)])

    @staticmethod
    def _device() -> torch.device:
        import torch.distributed as dist

        # NCCL reduces CUDA tensors only; gloo takes CPU ones.
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def current_shard(n_classes: int) -> ClassShard | None:
    """The shard of this process when a process group of more than one rank is initialised."""
    rank, world = distributed_world()
    if world <= 1:
        return None
    return ClassShard(rank, world, split_classes(n_classes, world)[rank])
