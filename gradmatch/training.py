"""Training a network from scratch on a labelled set (docs/design.md section 3).

Used by Herding (its feature network) and by the evaluation protocol. The
default :class:`TrainRecipe` is DC's: SGD with momentum 0.9 and weight decay
5e-4, batch 256, learning rate x0.1 at half the epochs; optionally DSA's
augmentation of every batch (1000 epochs in DSA). :func:`idc_recipe` gives
the recipe behind IDC's published figures (Kim et al., ICML 2022): batch 64,
learning rate x0.2 at 2/3 and 5/6 of the epochs, DSA without cutout and
CutMix (:func:`cutmix`) after the augmentation.
Batches are drawn by index from in-memory tensors and normalised on the fly,
so no normalised copy of the data is ever made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real

import torch
from scipy.special import betaincinv
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .augment import DSA

__all__ = ["TrainRecipe", "MIXES", "LR_SCHEDULES", "IDC_STRATEGY", "train_network", "idc_recipe",
           "lr_milestones", "cutmix", "cutmix_loss", "predict_logits", "embed"]

#: Batch mixing methods of :class:`TrainRecipe` (``mix``).
MIXES: tuple[str, ...] = ("cutmix",)

#: Named learning-rate schedules, ``name: (lr_steps, lr_decay)``: DC's one x0.1 at
#: half, IDC's x0.2 at 2/3 and 5/6 of the epochs (``MultiStepLR`` with milestones
#: ``[2 * epochs // 3, 5 * epochs // 6]``, gamma 0.2).
LR_SCHEDULES: dict[str, tuple[tuple[float, ...], float]] = {
    "dc": ((0.5,), 0.1),
    "idc": ((2 / 3, 5 / 6), 0.2),
}

#: IDC's evaluation augmentation with CutMix: DSA without cutout (Fashion-MNIST, CIFAR);
#: IDC drops ``flip`` for MNIST and SVHN.
IDC_STRATEGY = "color_crop_flip_scale_rotate"


@dataclass(frozen=True)
class TrainRecipe:
    """How a network is trained from scratch; the defaults are DC's recipe (``epochs=300`` in the paper).

    Attributes
    ----------
    epochs, lr, momentum, weight_decay, batch_size
        SGD with momentum, on batches drawn without replacement each epoch.
    augment : callable or None, default=None
        ``augment(batch, generator)`` applied to every normalised batch (DSA's
        evaluation: a :class:`gradmatch.augment.DSA`), or None.
    lr_steps : tuple of float, default=(0.5,)
        Fractions of ``epochs``, each in ``[0, 1]``: the learning rate is
        multiplied by ``lr_decay`` at the start of epoch ``floor(f * epochs)``
        (counted from 0) for each ``f``; see :func:`lr_milestones`.
    lr_decay : float, default=0.1
        DC's x0.1 at half is the default; IDC decays x0.2 at ``(2/3, 5/6)``
        (:data:`LR_SCHEDULES`).
    mix : {"cutmix"} or None, default=None
        Mix the (augmented) batches with :func:`cutmix`.
    mix_prob : float, default=0.5
        Probability that a batch is mixed (IDC: 0.5 on MNIST, Fashion-MNIST,
        SVHN and CIFAR, 1.0 elsewhere).
    mix_beta : float, default=1.0
        CutMix's ``lam ~ Beta(mix_beta, mix_beta)``.
    """

    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    #: Differentiable augmentation applied to every batch (DSA's evaluation), or None.
    augment: object = None
    lr_steps: tuple[float, ...] = (0.5,)
    lr_decay: float = 0.1
    mix: str | None = None
    mix_prob: float = 0.5
    mix_beta: float = 1.0

    def __post_init__(self) -> None:
        steps = self.lr_steps
        if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__"):
            raise ValueError(f"lr_steps must be a tuple of fractions in [0, 1], got {steps!r}")
        steps = tuple(steps)
        if not all(_is_real(f) and 0 <= f <= 1 for f in steps):
            raise ValueError(f"lr_steps must be a tuple of fractions in [0, 1], got {self.lr_steps!r}")
        object.__setattr__(self, "lr_steps", steps)
        if not (_is_real(self.lr_decay) and 0 < self.lr_decay < math.inf):
            raise ValueError(f"lr_decay must be a positive finite number, got {self.lr_decay!r}")
        if self.mix is not None and self.mix not in MIXES:
            raise ValueError(f"mix must be None or one of {MIXES}, got {self.mix!r}")
        _check_mix_settings(self.mix_prob, self.mix_beta)


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and not math.isnan(value)


def _check_mix_settings(prob, beta) -> None:
    if not (_is_real(prob) and 0 <= prob <= 1):
        raise ValueError(f"mix_prob must be a probability in [0, 1], got {prob!r}")
    if not (_is_real(beta) and 0 < beta < math.inf):
        raise ValueError(f"mix_beta must be a positive finite number, got {beta!r}")


def lr_milestones(epochs: int, steps) -> tuple[int, ...]:
    """The epochs (counted from 0) at whose start the learning rate decays once, sorted.

    Each fraction ``f`` of ``steps`` gives ``floor(f * epochs)``, computed
    exactly on the fraction nearest to ``f`` with a denominator of at most
    10**6, so ``2 / 3`` gives ``2 * epochs // 3`` like IDC's ``MultiStepLR``
    milestones and ``0.5`` gives DC's ``epochs // 2``. A milestone at epoch 0
    is dropped (DC never decays before the first epoch); one that occurs
    twice decays twice, as in ``MultiStepLR``.

    Examples
    --------
    >>> lr_milestones(1000, (2 / 3, 5 / 6)), lr_milestones(300, (0.5,)), lr_milestones(1, (0.5,))
    ((666, 833), (150,), ())
    """
    found = (math.floor(Fraction(f).limit_denominator(10**6) * int(epochs)) for f in steps)
    return tuple(sorted(m for m in found if m > 0))


def idc_recipe(epochs: int = 1000, *, flip: bool = True, mix_prob: float = 0.5) -> TrainRecipe:
    """The recipe behind IDC's published figures (Kim et al., ICML 2022; their train.py).

    SGD with lr 0.01, momentum 0.9 and weight decay 5e-4, batches of 64,
    ``epochs`` epochs (1000 in the paper), the learning rate x0.2 at
    ``2 * epochs // 3`` and ``5 * epochs // 6``, DSA on every batch with the
    strategy :data:`IDC_STRATEGY` (no cutout, since CutMix is on), then CutMix
    with ``beta=1`` on a batch with probability ``mix_prob``.

    Parameters
    ----------
    epochs : int, default=1000
    flip : bool, default=True
        Include DSA's ``flip``; IDC drops it for MNIST and SVHN (digits must
        not be mirrored) and keeps it for Fashion-MNIST and CIFAR.
    mix_prob : float, default=0.5
        IDC uses 0.5 on MNIST, Fashion-MNIST, SVHN and CIFAR; 1.0 is its
        default for the other datasets.

    Returns
    -------
    TrainRecipe

    Notes
    -----
    One difference remains in the augmentation: IDC's ``DiffAug`` always
    applies ``flip`` and ``color`` and then one of ``crop``/``scale``/``rotate``
    per batch, while :class:`gradmatch.augment.DSA` (``mode="single"``, DSA's
    own evaluation) applies one operation of the whole strategy per batch.
    The parameters are drawn per image in both.

    Examples
    --------
    >>> recipe = idc_recipe()
    >>> recipe.batch_size, recipe.mix, recipe.mix_prob, lr_milestones(recipe.epochs, recipe.lr_steps)
    (64, 'cutmix', 0.5, (666, 833))
    >>> idc_recipe(flip=False).augment.strategy
    'color_crop_scale_rotate'
    """
    steps, decay = LR_SCHEDULES["idc"]
    strategy = IDC_STRATEGY if flip else IDC_STRATEGY.replace("_flip", "")
    return TrainRecipe(epochs=epochs, lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64,
                       augment=DSA(strategy=strategy), lr_steps=steps, lr_decay=decay,
                       mix="cutmix", mix_prob=mix_prob, mix_beta=1.0)


def _uniform(generator: torch.Generator) -> float:
    """One draw of U[0, 1) in float64 from ``generator``."""
    return float(torch.rand(1, generator=generator, device=generator.device, dtype=torch.float64))


def _symmetric_beta(u: float, beta: float) -> float:
    """Beta(beta, beta) by inversion of its distribution function at ``u ~ U[0, 1)``."""
    if beta == 1.0:
        return u  # Beta(1, 1) is U(0, 1)
    return float(betaincinv(beta, beta, u))


def cutmix(batch: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
           beta: float = 1.0, prob: float = 0.5):
    """CutMix (Yun et al., ICCV 2019) of one batch, as IDC trains its evaluation networks.

    A coin ``u ~ U[0, 1)`` is drawn for the batch; when ``u < prob``:
    ``lam ~ Beta(beta, beta)``, a permutation ``perm`` of the batch, and a
    box of half-sides ``int(H * sqrt(1 - lam)) // 2`` and
    ``int(W * sqrt(1 - lam)) // 2`` around a centre drawn uniformly over the
    pixels, clipped to the image. The box of every image is replaced by the
    same box of image ``perm[i]``, and the mixing ratio is the exact share of
    pixels left: ``ratio = 1 - box_area / (H * W)``.

    Parameters
    ----------
    batch : Tensor (N, C, H, W)
        Normalised (and augmented) images; not modified.
    labels : Tensor (N,)
        Their class indices.
    generator : torch.Generator
        The source of every random draw: the coin, ``lam``, the permutation
        and the centre, in that order (nothing but the coin when the batch is
        not mixed). ``lam`` is the inverse of Beta's distribution function
        (``scipy.special.betaincinv``) at one uniform draw, exactly that draw
        when ``beta == 1``; neither numpy's nor torch's global RNG is used.
    beta : float, default=1.0
    prob : float, default=0.5
        Probability that the batch is mixed.

    Returns
    -------
    mixed : Tensor (N, C, H, W)
        A new tensor when mixed, ``batch`` itself otherwise.
    labels_a, labels_b : Tensor (N,)
        ``labels`` and ``labels[perm]`` (both ``labels`` when not mixed).
    ratio : float
        Weight of ``labels_a`` in the loss (:func:`cutmix_loss`); 1.0 when not mixed.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    >>> mixed, y_a, y_b, ratio = cutmix(x, y, g, prob=1.0)
    >>> mixed.shape, torch.equal(y_a, y), 0.0 <= ratio <= 1.0
    (torch.Size([8, 1, 8, 8]), True, True)
    """
    if not isinstance(batch, torch.Tensor) or batch.dim() != 4:
        raise ValueError(f"cutmix needs a batch of images (N, C, H, W), got shape "
                         f"{tuple(getattr(batch, 'shape', ()))}")
    if labels.shape[0] != batch.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for a batch of {batch.shape[0]} images")
    _check_mix_settings(prob, beta)
    if _uniform(generator) >= prob:
        return batch, labels, labels, 1.0
    lam = _symmetric_beta(_uniform(generator), float(beta))
    n, _, h, w = batch.shape
    perm = torch.randperm(n, generator=generator, device=generator.device).to(batch.device)
    cut = math.sqrt(1.0 - lam)
    half_h, half_w = int(h * cut) // 2, int(w * cut) // 2
    cy = int(torch.randint(h, (1,), generator=generator, device=generator.device))
    cx = int(torch.randint(w, (1,), generator=generator, device=generator.device))
    y0, y1 = min(max(cy - half_h, 0), h), min(max(cy + half_h, 0), h)
    x0, x1 = min(max(cx - half_w, 0), w), min(max(cx + half_w, 0), w)
    mixed = batch.clone()
    mixed[:, :, y0:y1, x0:x1] = batch[perm, :, y0:y1, x0:x1]
    ratio = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return mixed, labels, labels[perm], ratio


def cutmix_loss(logits: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor,
                ratio: float) -> torch.Tensor:
    """``ratio * CE(logits, labels_a) + (1 - ratio) * CE(logits, labels_b)``; plain CE when ``ratio == 1``."""
    loss = F.cross_entropy(logits, labels_a)
    if ratio == 1.0:
        return loss
    return ratio * loss + (1.0 - ratio) * F.cross_entropy(logits, labels_b)


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
    broadcast against a batch. Each batch is normalised, augmented
    (``recipe.augment``), then mixed (``recipe.mix``), all from ``generator``;
    without a mix the generator is used exactly as before mixing existed.
    """
    if recipe.mix is not None and images.dim() != 4:
        raise ValueError(f"mix={recipe.mix!r} needs images (N, C, H, W), got shape {tuple(images.shape)}")
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    # DC decays once, at epoch epochs // 2 + 1 (counting from 1); IDC at 2/3 and 5/6.
    milestones = lr_milestones(recipe.epochs, recipe.lr_steps)
    loss_fn = nn.CrossEntropyLoss()
    n = images.shape[0]
    net.train()
    for epoch in tqdm(range(recipe.epochs), disable=not progress, desc=desc, leave=False):
        if epoch in milestones:
            decays = sum(m <= epoch for m in milestones)
            for group in opt.param_groups:
                group["lr"] = recipe.lr * recipe.lr_decay**decays
        perm = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
        for start in range(0, n, recipe.batch_size):
            rows = perm[start : start + recipe.batch_size]
            batch = _normalise(images[rows], mean, std)
            if recipe.augment is not None:
                # Fresh parameters per image, from the training generator.
                batch = recipe.augment(batch, generator)
            if recipe.mix is None:
                out = net(batch)
                loss = loss_fn(out, labels[rows])
            else:
                batch, labels_a, labels_b, ratio = cutmix(batch, labels[rows], generator,
                                                          beta=recipe.mix_beta, prob=recipe.mix_prob)
                loss = cutmix_loss(net(batch), labels_a, labels_b, ratio)
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
