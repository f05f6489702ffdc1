"""Settings that several estimators resolve against the data: the network and the normalisation.

A neutral home for them, so that the condenser, the selectors and the
classifier share one rule each without importing one another.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .data import Normalization, channel_range, channel_stats
from .networks import check_model
from .validation import PreparedData

__all__ = ["resolve_model", "resolve_normalization"]


def resolve_normalization(normalization, data: PreparedData) -> Normalization:
    """The statistics a ``normalization`` setting names for ``data``.

    ``"auto"``: per-channel statistics of the real data (per feature for flat
    features); None: the identity; ``(mean, std)``, a ``{"mean", "std"}`` dict
    or a :class:`~gradmatch.data.Normalization`: those values, each a scalar
    or one value per channel.
    """
    channels = data.images.shape[1]
    if isinstance(normalization, str):
        if normalization != "auto":
            raise ValueError(f"unknown normalization {normalization!r}: use 'auto', None or (mean, std)")
        return channel_stats(data.images)
    if normalization is None:
        return Normalization((0.0,) * channels, (1.0,) * channels)
    if isinstance(normalization, Mapping):
        normalization = (normalization["mean"], normalization["std"])
    elif isinstance(normalization, Normalization):
        normalization = (normalization.mean, normalization.std)
    mean, std = _per_channel(normalization, channels)
    # The normalised data must stay finite in float32, where the networks compute.
    lo, hi = channel_range(data.images)
    reach = np.maximum(np.abs(lo - mean), np.abs(hi - mean)) / std
    if not np.all(reach < np.finfo(np.float32).max / 1e3):
        raise ValueError(
            f"normalization (mean {mean.tolist()}, std {std.tolist()}) scales the data beyond "
            "float32's range; use the data's own statistics ('auto') or a larger std"
        )
    return Normalization(tuple(mean.tolist()), tuple(std.tolist()))


def _per_channel(pair, channels: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        mean, std = pair
        mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (channels,))
        std = np.broadcast_to(np.asarray(std, dtype=np.float64), (channels,))
    except (TypeError, ValueError):
        raise ValueError(
            f"normalization must be 'auto', None or a pair (mean, std) of scalars or length-{channels} "
            f"sequences, got {pair!r}"
        ) from None
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError("normalization needs finite means and finite, positive stds")
    return mean, std


def resolve_model(model, image_shape) -> object:
    """The network for the data: ``"auto"`` is the ConvNet for images, the MLP for flat features."""
    if isinstance(model, str) and model == "auto":
        return "convnet" if image_shape is not None else "mlp"
    check_model(model)
    if isinstance(model, str) and model != "mlp" and image_shape is None:
        raise ValueError(
            f"model={model!r} needs images: pass X as (n, H, W) or (n, C, H, W), or flat X with "
            "input_shape=(C, H, W)"
        )
    return model
