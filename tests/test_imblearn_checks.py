"""imbalanced-learn's sampler conventions: its own checks on ResampleAdapter, and the containers.

The reducers follow imbalanced-learn's ``SamplerMixin.fit_resample`` and its
``ArraysTransformer`` (gradmatch/validation.py): a Python list in gives a list
out, a one-vs-all label matrix (``check_target_type(..., indicate_one_vs_all=True)``)
gives one back, a multilabel y is refused, and pandas objects come back as
pandas objects when pandas is installed. ``fit_resample`` and the data-free
``transform()`` of every reducer do this, and ``ResampleAdapter`` returns what
its reducer returns.

imbalanced-learn's checks (``imblearn.utils.estimator_checks``) run on
``ResampleAdapter`` around each reducer. Every check that applies to a sampler
without a ``sampling_strategy`` parameter must pass. Those that cannot apply
are listed in :data:`CANNOT_APPLY` under one shared explanation, and the tests
at the end of the section prove that the list hides nothing else:

- ``check_samplers_sampling_strategy_fit_resample`` sets ``sampling_strategy``
  on imbalanced-learn's own under-, over- and cleaning samplers only; on any
  other sampler it does nothing at all (proven: it calls no method of the
  adapter), so it is skipped rather than counted as a pass. The adapter's
  budget is the reducer's ``ipc``.
- ``check_samplers_pandas_sparse`` passes a DataFrame of sparse columns. The
  reducers compute on dense tensors and refuse sparse input; the check is an
  expected failure with that error, and passes once the input is made dense
  at the boundary (proven, where pandas is installed).

The checks that the tags turn off (sparse, string and NaN input) are run too,
to prove that the tags say the truth: each fails with the reducer's refusal.
Settings are tiny (one condensation iteration, pixel herding); the whole file
takes a few seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from unittest import SkipTest

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import label_binarize

from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser, Herding, RandomCoreset
from gradmatch.pipeline import ResampleAdapter

pytestmark = pytest.mark.usefixtures("torch_single_thread")

try:
    from imblearn.utils import estimator_checks as imblearn_checks
except ImportError:  # imbalanced-learn is optional: its checks are then skipped
    imblearn_checks = None


def reducers():
    return [
        GradientMatchingCondenser(iterations=1, matching_steps=1, batch_real=8, model="mlp", device="cpu",
                                  random_state=0),
        DistributionMatchingCondenser(iterations=2, batch_real=8, augment=None, model="mlp", device="cpu",
                                      random_state=0),
        RandomCoreset(random_state=0),
        Herding(features="pixels"),
    ]


def adapters():
    return [ResampleAdapter(reducer) for reducer in reducers()]


def reducer_ids(reducer):
    return type(reducer).__name__


# ===================================================================== imbalanced-learn's checks
CANNOT_APPLY_WHY = (
    "ResampleAdapter has no sampling_strategy parameter (its budget is the reducer's ipc) and the "
    "reducers compute on dense tensors; this check sets sampling_strategy, or passes sparse input"
)

#: Every imbalanced-learn sampler check that cannot apply: name -> (what happens, why).
CANNOT_APPLY = {
    # Sets sampling_strategy on imbalanced-learn's own sampler classes only; does nothing otherwise.
    "check_samplers_sampling_strategy_fit_resample": ("skip", "sets sampling_strategy"),
    # A DataFrame of sparse columns: refused as sparse input (scikit-learn's check_array).
    "check_samplers_pandas_sparse": ("fail", "Sparse data was passed for X, but dense data is required"),
}


def check_name(check) -> str:
    while hasattr(check, "__wrapped__"):
        check = check.__wrapped__
    return getattr(check, "func", check).__name__


def _imblearn_params():
    if imblearn_checks is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="imbalanced-learn is not installed"))]
    return [
        pytest.param(estimator, check, id=f"{type(estimator.reducer).__name__}-{check_name(check)}")
        for adapter in adapters()
        for estimator, check in imblearn_checks.estimator_checks_generator(adapter)
    ]


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::sklearn.exceptions.DataConversionWarning")
@pytest.mark.parametrize("estimator, check", _imblearn_params())
def test_imblearn_sampler_checks(estimator, check):
    name = check_name(check)
    if name not in CANNOT_APPLY:
        check(estimator)
        return
    what, needle = CANNOT_APPLY[name]
    if what == "skip":
        pytest.skip(f"{CANNOT_APPLY_WHY} ({needle})")
    try:
        check(estimator)
    except SkipTest:  # e.g. pandas is not installed
        raise
    except Exception as err:  # the check's failure, whatever its type, is inspected
        assert needle in str(err), f"{name} failed for another reason than the listed one: {err!r}"
        pytest.xfail(f"{CANNOT_APPLY_WHY}: {err}")
    pytest.fail(f"{name} passed: it is listed as an expected failure, remove it from CANNOT_APPLY")


# ------------------------------------------------------ the list hides nothing else
needs_imblearn = pytest.mark.skipif(imblearn_checks is None, reason="imbalanced-learn is not installed")


@needs_imblearn
@pytest.mark.parametrize("adapter", adapters(), ids=lambda a: type(a.reducer).__name__)
def test_every_listed_check_is_one_imblearn_runs(adapter):
    names = {check_name(check) for _, check in imblearn_checks.estimator_checks_generator(adapter)}
    assert set(CANNOT_APPLY) <= names
    # ... and the checks that matter for these conventions are among those run.
    assert {"check_samplers_list", "check_samplers_multiclass_ova", "check_target_type",
            "check_samplers_fit", "check_samplers_preserve_dtype"} <= names - set(CANNOT_APPLY)


class _Spy(ResampleAdapter):
    """Records every public method called and every parameter set."""

    calls: list = []

    def fit_resample(self, X, y):
        self.calls.append("fit_resample")
        return super().fit_resample(X, y)

    def set_params(self, **params):
        self.calls.append(("set_params", params))
        return super().set_params(**params)


@needs_imblearn
def test_skipped_sampling_strategy_check_does_nothing_to_the_adapter():
    _Spy.calls = []
    imblearn_checks.check_samplers_sampling_strategy_fit_resample("ResampleAdapter", _Spy(RandomCoreset()))
    # A clone of the spy went through the whole check: nothing was set, nothing was resampled.
    assert _Spy.calls == []


class _DenseAtTheBoundary(ResampleAdapter):
    """Makes a sparse DataFrame dense on the way in and sparse again on the way out."""

    def fit_resample(self, X, y):
        if not hasattr(X, "sparse"):  # the check's dense run, to compare with
            return super().fit_resample(X, y)
        X_red, y_red = super().fit_resample(X.sparse.to_dense(), y)
        return X_red.astype(X.dtypes), y_red


@needs_imblearn
@pytest.mark.parametrize("reducer", reducers(), ids=reducer_ids)
def test_sparse_input_is_all_that_fails_the_pandas_sparse_check(reducer):
    pytest.importorskip("pandas")
    imblearn_checks.check_samplers_pandas_sparse("ResampleAdapter", _DenseAtTheBoundary(reducer))


@needs_imblearn
@pytest.mark.parametrize(
    "name, error, needle",
    [
        ("check_samplers_sparse", TypeError, "Sparse data was passed"),
        ("check_samplers_string", ValueError, "could not convert string to float"),
        ("check_samplers_nan", ValueError, "X contains NaN"),
    ],
)
def test_checks_turned_off_by_the_tags_fail_for_the_tagged_reason(name, error, needle):
    tags = ResampleAdapter(RandomCoreset()).__sklearn_tags__()
    assert not (tags.input_tags.sparse or tags.input_tags.string or tags.input_tags.allow_nan)
    with pytest.raises(error, match=re.escape(needle)):
        getattr(imblearn_checks, name)("ResampleAdapter", ResampleAdapter(RandomCoreset(random_state=0)))


def test_tags_are_imblearn_sampler_tags():
    tags = ResampleAdapter(RandomCoreset()).__sklearn_tags__()
    assert tags.estimator_type == "sampler" and tags.transformer_tags is None
    assert tags.sampler_tags.sample_indices is False  # and the adapter has no sample_indices_
    assert tags.input_tags.dataframe is True and tags.input_tags.two_d_array is True
    assert tags.target_tags.required is True


# ===================================================================== lists
@pytest.fixture(scope="module")
def blobs():
    """60 samples of 4 features in 3 classes of 20, float64, int labels."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    X = rng.normal(size=(60, 4)) + y[:, None]
    return X, y


