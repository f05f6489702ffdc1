"""Pipeline wrappers: train an estimator on a condensed set, or resample inside imbalanced-learn.

The reducers (:class:`~gradmatch.GradientMatchingCondenser`,
:class:`~gradmatch.Herding`, :class:`~gradmatch.RandomCoreset`) have both a
data-free ``transform()`` and ``fit_resample``, so neither scikit-learn's
``Pipeline`` (which would call ``transform(X)`` on every row) nor
imbalanced-learn's (which refuses a step with both methods) can hold them
directly. Two small wrappers fill the gap:

- :class:`CondensedEstimator` is a classifier: it fits the reducer on the
  training data, trains a downstream estimator on the reduced set, and
  predicts with it. It is the last step of a scikit-learn ``Pipeline`` and
  works in ``GridSearchCV`` (``reducer__ipc``, ``estimator__epochs``, ...)
  and ``cross_val_score``.
- :class:`ResampleAdapter` exposes only ``fit_resample``, which makes a
  reducer a sampler step of ``imblearn.pipeline.Pipeline``.

imbalanced-learn is optional: nothing here imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import InputTags, Tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .parameters import HasMethods
from .validation import pandas_kind

__all__ = ["CondensedEstimator", "ResampleAdapter"]


def _default_estimator():
    from .classifier import NetworkClassifier

    return NetworkClassifier()


def _estimator_has(attr: str):
    """``available_if`` check: the fitted estimator (or, before fit, the given one) has ``attr``."""

    def check(self) -> bool:
        if hasattr(self, "estimator_"):
            return hasattr(self.estimator_, attr)
        estimator = self.estimator if self.estimator is not None else _default_estimator()
        return hasattr(estimator, attr)

    return check


class CondensedEstimator(ClassifierMixin, BaseEstimator):
    """Reduce the training set with ``reducer``, then fit ``estimator`` on the reduced set.

    ``fit(X, y)`` fits a clone of ``reducer`` on ``(X, y)``, takes the set it
    returns (``fit_resample``, the same as its ``transform()``: ``ipc``
    samples per class) and fits a clone of ``estimator`` on that set alone.
    Predictions come from the fitted estimator. This is "condense, then
    train" as one scikit-learn classifier: the last step of a ``Pipeline``,
    searchable with ``GridSearchCV`` over ``reducer__ipc``,
    ``reducer__iterations``, ``estimator__epochs`` and so on, and scored by
    ``cross_val_score`` (stratified folds, as for any classifier).

    Normalisation: a network trained on a reduced set must be normalised with
    the *real* data's statistics, never the small set's own. When
    ``estimator`` has a ``normalization`` parameter set to ``"auto"`` (as
    :class:`~gradmatch.classifier.NetworkClassifier` has by default), the
    fitted clone gets the reducer's ``normalization_`` (the per-channel, or
    per-feature, statistics of the real training data) instead. Any other
    value of ``estimator.normalization`` is used as given. Give the estimator
    the same ``input_shape`` as the reducer (or none) so that both read the
    statistics per the same channels; a reducer with ``input_shape=(1, 8, 8)``
    hands one mean and std, which a flat-feature estimator broadcasts to every
    feature.

    Parameters
    ----------
    reducer : estimator with ``fit_resample(X, y)``
        :class:`~gradmatch.GradientMatchingCondenser`,
        :class:`~gradmatch.Herding`, :class:`~gradmatch.RandomCoreset`, or any
        object whose ``fit_resample`` returns the reduced ``(X, y)`` (an
        imbalanced-learn sampler works too). It is cloned, never modified.
    estimator : estimator, default=None
        Trained on the reduced set; cloned, never modified. None means
        ``NetworkClassifier()``: DC's evaluation recipe (a network trained
        from scratch for 300 epochs). Any scikit-learn classifier works
        (``KNeighborsClassifier``, ``LogisticRegression``, ...).

    Attributes
    ----------
    reducer_ : estimator
        The fitted clone of ``reducer``: ``reducer_.X_syn_`` and
        ``reducer_.y_syn_`` are the set the estimator was trained on.
    estimator_ : estimator
        The fitted clone of ``estimator``.
    classes_ : ndarray
        The class labels (those of the training data).
    n_features_in_ : int
        Values per input sample.

    See Also
    --------
    ResampleAdapter : a reducer as a sampler step of imbalanced-learn's Pipeline.
    gradmatch.evaluation.evaluate_reducer : the literature's protocol (many networks per set).

    Examples
    --------
    Condense digits to two images per class, train a small network on those 20
    images with the real data's normalisation, and predict:

    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import GradientMatchingCondenser
    >>> from gradmatch.classifier import NetworkClassifier
    >>> from gradmatch.pipeline import CondensedEstimator
    >>> X, y = load_digits(return_X_y=True)
    >>> model = CondensedEstimator(
    ...     GradientMatchingCondenser(ipc=2, iterations=2, matching_steps=1, model="mlp",
    ...                               random_state=0),
    ...     NetworkClassifier(epochs=20, random_state=0))
    >>> model.fit(X, y).predict(X[:3]).shape
    (3,)
    >>> model.reducer_.X_syn_.shape
    (20, 64)
    >>> model.estimator_.normalization_ == model.reducer_.normalization_
    True

    Choose ``ipc`` by cross-validation, here with a random coreset and a
    nearest-neighbour classifier:

    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from gradmatch import RandomCoreset
    >>> search = GridSearchCV(
    ...     CondensedEstimator(RandomCoreset(random_state=0), KNeighborsClassifier(1)),
    ...     {"reducer__ipc": [1, 20]}, cv=3).fit(X, y)
    >>> search.best_params_
    {'reducer__ipc': 20}
    """

    _parameter_constraints: dict = {
        "reducer": [HasMethods(["fit_resample"])],
        "estimator": [HasMethods(["fit"]), None],
    }

    def __init__(self, reducer, estimator=None):
        self.reducer = reducer
        self.estimator = estimator

    def fit(self, X, y):
        """Fit the reducer on ``(X, y)``, then the estimator on the reduced set.

        Parameters
        ----------
        X : array-like, torch tensor or torch Dataset
            Training data, in any form the reducer accepts.
        y : array-like
            Class labels.

        Returns
        -------
        self : CondensedEstimator
        """
        self._validate_params()
        reducer = clone(self.reducer)
        X_red, y_red = reducer.fit_resample(X, y)
        estimator = clone(self.estimator if self.estimator is not None else _default_estimator())
        self._hand_off_normalization(reducer, estimator)
        estimator.fit(X_red, y_red)
        self.reducer_ = reducer
        self.estimator_ = estimator
        classes = getattr(estimator, "classes_", None)
        self.classes_ = classes if classes is not None else getattr(reducer, "classes_", None)
        n_features = getattr(reducer, "n_features_in_", None)
        if n_features is None:
            n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None:
            self.n_features_in_ = n_features
        return self

    @staticmethod
    def _hand_off_normalization(reducer, estimator) -> None:
        """Give ``estimator`` the real data's statistics where it would compute its own."""
        try:
            setting = estimator.get_params(deep=False).get("normalization", None)
        except AttributeError:  # not a scikit-learn estimator: leave it alone
            return
        stats = getattr(reducer, "normalization_", None)
        if isinstance(setting, str) and setting == "auto" and stats is not None:
            estimator.set_params(normalization={"mean": list(stats["mean"]), "std": list(stats["std"])})

    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Class labels predicted by the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the fitted estimator, columns in ``classes_`` order."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision values (for a NetworkClassifier: logits) from the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    @available_if(_estimator_has("score"))
    def score(self, X, y, sample_weight=None):
        """The fitted estimator's ``score`` on ``(X, y)`` (accuracy for a classifier)."""
        check_is_fitted(self)
        if sample_weight is None:
            return self.estimator_.score(X, y)
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        return tags


