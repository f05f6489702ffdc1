"""Pictures: a synthetic set as an image grid, and accuracies of methods as a bar chart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_image_grid", "plot_accuracies", "save_figure"]


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


def save_figure(fig, path) -> None:
    """Write ``fig`` to ``path`` atomically (format from the suffix, PNG by default)."""
    import io
    from pathlib import Path

    from .atomic import write_bytes_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=120, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


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
        save_figure(fig, path)
    return fig


def _accuracy_list(name, values) -> np.ndarray:
    """The accuracies of one method as a 1-D float array of fractions in [0, 1]."""
    values = getattr(values, "accuracies", values)  # EvaluationResult / ProtocolResult
    try:
        acc = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"results[{name!r}] must be a sequence of accuracies, got {type(values).__name__}") from None
    if acc.size == 0:
        raise ValueError(f"results[{name!r}] holds no accuracies")
    if not np.all(np.isfinite(acc)) or acc.min() < 0 or acc.max() > 1:
        raise ValueError(f"results[{name!r}] must hold fractions in [0, 1] (0.875 for 87.5 %), got {acc.tolist()}")
    return acc


def plot_accuracies(results, *, ax=None, title=None, path=None, reference=None):
    """Bar chart of the mean test accuracy of each method, with its spread.

    One bar per method, in the order of ``results``, at the mean accuracy in
    percent with an error bar of one standard deviation (over all its
    networks, as :class:`gradmatch.evaluation.EvaluationResult` computes it)
    and the mean written above it.

    Parameters
    ----------
    results : mapping of str to sequence of float
        Method name -> accuracies as fractions in [0, 1] (for instance
        ``ProtocolResult.accuracies``; a result object with an
        ``accuracies`` attribute works too). Plotted in percent.
    ax : matplotlib Axes, optional
        Draw into it; a new figure otherwise.
    title : str, optional
    path : str or Path, optional
        Save the figure there (PNG).
    reference : mapping of str to float, optional
        Horizontal dashed lines, label -> accuracy as a fraction like
        ``results`` (the paper's 70.5 % is ``0.705``), listed in a legend.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``results`` is empty, a method has no accuracies, or a value lies
        outside [0, 1] (percentages given by mistake, for instance).

    Examples
    --------
    >>> import os, tempfile
    >>> from gradmatch.plotting import plot_accuracies
    >>> path = os.path.join(tempfile.mkdtemp(), "accuracies.png")
    >>> fig = plot_accuracies({"random": [0.58, 0.63], "md": [0.87, 0.88, 0.86]},
    ...                       reference={"paper, DC": 0.705}, title="digits, ipc 1", path=path)
    >>> len(fig.axes[0].patches), os.path.getsize(path) > 0
    (2, True)
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    import matplotlib

    if path is not None and ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not hasattr(results, "items") or len(results) == 0:
        raise ValueError("results must be a non-empty mapping of method name -> accuracies")
    names = [str(name) for name in results]
    accs = [_accuracy_list(name, values) for name, values in results.items()]
    means = np.array([100 * a.mean() for a in accs])
    stds = np.array([100 * a.std() for a in accs])
    refs = {}
    for label, value in (reference or {}).items():
        value = float(value)
        if not (np.isfinite(value) and 0 <= value <= 1):
            raise ValueError(f"reference[{label!r}] must be a fraction in [0, 1] (0.705 for 70.5 %), got {value}")
        refs[str(label)] = 100 * value

    if ax is None:
        fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(names) + 1.5), 3.8))
    else:
        fig = ax.figure
    x = np.arange(len(names))
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    ax.bar(x, means, yerr=stds, capsize=4, color=colors[0], alpha=0.85, error_kw={"elinewidth": 1})
    top = max([float(np.max(means + stds))] + list(refs.values()))
    ymax = min(100.0, top) + 8.0
    for xi, m, s in zip(x, means, stds):
        ax.text(xi, m + s + 0.01 * ymax, f"{m:.1f}", ha="center", va="bottom", fontsize=9)
    for k, (label, value) in enumerate(refs.items()):
        ax.axhline(value, linestyle="--", linewidth=1, color=colors[(k + 1) % len(colors)],
                   label=f"{label}: {value:.1f}")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30 if max(map(len, names)) > 8 else 0,
                       ha="right" if max(map(len, names)) > 8 else "center")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, ymax)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if refs:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    if title:
        ax.set_title(title)
    if path is not None:
        save_figure(fig, path)
    return fig