def fit_resample_and_transform(reducer, X, y):
    out = reducer.fit_resample(X, y)
    again = reducer.transform()
    return out, again


@pytest.mark.parametrize("reducer", reducers(), ids=reducer_ids)
def test_lists_in_give_lists_out(blobs, reducer):
    X, y = blobs
    X_arr, y_arr = ResampleAdapter(reducer).fit_resample(X, y)
    for (X_out, y_out) in fit_resample_and_transform(reducer, X.tolist(), y.tolist()):
        assert type(X_out) is list and type(y_out) is list
        assert X_out == X_arr.tolist() and y_out == y_arr.tolist()
        assert all(type(row) is list and type(row[0]) is float for row in X_out)
        assert all(type(label) is int for label in y_out)


@pytest.mark.parametrize("reducer", reducers(), ids=reducer_ids)
def test_each_container_comes_back_on_its_own(blobs, reducer):
    X, y = blobs
    X_out, y_out = reducer.fit_resample(X.tolist(), y)
    assert type(X_out) is list and isinstance(y_out, np.ndarray)
    X_out, y_out = reducer.fit_resample(X, y.tolist())
    assert isinstance(X_out, np.ndarray) and type(y_out) is list
    # A tuple is not a list (imbalanced-learn tells them apart by type): numpy out.
    X_out, y_out = reducer.fit_resample(X, tuple(y.tolist()))
    assert isinstance(y_out, np.ndarray)
    X_out, y_out = reducer.fit_resample(torch.tensor(X), y.tolist())
    assert isinstance(X_out, torch.Tensor) and type(y_out) is list


