"""Per-class budgets (``ipc`` as a dict) and imbalanced training data.

The inter-class term weights each class by its prior in the real training set
(docs/design.md section 2). With unequal class sizes these tests check that the
estimators hand those priors to the matching loss, and that the prior-weighted
sum of whole-class gradients is the gradient of the whole training set (eq. 5
with unequal class sizes).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import gradmatch.engine as engine_module
from gradmatch import GradientMatchingCondenser, Herding, RandomCoreset
from gradmatch.data import ClassPools, Normalization
from gradmatch.engine import class_gradients
from gradmatch.matching import union_gradient
from gradmatch.networks import build_model
from gradmatch.schedules import default_loops
from gradmatch.validation import ipc_per_class

pytestmark = pytest.mark.usefixtures("torch_single_thread")

#: Class sizes of the imbalanced digits subset: from 3 to 30 samples.
SIZES = {0: 30, 1: 3, 2: 12, 3: 30, 4: 5, 5: 20, 6: 8, 7: 30, 8: 15, 9: 4}


@pytest.fixture(scope="module")
def imbalanced(digits_all):
    X, y = digits_all
    rows = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in SIZES.items()])
    return X[rows].copy(), y[rows].copy()


BUDGET = {0: 2, 1: 1, 2: 1, 3: 3, 4: 1, 5: 2, 6: 1, 7: 1, 8: 2, 9: 1}


def _counts(y_syn, classes):
    return [int(np.sum(y_syn == c)) for c in classes]


# ------------------------------------------------------------ ipc as a dict
def test_ipc_per_class_orders_counts_by_class():
    np.testing.assert_array_equal(ipc_per_class({2: 5, 0: 1, 1: 3}, np.array([0, 1, 2])), [1, 3, 5])
    np.testing.assert_array_equal(ipc_per_class(4, np.array(["a", "b"])), [4, 4])
    # numpy scalar keys name the same classes as Python ones
    np.testing.assert_array_equal(ipc_per_class({np.int64(0): 2, 1: 1}, np.array([0, 1])), [2, 1])


@pytest.mark.parametrize(
    "ipc, error, match",
    [
        ({0: 1, 1: 1}, ValueError, r"no count for class\(es\) \[2\]"),
        ({0: 1, 1: 1, 2: 1, 7: 1}, ValueError, r"\[7\] are not classes of y"),
        ({}, ValueError, "empty dict"),
        ({0: 1, 1: 0, 2: 1}, ValueError, r"ipc\[1\] must be an integer >= 1"),
        ({0: 1, 1: 1.5, 2: 1}, TypeError, r"ipc\[1\] must be an integer"),
        ("3", TypeError, r"ipc must be an integer >= 1, got '3' \(str\); or a dict"),
    ],
)
def test_ipc_dict_errors(ipc, error, match):
    with pytest.raises(error, match=match):
        ipc_per_class(ipc, np.array([0, 1, 2]))


def test_condenser_with_per_class_budget(imbalanced, fast):
    X, y = imbalanced
    cond = GradientMatchingCondenser(ipc=BUDGET, **fast).fit(X, y)
    X_syn, y_syn = cond.transform()
    assert X_syn.shape == (sum(BUDGET.values()), 8, 8)
    assert _counts(y_syn, cond.classes_) == [BUDGET[c] for c in cond.classes_]
    # grouped by class, in classes_ order
    np.testing.assert_array_equal(y_syn, np.repeat(cond.classes_, [BUDGET[c] for c in cond.classes_]))
    assert np.all(np.isfinite(X_syn))


def test_condenser_string_labels_per_class_budget(imbalanced, fast):
    X, y = imbalanced
    names = np.array([f"c{v}" for v in y])
    cond = GradientMatchingCondenser(ipc={f"c{c}": k for c, k in BUDGET.items()}, **fast).fit(X, names)
    _, y_syn = cond.transform()
    assert _counts(y_syn, cond.classes_) == [BUDGET[int(c[1:])] for c in cond.classes_]


def test_condenser_rejects_budget_for_unknown_class(imbalanced, fast):
    X, y = imbalanced
    with pytest.raises(ValueError, match=r"\[42\] are not classes of y"):
        GradientMatchingCondenser(ipc={**BUDGET, 42: 1}, **fast).fit(X, y)


def test_condenser_warns_when_a_class_is_smaller_than_its_budget(imbalanced, fast):
    X, y = imbalanced
    with pytest.warns(UserWarning, match=r"fewer real samples than their ipc \(1 has 3 \(ipc 5\)\)"):
        GradientMatchingCondenser(ipc={**BUDGET, 1: 5}, **fast).fit(X, y)
    # ... and not when every class can supply its own budget, though some
    # class is smaller than the largest budget.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GradientMatchingCondenser(ipc={**BUDGET, 0: 10}, **fast).fit(X, y)


def test_default_loops_follow_the_largest_budget(imbalanced):
    X, y = imbalanced
    def loops(ipc):
        plan = GradientMatchingCondenser(ipc=ipc, schedule="fixed")._resolve_settings()
        return plan["matching_steps"], plan["schedule"](0)

    assert loops({**BUDGET, 3: 10}) == (10, 50) == default_loops(10)  # DC's ipc-10 row
    assert loops(BUDGET) == default_loops(3) != default_loops(1)  # the largest budget is 3


def test_random_coreset_per_class_budget(imbalanced):
    X, y = imbalanced
    sel = RandomCoreset(ipc=BUDGET, random_state=0).fit(X, y)
    assert _counts(sel.y_syn_, sel.classes_) == [BUDGET[c] for c in sel.classes_]
    idx = sel.sample_indices_
    assert len(np.unique(idx)) == len(idx)  # distinct rows
    np.testing.assert_array_equal(y[idx], sel.y_syn_)


def test_herding_per_class_budget_is_a_prefix_of_the_herding_order(imbalanced):
    X, y = imbalanced
    small = Herding(ipc=BUDGET, features="pixels").fit(X, y)
    full = Herding(ipc=3, features="pixels").fit(X[np.isin(y, [0, 3, 5, 7, 8])], y[np.isin(y, [0, 3, 5, 7, 8])])
    assert _counts(small.y_syn_, small.classes_) == [BUDGET[c] for c in small.classes_]
    # Greedy herding: a budget of k picks the first k of the class's herding order.
    for c in (0, 3, 5, 7, 8):
        k = BUDGET[c]
        picked = small.X_syn_[small.y_syn_ == c]
        first = full.X_syn_[full.y_syn_ == c][:k]
        np.testing.assert_array_equal(picked, first)


def test_selector_budget_above_class_size_is_an_error(imbalanced):
    X, y = imbalanced
    with pytest.raises(ValueError, match=r"1 has 3 \(ipc 4\)"):
        RandomCoreset(ipc={**BUDGET, 1: 4}).fit(X, y)


def test_ipc_dict_survives_clone_and_get_params():
    from sklearn.base import clone

    cond = clone(GradientMatchingCondenser(ipc=dict(BUDGET)))
    assert cond.get_params()["ipc"] == BUDGET


# ------------------------------------------------- priors of the real data
def test_class_weights_are_the_training_priors(imbalanced, fast):
    X, y = imbalanced
    cond = GradientMatchingCondenser(ipc=1, **fast).fit(X, y)
    sizes = np.array([SIZES[c] for c in cond.classes_], dtype=float)
    np.testing.assert_allclose(cond.class_weights_, sizes / sizes.sum())
    assert cond.class_weights_[1] < cond.class_weights_[0] / 5  # the priors really differ


def test_matching_loss_receives_the_priors(imbalanced, fast, monkeypatch):
    """The engine hands the priors (not uniform weights) to the inter-class term."""
    X, y = imbalanced
    seen = []
    original = engine_module.matching_loss

    def spy(*args, **kwargs):
        seen.append(list(kwargs["weights"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_module, "matching_loss", spy)
    cond = GradientMatchingCondenser(ipc=BUDGET, **{**fast, "matching_steps": 2}).fit(X, y)
    assert len(seen) == 2
    for weights in seen:
        np.testing.assert_allclose(weights, cond.class_weights_)


@pytest.mark.parametrize("model", ["mlp", "convnet"])
def test_prior_weighted_class_gradients_are_the_training_set_gradient(imbalanced, model):
    """Eq. 5 with unequal class sizes, through the loop's own pieces.

    Whole-class real batches (batch_real >= every class) weighted by the priors
    sum to the gradient of the mean loss on the whole imbalanced training set;
    uniform weights do not.
    """
    X, y = imbalanced
    X = torch.as_tensor(X, dtype=torch.float64).unsqueeze(1)
    labels = torch.as_tensor(np.searchsorted(np.unique(y), y))
    counts = torch.bincount(labels).double()
    priors = (counts / counts.sum()).tolist()
    torch.manual_seed(0)
    net = build_model(model, (1, 8, 8), 10).double()
    params = list(net.parameters())
    pools = ClassPools(X, labels, 10, Normalization((0.0,), (1.0,)), torch.device("cpu"))
    pools.normalize = lambda images: images  # keep float64 for a tight comparison
    gen = torch.Generator().manual_seed(0)
    per_class = []
    for c in range(10):
        xr, yr = pools.sample(c, 256, gen)
        assert len(yr) == SIZES[c]
        per_class.append(class_gradients(net, params, xr, yr, create_graph=False))
    whole = class_gradients(net, params, X, labels, create_graph=False)
    for got, want in zip(union_gradient(per_class, priors), whole):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    uniform = union_gradient(per_class, [0.1] * 10)
    assert max(float((u - w).abs().max()) for u, w in zip(uniform, whole)) > 1e-6
