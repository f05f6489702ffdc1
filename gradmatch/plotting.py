"""Pictures: a synthetic set as an image grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_image_grid"]


def _as_hwc(images: np.ndarray, image_shape: Sequence[int] | None) -> np.ndarray:
    """``(n, H, W)`` or ``(n, H, W, C)`` for imshow, from any supported layout."""
    images = np.asarray(images, dtype=np.float64)
    if image_shape is not None:
        images = images.reshape((images.shape[0],) + tuple(image_shape))
    if images.ndim == 2:
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ValueError("flat features need image_shape=(C, H, W) to be drawn")
        images = images.reshape(-1, side, side)
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else np.moveaxis(images, 1, -1)
    return images


def plot_image_grid(X, y, *, image_shape=None, classes=None, ax=None, title=None, path=None):
    """Draw a set as a grid, one row per class, each image scaled to its own range.

    Parameters
    ----------
    X : array-like
        Images in the caller's layout and scale, as ``transform()`` returns them.
    y : array-like
        Their labels.
    image_shape : tuple (C, H, W), optional
        Needed for flat X.
    classes : sequence, optional
        Row order; the sorted unique labels by default.
    ax : matplotlib Axes, optional
        Draw into it; a new figure otherwise.
    title : str, optional
    path : str or Path, optional
        Save the figure there (PNG).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    if path is not None and ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    X = np.asarray(X.numpy() if hasattr(X, "numpy") else X)
    y = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
    images = _as_hwc(X, image_shape)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    per_class = max(int(np.sum(y == c)) for c in classes)
    h, w = images.shape[1:3]
    channels = images.shape[3] if images.ndim == 4 else 1
    canvas = np.ones((len(classes) * (h + 1), per_class * (w + 1), channels))
    for r, c in enumerate(classes):
        for k, img in enumerate(images[y == c]):
            lo, hi = img.min(), img.max()
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
            canvas[r * (h + 1): r * (h + 1) + h, k * (w + 1): k * (w + 1) + w] = img.reshape(h, w, channels)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(2.0, 0.5 * per_class + 1), max(2.0, 0.5 * len(classes))))
    else:
        fig = ax.figure
    ax.imshow(canvas[..., 0] if channels == 1 else canvas, cmap="gray" if channels == 1 else None,
              interpolation="nearest")
    ax.set_yticks([r * (h + 1) + h / 2 for r in range(len(classes))])
    ax.set_yticklabels([str(c) for c in classes])
    ax.set_xticks([])
    if title:
        ax.set_title(title)
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
