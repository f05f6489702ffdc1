"""Distribution matching (Zhao and Bilen, WACV 2023). Pure PyTorch: no scikit-learn here.

Each outer iteration draws a freshly initialised network, freezes it, embeds a
real batch and the synthetic images of every class with the features before
its classifier (``net.embed``), and moves the synthetic images so that each
class's mean embedding comes closer to the real one. There are no network
steps and no second-order gradients: an iteration costs a few forward passes
and one backward pass through the synthetic images.

A network with BatchNorm embeds all classes in one batch (its statistics are
then those of the whole batch, as in the method's reference implementation);
other networks embed class by class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .engine import BN_TYPES, SetLoop

__all__ = ["DistributionSettings", "DistributionMatchingLoop", "mean_embedding_loss", "has_batchnorm"]


@dataclass
class DistributionSettings:
    """Everything the distribution-matching loop needs besides data, network and randomness."""

    iterations: int
    lr_syn: float = 1.0
    momentum_syn: float = 0.5
    batch_real: int = 256
    #: Differentiable siamese augmentation (gradmatch.augment.DSA) or None.
    augment: object = None
    #: Multi-formation: each stored image decodes into factor**2 training images.
    factor: int = 1


def mean_embedding_loss(real: Sequence[torch.Tensor], syn: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over classes of the squared distance between the real and the synthetic mean embedding.

    Parameters
    ----------
    real, syn : sequences of tensors
        Per class, embeddings ``(n_c, k)`` and ``(m_c, k)``.

    Examples
    --------
    >>> import torch
    >>> real = [torch.tensor([[1.0, 0.0], [3.0, 0.0]])]
    >>> syn = [torch.tensor([[0.0, 1.0]])]
    >>> float(mean_embedding_loss(real, syn))   # (2 - 0)^2 + (0 - 1)^2
    5.0
    """
    if len(real) != len(syn) or not real:
        raise ValueError(f"one real and one synthetic embedding per class are needed, got {len(real)} "
                         f"and {len(syn)}")
    terms = [((r.mean(dim=0) - s.mean(dim=0)) ** 2).sum() for r, s in zip(real, syn)]
    return torch.stack(terms).sum()


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` normalises with batch statistics (BatchNorm layers)."""
    return any(isinstance(m, BN_TYPES) for m in net.modules())


@dataclass
class DistributionMatchingLoop(SetLoop):
    """State and driver of one distribution-matching run.

    Takes :class:`~gradmatch.engine.SetLoop`'s parameters, with a
    :class:`DistributionSettings`. In a class-sharded run each rank matches
    its own classes (the classes are independent), and only the loss value
    is summed over the ranks.
    """

    HISTORY_KEYS: ClassVar[tuple[str, ...]] = ("loss", "seconds")

    def iterate(self) -> dict:
        """One update of the set against a fresh, frozen network's embedding."""
        net = self.fresh_network()
        for param in net.parameters():
            param.requires_grad_(False)
        embed = getattr(net, "embed", None)
        if not callable(embed):
            raise ValueError(f"distribution matching embeds with the network's embed() method (the features "
                             f"before its classifier), which {type(net).__name__} lacks: give a model with one")
        joint = has_batchnorm(net)
        if joint and self.shard is not None:
            raise ValueError("a BatchNorm network embeds all classes in one batch, which a class-sharded run "
                             "cannot do: run it in one process (distributed=False) or use a network "
                             "without BatchNorm")
        value = self.distribution_step(net, embed, joint)
        self.check_finite(value, "its update")
        return {"loss": value}

    def class_batches(self, net: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per owned class: a real batch and the synthetic images, augmented alike when asked."""
        batches = list(self.owned_batches(net, self.iteration))  # one matching step per iteration
        return [b.real for b in batches], [b.syn for b in batches]

    def distribution_step(self, net: nn.Module, embed, joint: bool) -> float:
        """One SGD step of the set on the mean-embedding loss; returns the loss (all ranks)."""
        reals, syns = self.class_batches(net)
        if joint:
            real_emb = embed(torch.cat(reals)).detach().split([len(x) for x in reals])
            syn_emb = embed(torch.cat(syns)).split([len(x) for x in syns])
        else:
            real_emb = [embed(x).detach() for x in reals]
            syn_emb = [embed(x) for x in syns]
        loss = mean_embedding_loss(real_emb, syn_emb)
        value = float(loss.detach())
        if self.shard is not None:
            value = self.shard.sum_value(value)
        if not math.isfinite(value):
            return value
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return value
