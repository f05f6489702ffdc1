"""Multi-formation: several training images in the storage of one (Kim et al., ICML 2022).

With ``factor`` f >= 2, each stored synthetic image of size H x W is cut
into an f x f grid of parts, and each part is resized back to H x W: one
stored image decodes into f**2 training images of the same class. The storage
stays ``ipc`` images per class while the network sees ``ipc * f**2``;
gradients flow back through the resize to every stored pixel. With f = 1
decoding is the identity (the same tensor, so results are unchanged).

When H (or W) does not divide by f, the parts differ by one pixel: the first
``H % f`` rows of parts are one pixel taller (and likewise for columns), so
every stored pixel belongs to exactly one part. Each part must be at least
one pixel, so f is at most ``min(H, W)``.

``pack`` is the inverse direction used by the ``"mix"`` initialisation: f**2
real images, each shrunk to its part's size, tiled into one stored image.

All functions are pure and work on normalised or raw images alike: resizing
is a weighted mean with weights summing to one, so it commutes with a
per-channel affine normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["part_bounds", "check_factor", "decode", "decoded_labels", "pack", "decode_array"]


def part_bounds(size: int, factor: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the ``factor`` parts of a side of ``size`` pixels.

    Examples
    --------
    >>> part_bounds(8, 2)
    [(0, 4), (4, 8)]
    >>> part_bounds(28, 3)          # 28 = 10 + 9 + 9
    [(0, 10), (10, 19), (19, 28)]
    """
    base, extra = divmod(int(size), int(factor))
    bounds, start = [], 0
    for i in range(int(factor)):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def check_factor(factor: int, image_shape: Sequence[int] | None) -> None:
    """Refuse a factor the data cannot take, saying what to do.

    Parameters
    ----------
    factor : int
    image_shape : tuple (C, H, W) or None
        The images' shape; None for flat features.
    """
    if factor == 1:
        return
    if image_shape is None:
        raise ValueError(
            f"factor={factor} cuts each synthetic image into {factor}x{factor} parts, which needs "
            "images: these are flat features. Pass input_shape=(C, H, W) if the rows are images, "
            "or use factor=1")
    height, width = int(image_shape[-2]), int(image_shape[-1])
    if factor > min(height, width):
        raise ValueError(
            f"factor={factor} cuts each {height}x{width} image into {factor}x{factor} parts of at "
            f"least one pixel, which needs both sides >= {factor}: use factor <= {min(height, width)}")


def decode(stored: torch.Tensor, factor: int) -> torch.Tensor:
    """The training images of stored images ``(n, C, H, W)``: ``(n * factor**2, C, H, W)``.

    Decoded row ``k * factor**2 + i * factor + j`` is part ``(i, j)`` (row
    ``i``, column ``j``) of stored image ``k``, resized bilinearly to
    ``H x W``. ``factor=1`` returns ``stored`` itself. Differentiable.

    Examples
    --------
    >>> import torch
    >>> stored = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> decode(stored, 2).shape
    torch.Size([4, 1, 4, 4])
    >>> decode(stored, 1) is stored
    True
    """
    if factor == 1:
        return stored
    n, channels, height, width = stored.shape
    rows, cols = part_bounds(height, factor), part_bounds(width, factor)
    parts = [F.interpolate(stored[:, :, r0:r1, c0:c1], size=(height, width), mode="bilinear",
                           align_corners=False)
             for r0, r1 in rows for c0, c1 in cols]
    # (f*f, n, C, H, W) -> (n, f*f, C, H, W): a stored image's parts stay together.
    return torch.stack(parts, dim=1).reshape(n * factor * factor, channels, height, width)


def decoded_labels(labels: torch.Tensor | np.ndarray, factor: int):
    """Labels of :func:`decode`'s rows: each stored image's label ``factor**2`` times.

    Examples
    --------
    >>> import numpy as np
    >>> decoded_labels(np.array([0, 1]), 2).tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    """
    if isinstance(labels, torch.Tensor):
        return labels.repeat_interleave(factor * factor)
    return np.repeat(np.asarray(labels), factor * factor)


def pack(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Tile groups of ``factor**2`` images ``(n * factor**2, C, H, W)`` into ``(n, C, H, W)``.

    Image ``k * factor**2 + i * factor + j`` is shrunk (antialiased bilinear)
    to the size of part ``(i, j)`` and placed there in stored image ``k``, so
    :func:`decode` gives back a blurred version of each image in its place.
    """
    if factor == 1:
        return images
    total, channels, height, width = images.shape
    groups = factor * factor
    if total % groups:
        raise ValueError(f"pack needs a multiple of factor**2 = {groups} images, got {total}")
    stored = images.new_empty((total // groups, channels, height, width))
    grouped = images.reshape(total // groups, groups, channels, height, width)
    for i, (r0, r1) in enumerate(part_bounds(height, factor)):
        for j, (c0, c1) in enumerate(part_bounds(width, factor)):
            stored[:, :, r0:r1, c0:c1] = F.interpolate(
                grouped[:, i * factor + j], size=(r1 - r0, c1 - c0), mode="bilinear",
                align_corners=False, antialias=True)
    return stored


def decode_array(images: np.ndarray, factor: int, image_shape: Sequence[int]) -> np.ndarray:
    """:func:`decode` for an array of stored samples in any layout holding ``image_shape`` values each.

    The result keeps the layout of ``images`` (flat rows stay flat, grey
    ``(n, H, W)`` stays grey) and its float dtype (integers give float32).
    """
    images = np.asarray(images)
    if factor == 1:
        return images.copy()
    dtype = images.dtype if images.dtype.kind == "f" else np.dtype(np.float32)
    # float64 decodes in float64; everything else in float32.
    work = np.float64 if dtype == np.float64 else np.float32
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=work))
    out = decode(tensor.reshape((-1,) + tuple(int(v) for v in image_shape)), factor)
    return out.reshape((-1,) + images.shape[1:]).numpy().astype(dtype, copy=False)