def test_nested_lists_of_images_keep_their_shape(digits):
    X, y = digits  # (300, 8, 8)
    X_out, y_out = RandomCoreset(ipc=2, random_state=0).fit_resample(X.tolist(), y.tolist())
    assert np.asarray(X_out).shape == (20, 8, 8) and len(X_out[0]) == 8 and len(X_out[0][0]) == 8
    assert sorted(y_out) == sorted(list(range(10)) * 2)


def test_string_labels_in_a_list(blobs):
    X, y = blobs
    names = np.array(["a", "b", "c"])[y].tolist()
    _, y_out = RandomCoreset(ipc=2, random_state=0).fit_resample(X, names)
    assert y_out == ["a", "a", "b", "b", "c", "c"]
    assert all(type(label) is str for label in y_out)


# ===================================================================== one-vs-all
@pytest.mark.parametrize("reducer", reducers(), ids=reducer_ids)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float64, bool])
def test_one_vs_all_labels_give_one_vs_all_back(blobs, reducer, dtype):
    X, y = blobs
    Y = label_binarize(y, classes=[0, 1, 2]).astype(dtype)
    X_ref, y_ref = ResampleAdapter(reducer).fit_resample(X, y)
    for X_out, Y_out in fit_resample_and_transform(reducer, X, Y):
        np.testing.assert_array_equal(X_out, X_ref)
        assert Y_out.shape == (len(y_ref), 3) and Y_out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(Y_out.sum(axis=1), 1)
        np.testing.assert_array_equal(Y_out.argmax(axis=1), y_ref)
    np.testing.assert_array_equal(reducer.classes_, [0, 1, 2])  # the column indices
    assert reducer.sampling_strategy_ == {0: 1, 1: 1, 2: 1}
    assert all(type(k) is int for k in reducer.sampling_strategy_)


def test_one_vs_all_in_other_containers(blobs):
    X, y = blobs
    Y = np.eye(3, dtype=np.float32)[y]
    reducer = RandomCoreset(ipc=2, random_state=0)
    _, y_ref = reducer.fit_resample(X, y)
    expected = np.eye(3, dtype=np.float32)[y_ref]
    _, Y_t = reducer.fit_resample(X, torch.from_numpy(Y))
    assert isinstance(Y_t, torch.Tensor) and Y_t.dtype == torch.float32
    np.testing.assert_array_equal(Y_t.numpy(), expected)
    _, Y_l = reducer.fit_resample(X, Y.astype(np.int64).tolist())
    assert type(Y_l) is list and Y_l == expected.astype(np.int64).tolist()
    assert all(type(v) is int for row in Y_l for v in row)
    # Inside, the labels are the column indices: y_syn_ holds them, transform() the matrix.
    np.testing.assert_array_equal(reducer.y_syn_, y_ref)


