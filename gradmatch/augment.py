"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021).

Gradient matching compares the gradient a network gets from a batch of real
images of one class with the gradient it gets from that class's synthetic
images. Augmenting both batches makes the synthetic images informative under
the transformations the evaluation networks will be trained with, but only if
the two batches are transformed *alike*: a real batch that was cropped and a
synthetic batch that was rotated give gradients that differ for reasons that
have nothing to do with the synthetic images. DSA therefore samples one set of
random parameters per class and matching step and applies it to both batches
(the "siamese" part), and every transformation is written with differentiable
tensor operations so the matching loss still reaches the synthetic pixels.

Usage: :meth:`DSA.sample` with ``n=1`` once per class and matching step, then
:meth:`DSA.apply` to the real and to the synthetic batch; when training an
evaluation network, call the :class:`DSA` itself for per-image parameters.
All randomness comes from the ``torch.Generator`` passed in, never from
torch's global generator, so runs are reproducible and side-effect free.

The operations act on normalised images, as DSA's do:

==========  ==============================================================
``color``   brightness shift, saturation and contrast scaling
``crop``    integer translation by up to ``crop`` of the side, zero fill
``cutout``  a zeroed square of side ``cutout`` of the image side
``flip``    a mirror along the width with probability 0.5
``scale``   independent x/y scaling by a factor in ``[1/scale, scale]``
``rotate``  a rotation by up to ``rotate`` degrees either way
==========  ==============================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["AUGMENT_OPS", "DSA_STRATEGY", "DSA", "DSAParams", "make_augment", "check_augment_input"]

#: The operation names a strategy string may join with ``"_"``.
AUGMENT_OPS: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")

#: DSA's default strategy: every operation.
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"

_MODES = ("single", "all")


@dataclass
class DSAParams:
    """Random parameters of :class:`DSA` for ``n`` images of shape ``image_shape``.

    Attributes
    ----------
    n : int
        Number of parameter sets; 1 means one set shared by a whole batch.
    image_shape : tuple of int
        ``(C, H, W)`` of the images the parameters were drawn for.
    ops : tuple of str
        Operations to apply, in order (one in ``"single"`` mode).
    values : dict of str to torch.Tensor
        Per-image values, first dimension ``n``: ``brightness`` (added),
        ``saturation`` and ``contrast`` (factors), ``shift_x``/``shift_y``
        (int, pixels, positive moves content right/down), ``centre_x``/
        ``centre_y`` (int, cutout centre), ``flip`` (bool), ``scale_x``/
        ``scale_y`` and ``angle`` (degrees, positive turns the image clockwise as
        displayed with row 0 on top); only those of ``ops`` are present.
    """

    n: int
    image_shape: tuple[int, int, int]
    ops: tuple[str, ...]
    values: dict[str, torch.Tensor] = field(default_factory=dict)


