"""Checkpoint keys identify a run: every setting that shapes the result changes the key.

Regression tests for the key collisions found by testing as a user: a DSA of
another strength, a ``functools.partial`` network of another width, or two
lambdas shared one key, so a run with other settings continued a foreign
checkpoint. Also: the estimator shape (a failed refit leaves the fitted state
as it was, a callback's ``numpy.True_`` stops, warnings point at the caller).
"""

from __future__ import annotations

import copy
import functools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gradmatch.checkpoint as checkpoint
import gradmatch.selectors as selectors
from gradmatch import GradientMatchingCondenser, Herding, RandomCoreset
from gradmatch.augment import DSA
from gradmatch.checkpoint import UndescribableSetting, describe_setting, run_key
from gradmatch.networks import MLP, ConvNet

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = dict(iterations=1, matching_steps=1, network_steps=0, schedule="fixed", batch_real=8,
            model="mlp", device="cpu", random_state=0)


def cos_only(g_syn, g_real):
    return 1 - torch.nn.functional.cosine_similarity(g_syn.flatten(), g_real.flatten(), dim=0)


def sse_only(g_syn, g_real):
    return ((g_syn - g_real) ** 2).sum()


def two_steps(t):
    return 2


def three_steps(t):
    return 3


#: For every parameter that shapes the result: two values that must give two keys.
RESULT_SHAPING = {
    "ipc": (1, 2),
    "match": ("intra", "multilevel"),
    "lam": (None, 3.0),
    "distance": ("cos", "cos+l2"),
    "schedule": ("fixed", "adaptive"),
    "matching_steps": (1, 2),
    "network_steps": (None, 4),
    "lr_syn": (0.1, 0.2),
    "momentum_syn": (0.5, 0.0),
    "lr_net": (0.01, 0.02),
    "batch_real": (8, 16),
    "batch_train": (256, 128),
    "init": ("noise", "real"),
    "factor": (1, 2),
    "real_sampling": ("random", "representative"),
    "recluster_every": (10, 5),
    "augment": (DSA(scale=1.2), DSA(scale=1.5)),
    "precision": ("float32", "bf16"),
    "network_precision": ("float32", "bf16"),
    "compile": (False, True),
    "model": (functools.partial(ConvNet, width=16), functools.partial(ConvNet, width=32)),
    "input_shape": (None, (1, 8, 8)),
    "normalization": ("auto", None),
    "random_state": (0, 1),
}

#: More pairs of the same parameters: callables, objects and seeds of every kind.
MORE_PAIRS = [
    ("distance", cos_only, sse_only),
    ("distance", functools.partial(cos_only), functools.partial(sse_only)),
    ("schedule", two_steps, three_steps),
    ("schedule", functools.partial(two_steps), functools.partial(three_steps)),
    ("init", "real", "mix"),
    ("augment", "dsa", "crop_scale"),
    ("augment", DSA(strategy="crop"), DSA(strategy="scale")),
    ("model", "mlp", "convnet"),
    ("model", MLP, ConvNet),
    ("model", functools.partial(MLP, hidden=8), functools.partial(MLP, hidden=16)),
    ("ipc", {0: 1, 1: 2}, {0: 2, 1: 1}),
    ("normalization", (0.0, 1.0), (0.0, 2.0)),
    ("random_state", np.random.RandomState(0), np.random.RandomState(1)),
]


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    keep = y < 2
    from gradmatch.validation import prepare_training_data

    return prepare_training_data(X[keep], y[keep])


def key_of(data, precision="float32", seed=0, **params):
    est = GradientMatchingCondenser(**params)
    resolved = {} if precision is None else {"precision": precision}
    return run_key(data.images, data.labels, data.classes, est._run_settings(resolved, seed))


def test_every_result_shaping_parameter_is_in_the_table():
    """A new parameter must be added to the table (or to the non-shaping list) on purpose."""
    params = set(GradientMatchingCondenser().get_params())
    assert params - set(GradientMatchingCondenser._NOT_IN_RUN_KEY) == set(RESULT_SHAPING)


@pytest.mark.parametrize("param", sorted(RESULT_SHAPING))
def test_two_values_give_two_keys_and_equal_values_one(data, param):
    first, second = RESULT_SHAPING[param]
    if param == "precision":  # the precision that runs, not the one asked for
        assert key_of(data, precision=first) != key_of(data, precision=second)
        return
    assert key_of(data, **{param: first}) != key_of(data, **{param: second})
    assert key_of(data, **{param: first}) == key_of(data, **{param: copy.deepcopy(first)})


@pytest.mark.parametrize("param, first, second", MORE_PAIRS, ids=lambda v: str(v)[:30])
def test_callables_and_objects_are_told_apart(data, param, first, second):
    assert key_of(data, **{param: first}) != key_of(data, **{param: second})
    assert key_of(data, **{param: first}) == key_of(data, **{param: copy.deepcopy(first)})