def test_one_vs_all_with_an_unused_column_keeps_every_column(blobs):
    X, y = blobs
    Y = np.zeros((len(y), 5), dtype=np.int64)
    Y[np.arange(len(y)), 2 * y] = 1  # classes in columns 0, 2 and 4; 1 and 3 never used
    reducer = RandomCoreset(ipc=2, random_state=0)
    _, Y_out = reducer.fit_resample(X, Y)
    assert Y_out.shape == (6, 5)
    np.testing.assert_array_equal(Y_out.argmax(axis=1), [0, 0, 2, 2, 4, 4])
    np.testing.assert_array_equal(reducer.classes_, [0, 2, 4])
    assert reducer.sampling_strategy_ == {0: 2, 2: 2, 4: 2}


def test_one_vs_all_with_a_dict_ipc_names_columns(blobs):
    X, y = blobs
    Y = np.eye(3, dtype=np.int64)[y]
    reducer = RandomCoreset(ipc={0: 1, 1: 3, 2: 2}, random_state=0)
    _, Y_out = reducer.fit_resample(X, Y)
    assert Counter(Y_out.argmax(axis=1).tolist()) == {0: 1, 1: 3, 2: 2}
    assert reducer.sampling_strategy_ == {0: 1, 1: 3, 2: 2}


ROWS = np.arange(60)[:, None]


@pytest.mark.parametrize("reducer", reducers(), ids=reducer_ids)
@pytest.mark.parametrize(
    "make, row, ones",
    [
        (lambda Y: np.maximum(Y, (ROWS == 4) * np.array([[1, 1, 0]])), 4, 2),
        (lambda Y: np.where(ROWS == 5, 0, Y), 5, 0),
        (lambda Y: np.ones_like(Y), 0, 3),
    ],
    ids=["two-ones", "no-one", "all-ones"],
)
def test_multilabel_y_is_refused(blobs, reducer, make, row, ones):
    X, y = blobs
    Y = make(np.eye(3, dtype=np.int64)[y])
    message = (re.escape(f"y is a label-indicator matrix of shape {Y.shape} but row {row} holds {ones} ones")
               + ".*" + re.escape("multilabel and multioutput targets are not supported. Pass y as a 1d array "
                                  "of class labels, or as a one-vs-all matrix with exactly one 1 in every row"))
    for target in (Y, Y.tolist(), torch.from_numpy(Y)):
        with pytest.raises(ValueError, match=message):
            reducer.fit_resample(X, target)
        with pytest.raises(ValueError, match=message):
            ResampleAdapter(reducer).fit_resample(X, target)
    assert not hasattr(reducer, "X_syn_")


def test_two_columns_of_labels_that_are_not_indicators_are_still_refused(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="1d array"):
        RandomCoreset().fit_resample(X, np.stack([y, y + 1], axis=1))


# ===================================================================== ResampleAdapter
@pytest.mark.parametrize("reducer", reducers(), ids=reducer_ids)
@pytest.mark.parametrize("container", ["numpy", "list", "torch", "one-vs-all", "one-vs-all list"])
def test_adapter_returns_exactly_what_its_reducer_returns(blobs, reducer, container):
    X, y = blobs
    X_in, y_in = {
        "numpy": (X, y),
        "list": (X.tolist(), y.tolist()),
        "torch": (torch.tensor(X, dtype=torch.float32), torch.tensor(y)),
        "one-vs-all": (X, np.eye(3, dtype=np.int32)[y]),
        "one-vs-all list": (X.tolist(), np.eye(3, dtype=np.int64)[y].tolist()),
    }[container]
    adapter = ResampleAdapter(reducer)
    X_a, y_a = adapter.fit_resample(X_in, y_in)
    X_r, y_r = reducer.fit_resample(X_in, y_in)
    for got, want in ((X_a, X_r), (y_a, y_r)):
        assert type(got) is type(want)
        if isinstance(want, list):
            assert got == want
        elif isinstance(want, torch.Tensor):
            assert got.dtype == want.dtype and torch.equal(got, want)
        else:
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert adapter.sampling_strategy_ == reducer.sampling_strategy_
    assert adapter.n_features_in_ == reducer.n_features_in_ == 4