def _check_setting(name: str, value: object, low: float, high: float = math.inf,
                   high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or value < low or too_high:
        bound = ")" if high_open else "]"
        raise ValueError(f"{name} must be finite and in [{low}, {high}{bound}, got {value!r}")
    return value


def _check_strategy(strategy: object) -> tuple[str, ...]:
    if not isinstance(strategy, str) or not strategy:
        raise ValueError(f"strategy must be a non-empty str of operation names joined by '_' "
                         f"from {AUGMENT_OPS}, got {strategy!r}")
    ops = tuple(strategy.split("_"))
    for op in ops:
        if op not in AUGMENT_OPS:
            raise ValueError(f"unknown augmentation {op!r} in strategy {strategy!r}; "
                             f"valid names are {AUGMENT_OPS}")
    return ops


class DSA:
    """Differentiable siamese augmentation of image batches ``(N, C, H, W)``.

    Parameters
    ----------
    strategy : str, default DSA_STRATEGY
        Operation names from :data:`AUGMENT_OPS` joined by ``"_"``.
    mode : {"single", "all"}, default "single"
        ``"single"``: each parameter draw picks one operation of the strategy
        at random (DSA's default); ``"all"``: every operation, in order.
    scale : float, default 1.2
        Scale factors are drawn from ``[1/scale, scale]``; at least 1.
    rotate : float, default 15.0
        Largest rotation angle in degrees, in ``[0, 180]``.
    crop : float, default 0.125
        Largest translation as a fraction of the side, in ``[0, 0.5)``.
    cutout : float, default 0.5
        Side of the zeroed square as a fraction of the image side, in ``[0, 1]``.
    brightness, saturation, contrast : float, default 1.0, 2.0, 0.5
        Ranges of the colour steps (non-negative): ``x + (u - 0.5) *
        brightness``, saturation factor ``u * saturation``, contrast factor
        ``u + contrast``, with ``u ~ U(0, 1)``.

    Examples
    --------
    >>> import torch
    >>> from gradmatch.augment import DSA
    >>> dsa = DSA(strategy="crop_flip_rotate")
    >>> g = torch.Generator().manual_seed(0)
    >>> real = torch.randn(16, 1, 8, 8)
    >>> syn = torch.randn(2, 1, 8, 8, requires_grad=True)
    >>> params = dsa.sample(1, g, image_shape=(1, 8, 8))  # once per class and step
    >>> real_aug, syn_aug = dsa.apply(real, params), dsa.apply(syn, params)
    >>> syn_aug.shape
    torch.Size([2, 1, 8, 8])
    >>> syn_aug.sum().backward()  # the gradient reaches the synthetic images
    >>> syn.grad.shape
    torch.Size([2, 1, 8, 8])
    >>> dsa
    DSA(strategy='crop_flip_rotate', mode='single', scale=1.2, rotate=15.0, ...)
    """

    def __init__(self, *, strategy: str = DSA_STRATEGY, mode: str = "single",
                 scale: float = 1.2, rotate: float = 15.0, crop: float = 0.125,
                 cutout: float = 0.5, brightness: float = 1.0, saturation: float = 2.0,
                 contrast: float = 0.5) -> None:
        self.ops = _check_strategy(strategy)
        self.strategy = strategy
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.mode = mode
        self.scale = _check_setting("scale", scale, 1.0)
        self.rotate = _check_setting("rotate", rotate, 0.0, 180.0)
        self.crop = _check_setting("crop", crop, 0.0, 0.5, high_open=True)
        self.cutout = _check_setting("cutout", cutout, 0.0, 1.0)
        self.brightness = _check_setting("brightness", brightness, 0.0)
        self.saturation = _check_setting("saturation", saturation, 0.0)
        self.contrast = _check_setting("contrast", contrast, 0.0)

    def get_params(self, deep: bool = True) -> dict:
        """The settings, by name (what identifies this augmentation in a checkpoint key)."""
        names = ("strategy", "mode", "scale", "rotate", "crop", "cutout", "brightness", "saturation", "contrast")
        return dict(zip(names, self._settings()))

    def _settings(self) -> tuple:
        return (self.strategy, self.mode, self.scale, self.rotate, self.crop, self.cutout,
                self.brightness, self.saturation, self.contrast)

    def __repr__(self) -> str:
        return (f"DSA(strategy={self.strategy!r}, mode={self.mode!r}, scale={self.scale!r}, "
                f"rotate={self.rotate!r}, crop={self.crop!r}, cutout={self.cutout!r}, "
                f"brightness={self.brightness!r}, saturation={self.saturation!r}, "
                f"contrast={self.contrast!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DSA):
            return NotImplemented
        return self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash(self._settings())

    def sample(self, n: int, generator: torch.Generator, *,
               image_shape: tuple[int, int, int]) -> DSAParams:
        """Draw parameters for ``n`` images of shape ``image_shape`` from ``generator``.

        ``n=1`` gives one set shared by every image of any batch it is applied
        to (the siamese use); tensors are created on ``generator.device``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        shape = tuple(image_shape)
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"image_shape must be (C, H, W) of positive ints, got {image_shape!r}")
        _, h, w = shape
        dev = generator.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, device=dev)

        ops = self.ops
        if self.mode == "single":
            # The choice itself comes from the generator so a seed fixes the whole draw.
            ops = (ops[int(torch.randint(len(ops), (1,), generator=generator, device=dev))],)
        v: dict[str, torch.Tensor] = {}
        for op in ops:
            if op == "color":
                v["brightness"] = (uniform(0, 1) - 0.5) * self.brightness
                v["saturation"] = uniform(0, 1) * self.saturation
                v["contrast"] = uniform(0, 1) + self.contrast
            elif op == "crop":
                py, px = int(h * self.crop + 0.5), int(w * self.crop + 0.5)
                v["shift_x"] = torch.randint(-px, px + 1, (n,), generator=generator, device=dev)
                v["shift_y"] = torch.randint(-py, py + 1, (n,), generator=generator, device=dev)
            elif op == "cutout":
                v["centre_x"] = torch.randint(0, w, (n,), generator=generator, device=dev)
                v["centre_y"] = torch.randint(0, h, (n,), generator=generator, device=dev)
            elif op == "flip":
                v["flip"] = torch.rand(n, generator=generator, device=dev) < 0.5
            elif op == "scale":
                v["scale_x"] = uniform(1 / self.scale, self.scale)
                v["scale_y"] = uniform(1 / self.scale, self.scale)
            else:  # rotate
                v["angle"] = uniform(-self.rotate, self.rotate)
        return DSAParams(n=n, image_shape=shape, ops=ops, values=v)

    def apply(self, x: torch.Tensor, params: DSAParams) -> torch.Tensor:
        """Augment ``x`` ``(N, C, H, W)`` with ``params``; differentiable in ``x``.

        Parameters with ``n=1`` are broadcast over the batch; otherwise ``n``
        must equal ``N``. The result has the shape, dtype and device of ``x``.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise ValueError("x must be a floating point tensor of shape (N, C, H, W)")
        if params.n not in (1, x.shape[0]):
            raise ValueError(f"parameters for n={params.n} images cannot be applied to a batch "
                             f"of {x.shape[0]}; sample n=1 (shared) or n=len(x)")
        if tuple(x.shape[1:]) != tuple(params.image_shape):
            raise ValueError(f"parameters were drawn for images {tuple(params.image_shape)}, "
                             f"got {tuple(x.shape[1:])}")
        # Parameters may live on the generator's device; match x's dtype and device.
        v = {k: t.to(x.device, x.dtype if t.is_floating_point() else t.dtype)
             for k, t in params.values.items()}
        for op in params.ops:
            x = getattr(self, f"_{op}")(x, v)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment ``x`` with parameters drawn per image (to train networks)."""
        return self.apply(x, self.sample(len(x), generator, image_shape=tuple(x.shape[1:])))

    # --- operations: x is (N, C, H, W), values have first dimension 1 or N ---

    @staticmethod
    def _color(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        x = x + v["brightness"].view(-1, 1, 1, 1)
        m = x.mean(dim=1, keepdim=True)
        x = m + (x - m) * v["saturation"].view(-1, 1, 1, 1)
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return m + (x - m) * v["contrast"].view(-1, 1, 1, 1)

    @staticmethod
    def _crop(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        n, c, h, w = x.shape
        # A one-pixel zero border; clamping source indices onto it fills with zeros
        # exactly, whatever the shift, and indexing keeps the gradient exact.
        padded = F.pad(x, (1, 1, 1, 1))
        rows = torch.arange(h, device=x.device) - v["shift_y"].view(-1, 1)
        cols = torch.arange(w, device=x.device) - v["shift_x"].view(-1, 1)
        rows = rows.clamp(-1, h) + 1
        cols = cols.clamp(-1, w) + 1
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
        return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]

    def _cutout(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        _, _, h, w = x.shape
        sh, sw = int(h * self.cutout + 0.5), int(w * self.cutout + 0.5)
        top = v["centre_y"].view(-1, 1) - sh // 2
        left = v["centre_x"].view(-1, 1) - sw // 2
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_rows = (rows >= top) & (rows < top + sh)  # part of the square may be outside
        in_cols = (cols >= left) & (cols < left + sw)
        keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
        return x * keep[:, None].to(x.dtype)

    @staticmethod
    def _flip(x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.where(v["flip"].view(-1, 1, 1, 1), x.flip(-1), x)

    @staticmethod
    def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        theta = theta.expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)

    def _scale(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        sx, sy = v["scale_x"], v["scale_y"]
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, zero], -1),
                             torch.stack([zero, sy, zero], -1)], 1)
        return self._warp(x, theta)

    def _rotate(self, x: torch.Tensor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        a = torch.deg2rad(v["angle"])
        cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack([torch.stack([cos, sin, zero], -1),
                             torch.stack([-sin, cos, zero], -1)], 1)
        return self._warp(x, theta)


def make_augment(augment: None | str | DSA) -> DSA | None:
    """The augmentation an ``augment`` setting names.

    Parameters
    ----------
    augment : None, str or DSA
        ``None`` or ``"none"``: no augmentation (returns None); ``"dsa"``:
        ``DSA()`` with the default strategy; a strategy string of operation
        names from :data:`AUGMENT_OPS` joined by ``"_"`` (a single name such as
        ``"crop"`` too): ``DSA(strategy=augment)``; a :class:`DSA`: returned
        as is. For handwritten digits or characters, where a mirror image is
        another class or none, leave ``flip`` out, e.g.
        ``"color_crop_cutout_scale_rotate"``.

    Returns
    -------
    DSA or None
    """
    accepted = ("None, 'dsa', a strategy string of operation names from "
                f"{AUGMENT_OPS} joined by '_', or a gradmatch.augment.DSA")
    if augment is None or isinstance(augment, DSA):
        return augment
    if not isinstance(augment, str):
        raise TypeError(f"augment must be {accepted}; got {type(augment).__name__}")
    if augment == "none":
        return None
    if augment == "dsa":
        return DSA()
    if "_" in augment or augment in AUGMENT_OPS:
        try:
            return DSA(strategy=augment)
        except ValueError as err:
            raise ValueError(f"augment must be {accepted}; {err}") from None
    raise ValueError(f"augment must be {accepted}; got {augment!r}")


def check_augment_input(augment: DSA | None, has_images: bool) -> DSA | None:
    """``augment`` unchanged, or a clear error when it would be applied to flat features."""
    if augment is not None and not has_images:
        raise ValueError("augment needs images, but X is flat features: pass input_shape=(C, H, W) "
                         "or image-shaped X, or set augment=None")
    return augment