def test_settings_that_do_not_shape_the_result_keep_the_key(data):
    base = key_of(data)
    for param, value in [("iterations", 50), ("verbose", 1), ("checkpoint_every", 3),
                         ("warm_start", True), ("in_memory", False), ("distributed", False)]:
        assert key_of(data, **{param: value}) == base, param


def test_the_data_shape_the_key(data, digits):
    X, y = digits
    from gradmatch.validation import prepare_training_data

    other = prepare_training_data(X[(y >= 2) & (y < 4)], y[(y >= 2) & (y < 4)] - 2)
    est = GradientMatchingCondenser()
    settings = est._run_settings({"precision": "float32"}, 0)
    assert run_key(data.images, data.labels, data.classes, settings) != run_key(
        other.images, other.labels, other.classes, settings)


def test_an_unseeded_run_is_keyed_by_its_drawn_seed(data):
    assert key_of(data, random_state=None, seed=1) != key_of(data, random_state=None, seed=2)


def test_the_data_are_hashed_in_chunks_to_the_same_key(data, monkeypatch):
    whole = key_of(data)
    monkeypatch.setattr(checkpoint, "HASH_CHUNK_BYTES", 64 * 7 + 3)  # a few rows per chunk
    assert key_of(data) == whole


@pytest.mark.parametrize("param, value, why", [
    ("distance", lambda g, r: (g - r).abs().sum(), "a lambda"),
    ("schedule", lambda t: 1, "a lambda"),
    ("callback_free_closure", None, "a function defined inside another"),
])
def test_undescribable_settings_refuse_a_checkpointed_fit_before_any_work(digits, tmp_path, param, value, why):
    X, y = digits
    if param == "callback_free_closure":
        def local_distance(g_syn, g_real):
            return ((g_syn - g_real) ** 2).sum()

        param, value = "distance", local_distance
    est = GradientMatchingCondenser(**{**FAST, param: value, "network_steps": None, "checkpoint": tmp_path / "ckpt"})
    with pytest.raises(ValueError, match=f"checkpoint=.* needs settings a later run can recognise, but {param} "
                                         f"is {why}.*or set checkpoint=None"):
        est.fit(X, y)
    assert not (tmp_path / "ckpt").exists()
    assert not hasattr(est, "X_syn_")
    # Without a checkpoint folder the same settings fit.
    est.set_params(checkpoint=None).fit(X, y)


@pytest.mark.parametrize("first, second", [
    (dict(augment=DSA(scale=1.2)), dict(augment=DSA(scale=1.5))),
    (dict(model=functools.partial(MLP, hidden=8)), dict(model=functools.partial(MLP, hidden=16))),
])
def test_a_run_with_other_settings_never_continues_a_foreign_checkpoint(digits, tmp_path, first, second):
    """Regression: the second run used to resume the first run's set (the key named callables only)."""
    X, y = digits
    params = dict(FAST, ipc=1, checkpoint=tmp_path)
    if "augment" in first:
        params.update(model="convnet", batch_real=4)
    GradientMatchingCondenser(**{**params, "iterations": 2, **first}).fit(X, y)
    resumed = GradientMatchingCondenser(**{**params, "iterations": 3, **second}).fit(X, y)
    fresh = GradientMatchingCondenser(**{**params, "iterations": 3, **second, "checkpoint": None}).fit(X, y)
    np.testing.assert_array_equal(resumed.X_syn_, fresh.X_syn_)
    assert len(list(tmp_path.glob("gradmatch-*.npz"))) == 2


def test_unseeded_runs_sharing_a_folder_are_independent(digits, tmp_path):
    X, y = digits
    params = dict(FAST, random_state=None, checkpoint=tmp_path, iterations=2)
    GradientMatchingCondenser(**params).fit(X, y)
    GradientMatchingCondenser(**params).fit(X, y)
    assert len(list(tmp_path.glob("gradmatch-*.npz"))) == 2


def test_a_random_state_object_resumes_by_its_state(digits, tmp_path):
    """A RandomState is described by its state, not its repr (which holds an address)."""
    X, y = digits
    params = dict(FAST, checkpoint=tmp_path)
    GradientMatchingCondenser(**{**params, "random_state": np.random.RandomState(0), "iterations": 2}).fit(X, y)
    resumed = GradientMatchingCondenser(**{**params, "random_state": np.random.RandomState(0),
                                           "iterations": 3}).fit(X, y)
    assert len(list(tmp_path.glob("gradmatch-*.npz"))) == 1
    assert resumed.n_iter_ == 3


# ------------------------------------------------------------------ descriptions
settings_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


@given(settings_values)
def test_equal_settings_describe_equally(value):
    assert describe_setting(value) == describe_setting(copy.deepcopy(value))


@given(st.dictionaries(st.text(max_size=3), st.integers(), min_size=2, max_size=5))
def test_a_dict_is_described_whatever_its_order(mapping):
    reordered = dict(reversed(list(mapping.items())))
    assert describe_setting(mapping) == describe_setting(reordered)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_random_states_are_described_by_their_state(a, b):
    same = describe_setting(np.random.RandomState(a)) == describe_setting(np.random.RandomState(b))
    assert same == (a == b)


