"""What the condenser and the selectors share: the fit / transform / fit_resample contract."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags
from sklearn.utils.validation import check_is_fitted

from .validation import (
    PreparedData,
    check_ipc,
    ipc_per_class,
    plain_label,
    prepare_training_data,
    to_output_labels,
    wrap_output,
)

__all__ = ["BaseReducer"]


class BaseReducer(BaseEstimator):
    """Base class of estimators that replace a training set by ``ipc`` samples per class.

    ``ipc`` is an integer, or a dict ``{class: count}`` naming every class.

    Subclasses implement :meth:`_fit` and set ``X_syn_`` (numpy, in the caller's
    layout and scale) and ``_syn_codes`` (encoded labels of ``X_syn_``).
    """

    #: Whether too small a class is an error (selectors) or a warning (condenser).
    _small_class_is_error = True

    def _validate_data(self, X, y) -> PreparedData:
        check_ipc(self.ipc)
        data = prepare_training_data(X, y, getattr(self, "input_shape", None),
                                     in_memory=getattr(self, "in_memory", True))
        wanted = ipc_per_class(self.ipc, data.classes)
        per_class = isinstance(self.ipc, Mapping)
        if not per_class and wanted[0] > len(data.labels):
            raise ValueError(
                f"ipc={self.ipc} asks for more samples per class than the {len(data.labels)} training "
                "samples there are in all"
            )
        counts = data.class_counts
        small = [(data.classes[c], int(n), int(k)) for c, (n, k) in enumerate(zip(counts, wanted)) if n < k]
        if small:
            listing = ", ".join(f"{plain_label(label)!r} has {n}" + (f" (ipc {k})" if per_class else "")
                                for label, n, k in small[:10])
            asked = "its ipc" if per_class else f"ipc={self.ipc}"
            if self._small_class_is_error:
                raise ValueError(
                    f"{type(self).__name__} cannot pick {asked} distinct samples from every "
                    f"class: {listing}. Lower ipc or add samples."
                )
            fewer = "fewer real samples than their ipc" if per_class else f"fewer than {asked} real samples"
            warnings.warn(
                f"some classes have {fewer} ({listing}); their real "
                "batches are the whole class",
                UserWarning,
                stacklevel=4,  # the caller of fit / fit_resample
            )
        return data

    def _record_fit(self, data: PreparedData) -> None:
        self.classes_ = data.classes
        self.n_features_in_ = int(np.prod(data.layout.sample_shape))
        self.input_shape_ = data.layout.image_shape
        self._layout = data.layout

    def fit(self, X, y=None):
        """Fit on ``(X, y)``; see the class docstring. Returns self."""
        data = self._validate_data(X, y)
        self._record_fit(data)
        self._fit(data)
        self.y_syn_ = to_output_labels(self._syn_codes, self.classes_)
        return self

    def _fit(self, data: PreparedData) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self):
        """Return the reduced set ``(X_syn, y_syn)``.

        It takes no data: this is not a per-row transform. ``X_syn`` has the
        caller's layout (flat, grey or channel-first images) and value scale;
        float input keeps its dtype, integer input gives float32. numpy input
        gives numpy, torch input gives CPU torch tensors.
        """
        check_is_fitted(self, "X_syn_")
        return wrap_output(self.X_syn_.copy(), self.y_syn_.copy(), self._layout)

    def as_tensor_dataset(self):
        """The set as a ``torch.utils.data.TensorDataset`` of (float32 images, int64 label codes).

        Images are in the input's value scale, shaped ``(n, C, H, W)`` when the
        estimator saw images (``(n, d)`` for flat features); the codes index
        ``classes_``. Normalise with ``normalization_`` before training on it.
        """
        import torch

        check_is_fitted(self, "X_syn_")
        shape = self.input_shape_ if self.input_shape_ is not None else self._layout.sample_shape
        images = torch.as_tensor(np.asarray(self.X_syn_, dtype=np.float32)).reshape((-1,) + tuple(shape))
        codes = torch.as_tensor(np.searchsorted(self.classes_, self.y_syn_), dtype=torch.long)
        return torch.utils.data.TensorDataset(images, codes)

    def fit_resample(self, X, y=None):
        """Fit, then return :meth:`transform`'s ``(X_syn, y_syn)``."""
        return self.fit(X, y).transform()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        # transform() exists, so scikit-learn's checks treat this as a transformer;
        # it returns float data in the input's own float dtype.
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        return tags
