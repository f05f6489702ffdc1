"""Training a network from scratch on a labelled set, the DC way (docs/design.md section 3).

Used by Herding (its feature network) and by the evaluation protocol: SGD with
momentum 0.9 and weight decay 5e-4, batch 256, learning rate x0.1 at half the
epochs; optionally DSA's augmentation of every batch (1000 epochs in DSA).
Batches are drawn by index from in-memory tensors and normalised on the fly,
so no normalised copy of the data is ever made.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["TrainRecipe", "train_network", "predict_logits", "embed"]


@dataclass(frozen=True)
class TrainRecipe:
    """DC's evaluation recipe; ``epochs=300`` in the paper."""

    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    #: Differentiable augmentation applied to every batch (DSA's evaluation), or None.
    augment: object = None


def _normalise(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None) -> torch.Tensor:
    x = x.to(torch.float32)
    if mean is None:
        return x
    return (x - mean) / std


def train_network(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe: TrainRecipe,
                  generator: torch.Generator, mean: torch.Tensor | None = None,
                  std: torch.Tensor | None = None, progress: bool = False,
                  desc: str = "training") -> nn.Module:
    """Train ``net`` in place on ``(images, labels)`` (raw values, normalised per batch).

    ``images`` and ``labels`` must be on the network's device; ``mean``/``std``
    broadcast against a batch.
    """
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    # DC decays once, at epoch epochs // 2 + 1 (counting from 1).
    decay_at = recipe.epochs // 2
    loss_fn = nn.CrossEntropyLoss()
    n = images.shape[0]
    net.train()
    for epoch in tqdm(range(recipe.epochs), disable=not progress, desc=desc, leave=False):
        if epoch == decay_at and epoch > 0:
            for group in opt.param_groups:
                group["lr"] = recipe.lr * 0.1
        perm = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
        for start in range(0, n, recipe.batch_size):
            rows = perm[start : start + recipe.batch_size]
            batch = _normalise(images[rows], mean, std)
            if recipe.augment is not None:
                # Fresh parameters per image, from the training generator.
                batch = recipe.augment(batch, generator)
            out = net(batch)
            loss = loss_fn(out, labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net


@torch.no_grad()
def predict_logits(net: nn.Module, images: torch.Tensor, mean: torch.Tensor | None = None,
                   std: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``net`` in eval mode, in chunks."""
    net.eval()
    outs = [net(_normalise(images[s : s + batch_size], mean, std))
            for s in range(0, images.shape[0], batch_size)]
    return torch.cat(outs)


@torch.no_grad()
def embed(net: nn.Module, images: torch.Tensor, mean: torch.Tensor | None = None,
          std: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Features before the classifier (``net.embed``), in chunks."""
    if not hasattr(net, "embed"):
        raise TypeError(f"{type(net).__name__} has no embed() method to extract features with")
    net.eval()
    outs = [net.embed(_normalise(images[s : s + batch_size], mean, std))
            for s in range(0, images.shape[0], batch_size)]
    return torch.cat(outs)