# Tags as imbalanced-learn's own samplers declare them (its ``Tags`` adds ``sampler_tags``
# and ``input_tags.dataframe`` to scikit-learn's), without importing imbalanced-learn.
@dataclass(slots=True)
class _SamplerInputTags(InputTags):
    dataframe: bool = False


@dataclass(slots=True)
class _SamplerTags:
    sample_indices: bool = False


@dataclass(slots=True)
class _Tags(Tags):
    sampler_tags: _SamplerTags | None = None


def _feature_names(X):
    """A DataFrame's column names when all are strings (scikit-learn's rule), else None."""
    if pandas_kind(X) != "dataframe":
        return None
    names = np.asarray(X.columns, dtype=object)
    return names if len(names) and all(isinstance(name, str) for name in names) else None


class ResampleAdapter(BaseEstimator):
    """A reducer as a sampler step: only ``fit_resample``, for imbalanced-learn's Pipeline.

    ``imblearn.pipeline.Pipeline`` runs a step's ``fit_resample`` while the
    pipeline is fitted and skips the step when it predicts, but it refuses a
    step that has both ``fit_resample`` and ``transform``, as the gradmatch
    reducers do. This adapter hides everything but ``fit_resample`` (plus
    ``get_params`` / ``set_params`` and ``get_feature_names_out``), so the
    step replaces the training data by the reduced set before the next steps
    are fitted. It declares itself a sampler (``_estimator_type = "sampler"``
    and imbalanced-learn's sampler tags), as imbalanced-learn's own samplers
    do, and passes imbalanced-learn's sampler checks
    (``imblearn.utils.estimator_checks``) except those that need sparse input.

    imbalanced-learn is optional (``pip install imbalanced-learn``); the
    adapter needs nothing from it.

    Parameters
    ----------
    reducer : estimator with ``fit_resample(X, y)``
        :class:`~gradmatch.GradientMatchingCondenser`,
        :class:`~gradmatch.Herding` or :class:`~gradmatch.RandomCoreset`. It is
        cloned by each ``fit_resample``, never modified.

    Attributes
    ----------
    reducer_ : estimator
        The clone fitted by the last ``fit_resample`` (``reducer_.X_syn_``,
        ``reducer_.normalization_``, ``reducer_.sample_indices_``, ...).
    sampling_strategy_ : dict
        ``{class label: number of samples in the reduced set}``, a copy of the
        fitted reducer's. For a one-vs-all y the labels are its column indices.
    n_features_in_ : int
        Values per input sample.
    feature_names_in_ : ndarray of str
        The column names of X, when X was a pandas DataFrame whose column
        names are all strings.

    See Also
    --------
    CondensedEstimator : reduce, then fit an estimator, in scikit-learn's Pipeline.
    imblearn.pipeline.Pipeline : the pipeline that calls ``fit_resample``.

    Notes
    -----
    Inputs and outputs follow imbalanced-learn's samplers (the reducer does
    the work, so its own ``fit_resample`` and ``transform()`` do the same):

    - the reduced set comes back in the containers it came in: numpy gives
      numpy, torch gives CPU torch tensors, a Python list gives a list, a
      pandas DataFrame or Series gives one with the same columns or name;
    - a one-vs-all y (an ``(n, k)`` indicator matrix with exactly one 1 per
      row) is read as the labels ``y.argmax(axis=1)`` and the reduced labels
      come back as an ``(m, k)`` indicator matrix of y's dtype; an indicator
      matrix with any other row (multilabel) is refused with a ValueError.

    A network trained by a later step sees only the reduced set; its
    normalisation then comes from that small set unless given. Pass the real
    data's statistics to it (e.g. ``NetworkClassifier(normalization=...)``)
    or use :class:`CondensedEstimator`, which does so itself.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from gradmatch import RandomCoreset
    >>> from gradmatch.pipeline import ResampleAdapter
    >>> X, y = load_digits(return_X_y=True)
    >>> sampler = ResampleAdapter(RandomCoreset(ipc=3, random_state=0))
    >>> X_red, y_red = sampler.fit_resample(X, y)
    >>> X_red.shape
    (30, 64)
    >>> sampler.sampling_strategy_[0]
    3
    >>> hasattr(sampler, "transform")
    False

    One-vs-all labels in, one-vs-all labels out:

    >>> import numpy as np
    >>> Y = np.eye(10, dtype=np.int64)[y]
    >>> X_red, Y_red = sampler.fit_resample(X, Y)
    >>> Y_red.shape, Y_red.dtype.name
    ((30, 10), 'int64')

    In imbalanced-learn's Pipeline (the classifier is fitted on the 50
    selected samples, and predicts on any data):

    >>> from imblearn.pipeline import make_pipeline  # doctest: +SKIP
    >>> from sklearn.linear_model import LogisticRegression
    >>> pipe = make_pipeline(  # doctest: +SKIP
    ...     ResampleAdapter(RandomCoreset(ipc=5, random_state=0)),
    ...     LogisticRegression(max_iter=1000))
    >>> pipe.fit(X, y).predict(X[:3]).shape  # doctest: +SKIP
    (3,)
    """

    #: What imbalanced-learn's ``is_sampler`` looks for (its samplers set the same).
    _estimator_type = "sampler"

    _parameter_constraints: dict = {"reducer": [HasMethods(["fit_resample"])]}

    def __init__(self, reducer):
        self.reducer = reducer

    def fit_resample(self, X, y):
        """Fit a clone of the reducer on ``(X, y)`` and return the reduced ``(X_red, y_red)``.

        Parameters
        ----------
        X : array-like, torch tensor or torch Dataset
            Training data, in any form the reducer accepts.
        y : array-like of shape (n_samples,) or (n_samples, k)
            Class labels, or a one-vs-all indicator matrix (one 1 per row).

        Returns
        -------
        X_red : ndarray, torch tensor, list or DataFrame
            The reducer's set: ``ipc`` samples per class, in X's layout and
            container (numpy in, numpy out; a list in, a list out).
        y_red : ndarray, torch tensor, list or Series
            Its labels, in y's container; an ``(m, k)`` indicator matrix when
            y was one.
        """
        self._validate_params()
        reducer = clone(self.reducer)
        X_red, y_red = reducer.fit_resample(X, y)
        self.reducer_ = reducer
        strategy = getattr(reducer, "sampling_strategy_", None)
        if strategy is not None:
            self.sampling_strategy_ = dict(strategy)
        n_features = getattr(reducer, "n_features_in_", None)
        if n_features is not None:
            self.n_features_in_ = n_features
        names = _feature_names(X)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X_red, y_red

    def get_feature_names_out(self, input_features=None):
        """The names of the reduced set's features: those of the input, one to one.

        As imbalanced-learn's samplers (scikit-learn's ``OneToOneFeatureMixin``),
        without asking for a ``fit`` method, which the adapter does not have.

        Parameters
        ----------
        input_features : array-like of str, default=None
            The input's feature names. None gives ``feature_names_in_`` when X
            was a DataFrame with string column names, else ``x0``,
            ``x1``, ... (one per value of a sample).

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit_resample' with "
                "appropriate arguments before using this estimator."
            )
        known = getattr(self, "feature_names_in_", None)
        if input_features is None:
            if known is not None:
                return known.copy()
            return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        names = np.asarray(input_features, dtype=object)
        if known is not None and not np.array_equal(known, names):
            raise ValueError("input_features is not equal to feature_names_in_")
        if len(names) != self.n_features_in_:
            raise ValueError(
                f"input_features should have length equal to number of features "
                f"({self.n_features_in_}), got {len(names)}"
            )
        return names

    def __sklearn_tags__(self):
        base = super().__sklearn_tags__()
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        fields["input_tags"] = _SamplerInputTags(
            **{f.name: getattr(base.input_tags, f.name) for f in dataclasses.fields(base.input_tags)},
            dataframe=True,
        )
        tags = _Tags(**fields, sampler_tags=_SamplerTags(sample_indices=False))
        tags.estimator_type = "sampler"
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.transformer_tags = None
        return tags