def test_adapter_sampling_strategy_is_a_copy_of_the_reducers(blobs):
    X, y = blobs
    adapter = ResampleAdapter(RandomCoreset(ipc={0: 1, 1: 2, 2: 3}, random_state=0))
    assert not hasattr(adapter, "sampling_strategy_")
    _, y_red = adapter.fit_resample(X, y)
    assert adapter.sampling_strategy_ == dict(Counter(y_red.tolist())) == {0: 1, 1: 2, 2: 3}
    assert adapter.sampling_strategy_ is not adapter.reducer_.sampling_strategy_
    adapter.sampling_strategy_[0] = 99
    assert adapter.reducer_.sampling_strategy_[0] == 1


def test_adapter_n_features_in_for_images(digits):
    X, y = digits
    adapter = ResampleAdapter(RandomCoreset(random_state=0))
    adapter.fit_resample(X, y)
    assert adapter.n_features_in_ == 64 and adapter.sampling_strategy_ == {c: 1 for c in range(10)}


def test_adapter_feature_names_out(blobs):
    X, y = blobs
    adapter = ResampleAdapter(RandomCoreset(random_state=0))
    with pytest.raises(NotFittedError, match="fit_resample"):
        adapter.get_feature_names_out()
    adapter.fit_resample(X, y)
    names = adapter.get_feature_names_out()
    assert names.dtype == object and names.tolist() == ["x0", "x1", "x2", "x3"]
    assert adapter.get_feature_names_out(["a", "b", "c", "d"]).tolist() == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="input_features should have length equal"):
        adapter.get_feature_names_out(["a", "b"])
    assert not hasattr(adapter, "feature_names_in_")


# ===================================================================== pandas, where installed
def test_pandas_in_gives_pandas_out(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    X_df = pd.DataFrame(X, columns=["a", "b", "c", "d"]).astype({"b": np.float32})
    X_df["d"] = np.arange(len(X))  # an integer column
    y_s = pd.Series(y.astype(np.int32), name="target")
    adapter = ResampleAdapter(RandomCoreset(ipc=2, random_state=0))
    X_out, y_out = adapter.fit_resample(X_df, y_s)
    assert isinstance(X_out, pd.DataFrame) and isinstance(y_out, pd.Series)
    assert X_out.columns.tolist() == ["a", "b", "c", "d"] and y_out.name == "target"
    assert X_out["a"].dtype == np.float64 and X_out["b"].dtype == np.float32
    assert X_out["d"].dtype.kind == "f"  # integer input gives floats (synthetic values need them)
    assert y_out.dtype == np.int32 and (y_out.index == X_out.index).all()
    rows = adapter.reducer_.sample_indices_
    np.testing.assert_allclose(X_out.to_numpy(), X_df.to_numpy(dtype=np.float64)[rows], rtol=1e-6)
    assert adapter.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert adapter.get_feature_names_out().tolist() == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="not equal to feature_names_in_"):
        adapter.get_feature_names_out(["w", "x", "y", "z"])
    # A one-vs-all DataFrame comes back as one, with its columns.
    Y_df = pd.DataFrame(np.eye(3, dtype=np.int64)[y], columns=["p", "q", "r"])
    _, Y_out = adapter.fit_resample(X_df, Y_df)
    assert isinstance(Y_out, pd.DataFrame) and Y_out.columns.tolist() == ["p", "q", "r"]
    assert (Y_out.dtypes == np.int64).all() and Y_out.to_numpy().sum(axis=1).tolist() == [1] * 6
    # numpy again: the feature names are forgotten.
    adapter.fit_resample(X, y)
    assert not hasattr(adapter, "feature_names_in_")
