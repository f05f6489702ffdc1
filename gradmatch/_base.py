"""What the condenser and the selectors share: the fit / transform / fit_resample contract.

``fit`` and ``fit_resample`` are one template (as imbalanced-learn's
``SamplerMixin.fit_resample``): check the declared parameters, resolve the
settings that need no data, validate the data, check the settings against the
data, then hand over to the subclass's ``_fit_resample``. Nothing of the
estimator changes before the subclass's work is done, so a call that fails
validation leaves a fitted estimator exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags
from sklearn.utils.validation import check_is_fitted

from .parameters import ClassCounts, Count, ImageShape
from .validation import (
    PreparedData,
    ipc_per_class,
    plain_label,
    prepare_training_data,
    to_output_labels,
    warn_user,
    wrap_output,
)

__all__ = ["BaseReducer"]


def _transform_takes_no_data(name: str, args: tuple, kwargs: dict) -> str:
    given = [type(a).__name__ for a in args] + [f"{k}=..." for k in kwargs]
    return (
        f"{name}.transform() takes no data and returns the learned set (X_syn, y_syn); it was "
        f"called with {', '.join(given)}. It is not a per-row transform as in scikit-learn: to fit "
        "and get the set in one call use fit_resample(X, y), or call fit(X, y) and then transform()"
    )


def _feature_names(layout) -> np.ndarray | None:
    """``feature_names_in_`` as scikit-learn sets it: a DataFrame's column names when all are strings.

    Nothing of pandas is imported: the column names were read when X was validated.
    """
    if layout.kind != "dataframe" or layout.frame is None:
        return None
    columns = layout.frame[0]
    if not columns or not all(isinstance(c, str) for c in columns):
        return None
    return np.asarray(columns, dtype=object)


class BaseReducer(BaseEstimator):
    """Base class of estimators that replace a training set by ``ipc`` samples per class.

    ``ipc`` is an integer, or a dict ``{class: count}`` naming every class.
    Fitted on a pandas DataFrame whose column names are all strings, a
    reducer also has ``feature_names_in_`` (an object array of the names), as
    scikit-learn's estimators do.

    Subclasses declare ``_parameter_constraints`` and implement
    :meth:`_fit_resample`, which returns the fitted attributes as a dict
    (``X_syn_`` in the caller's layout and scale, ``_syn_codes`` the encoded
    labels of its rows, and any others); they may override
    :meth:`_resolve_settings` (rules that need no data) and
    :meth:`_check_params_vs_input` (rules that do).
    """

    _parameter_constraints: dict = {
        "ipc": [Count(1), ClassCounts()],
        "input_shape": [ImageShape(), None],
    }

    #: Whether too small a class is an error (selectors) or a warning (condenser).
    _small_class_is_error = True

    # ------------------------------------------------------------------ template
    def fit(self, X, y=None):
        """Fit on ``(X, y)``; see the class docstring. Returns self."""
        self._fit_template(X, y)
        return self

    def fit_resample(self, X, y=None):
        """Fit, then return :meth:`transform`'s ``(X_syn, y_syn)``."""
        self._fit_template(X, y)
        return self.transform()

    def _fit_template(self, X, y) -> None:
        self._validate_params()  # the declared constraints, before anything else
        plan = self._resolve_settings()
        data = self._prepare_data(X, y)
        plan = self._check_params_vs_input(data, plan)
        self._set_fitted(data, self._fit_resample(data, plan))

    def _resolve_settings(self) -> dict:
        """Settings that need no data, resolved once per fit (override to add)."""
        return {}

    def _prepare_data(self, X, y) -> PreparedData:
        return prepare_training_data(X, y, getattr(self, "input_shape", None),
                                     in_memory=getattr(self, "in_memory", True))

    def _check_params_vs_input(self, data: PreparedData, plan: dict) -> dict:
        """The rules that need the data: here, ``ipc`` against the classes and their sizes."""
        wanted = ipc_per_class(self.ipc, data.classes)
        if not isinstance(self.ipc, Mapping) and wanted[0] > len(data.labels):
            raise ValueError(
                f"ipc={self.ipc} asks for more samples per class than the {len(data.labels)} training "
                "samples there are in all"
            )
        self._check_class_sizes(data, wanted)
        return {**plan, "ipc": wanted}

    def _check_class_sizes(self, data: PreparedData, wanted: np.ndarray) -> None:
        per_class = isinstance(self.ipc, Mapping)
        small = [(data.classes[c], int(n), int(k))
                 for c, (n, k) in enumerate(zip(data.class_counts, wanted)) if n < k]
        if not small:
            return
        listing = ", ".join(f"{plain_label(label)!r} has {n}" + (f" (ipc {k})" if per_class else "")
                            for label, n, k in small[:10])
        asked = "its ipc" if per_class else f"ipc={self.ipc}"
        if self._small_class_is_error:
            raise ValueError(
                f"{type(self).__name__} cannot pick {asked} distinct samples from every "
                f"class: {listing}. Lower ipc or add samples."
            )
        fewer = "fewer real samples than their ipc" if per_class else f"fewer than {asked} real samples"
        label, n, k = small[0]
        if per_class:
            plain = (f"ipc asks for {k} synthetic images of class {plain_label(label)!r}, but that class "
                     f"has {n} real images")
            fix = "lower those classes' ipc to at most their sizes"
        else:
            plain = (f"ipc={self.ipc} asks for {k} synthetic images per class ({int(wanted.sum())} in all, "
                     f"from {len(data.labels)} real images), but class {plain_label(label)!r} has {n} real "
                     "images")
            fix = f"ipc <= {min(size for _, size, _ in small)} keeps every synthetic image backed by real ones"
        warn_user(
            f"{plain}; some classes have {fewer} ({listing}); their real batches are the whole class. "
            "The fit runs, but more synthetic than real images of a class seldom helps, and every "
            "iteration costs more as ipc grows (see docs/performance.md for what a run costs): " + fix
        )

    def _fit_resample(self, data: PreparedData, plan: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_fitted(self, data: PreparedData, fitted: dict) -> None:
        """Set every fitted attribute at once: the data's description and the subclass's result."""
        self.classes_ = data.classes
        self.n_features_in_ = int(np.prod(data.layout.sample_shape))
        self.input_shape_ = data.layout.image_shape
        self._layout = data.layout
        names = _feature_names(data.layout)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):  # a refit on data without column names
            del self.feature_names_in_
        for name, value in fitted.items():
            setattr(self, name, value)
        self.y_syn_ = to_output_labels(self._syn_codes, self.classes_)
        counts = np.bincount(self._syn_codes, minlength=len(self.classes_))
        self.sampling_strategy_ = {plain_label(c): int(n) for c, n in zip(self.classes_, counts)}

    # ------------------------------------------------------------------ output
    def transform(self, *args, **kwargs):
        """Return the reduced set ``(X_syn, y_syn)``.

        It takes no data: this is not a per-row transform. ``X_syn`` has the
        caller's layout (flat, grey or channel-first images) and value scale;
        float input keeps its dtype, integer input gives float32. numpy input
        gives numpy, torch input gives CPU torch tensors.

        Raises
        ------
        TypeError
            If called with data (``transform(X)``, a scikit-learn habit): the
            message says to call ``transform()`` or ``fit_resample(X, y)``.
        """
        if args or kwargs:
            raise TypeError(_transform_takes_no_data(type(self).__name__, args, kwargs))
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        # transform() exists, so scikit-learn's checks treat this as a transformer;
        # it returns float data in the input's own float dtype.
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        return tags