def test_what_cannot_be_described_is_refused():
    class Opaque:
        def __call__(self, t):
            return 1

    for value in (lambda t: 1, Opaque(), object()):
        with pytest.raises(UndescribableSetting):
            describe_setting(value)


# ------------------------------------------------------------------ estimator shape
def fitted_state(est) -> dict:
    """Everything on the estimator but its parameters: the fitted attributes and private state."""
    params = est.get_params(deep=False)
    return {k: copy.deepcopy(v) for k, v in vars(est).items() if k not in params}


def assert_same_state(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[name], value, err_msg=name)
        elif name in ("_state", "history_", "normalization_", "_layout", "sampling_strategy_"):
            assert repr(after[name]) == repr(value), name
        elif not callable(value):
            assert after[name] == value or after[name] is value, name


@pytest.mark.parametrize("make, bad", [
    (lambda: GradientMatchingCondenser(**FAST), dict(momentum_syn=5)),
    (lambda: GradientMatchingCondenser(**FAST), dict(ipc={0: 1})),  # needs the data to fail
    (lambda: GradientMatchingCondenser(**FAST), dict(network_steps=2, schedule="adaptive")),
    (lambda: GradientMatchingCondenser(**FAST), dict(input_shape=(3, 8, 8))),
    (lambda: RandomCoreset(random_state=0), dict(ipc=10**6)),
    (lambda: Herding(features="pixels"), dict(features="edges")),
], ids=["declared", "vs-input", "resolved", "data", "selector", "herding"])
def test_a_refit_that_fails_validation_leaves_the_fitted_state_as_it_was(digits, make, bad):
    X, y = digits
    est = make().fit(X, y)
    before = fitted_state(est)
    with pytest.raises((ValueError, TypeError)):
        est.set_params(**bad).fit(X, y)
    assert_same_state(before, fitted_state(est))


def test_a_callback_returning_numpy_true_stops_the_fit(digits):
    X, y = digits
    est = GradientMatchingCondenser(**{**FAST, "iterations": 5, "callback": lambda i, r: np.True_}).fit(X, y)
    assert est.n_iter_ == 1


@pytest.mark.parametrize("entry", ["fit", "fit_resample"])
def test_warnings_point_at_the_caller_whatever_the_entry_point(digits, entry):
    X, y = digits
    small = np.isin(np.arange(len(y)), np.flatnonzero(y == 0)[1:])
    est = GradientMatchingCondenser(**{**FAST, "ipc": 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(est, entry)(X[~small], y[~small])  # class 0 keeps one sample
    ours = [w for w in caught if "fewer than ipc=2" in str(w.message)]
    assert ours and ours[0].filename == __file__


def test_herding_resolves_the_normalisation_once(digits, monkeypatch):
    X, y = digits
    calls = []
    real = selectors.resolve_normalization
    monkeypatch.setattr(selectors, "resolve_normalization", lambda *a: calls.append(1) or real(*a))
    Herding(features="network", feature_epochs=1, random_state=0).fit(X, y)
    assert len(calls) == 1


def test_a_parameter_added_later_keeps_old_keys_at_its_default(data, monkeypatch):
    """A new result-shaping parameter at its default must not orphan checkpoints written before it."""
    before = key_of(data, lam=None)
    monkeypatch.setattr(GradientMatchingCondenser, "_ADDED_LATER", {"lam": None})
    # At the default it is left out (as if it did not exist); any other value is in the key.
    assert key_of(data, lam=None) != before
    assert key_of(data, lam=None) == run_key(data.images, data.labels, data.classes, {
        k: v for k, v in GradientMatchingCondenser()._run_settings({"precision": "float32"}, 0).items() if k != "lam"})
    assert key_of(data, lam=3.0) != key_of(data, lam=None)


@pytest.mark.parametrize("estimator, precision, key", [
    (GradientMatchingCondenser, "float32", "807c4cf2b9c83c194a381b4171b0f03934dd69b3583e44c95920a35fa0a65175"),
    ("dm", None, "47a0c83e89173ee538b5f55a9b4e081c25409a21525d06e0843c528839f92188"),
])
def test_keys_written_before_the_later_parameters_still_match(digits_all, estimator, precision, key):
    """Pinned keys of two default runs, written before factor existed: checkpoints of then still resume."""
    from gradmatch import DistributionMatchingCondenser
    from gradmatch.validation import prepare_training_data

    X, y = digits_all
    data = prepare_training_data(X.reshape(len(X), -1), y)
    est = (DistributionMatchingCondenser if estimator == "dm" else estimator)(ipc=3, random_state=0)
    resolved = {} if precision is None else {"precision": precision}
    assert run_key(data.images, data.labels, data.classes, est._run_settings(resolved, 0)) == key
