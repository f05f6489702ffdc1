"""DSA inside the estimators: siamese matching steps, augmented network steps and evaluation.

The augmentation module itself is tested in ``test_augment.py``; here the
question is whether the condensation loop and the evaluation protocol use it
the way DSA does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradmatch import GradientMatchingCondenser
from gradmatch.augment import DSA
from gradmatch.classifier import NetworkClassifier
from gradmatch.evaluation import evaluate_set

pytestmark = pytest.mark.usefixtures("torch_single_thread")

NO_FLIP = "color_crop_cutout_scale_rotate"  # digits: a mirrored digit is no digit


def _fit(X, y, fast, **params):
    return GradientMatchingCondenser(**{**fast, "model": "convnet", **params}).fit(X, y)


@pytest.fixture
def recorded(monkeypatch):
    """Record every DSA.apply call (parameters, n, batch size, grad) and every DSA.__call__ (batch size)."""
    applies, calls = [], []
    apply, call = DSA.apply, DSA.__call__

    def spy_apply(self, x, params):
        content = (params.ops, tuple((k, v.tolist()) for k, v in sorted(params.values.items())))
        applies.append((content, params.n, x.shape[0], x.requires_grad))
        return apply(self, x, params)

    def spy_call(self, x, generator):
        calls.append(x.shape[0])
        return call(self, x, generator)

    monkeypatch.setattr(DSA, "apply", spy_apply)
    monkeypatch.setattr(DSA, "__call__", spy_call)
    return applies, calls


def test_matching_step_is_siamese(digits, fast, recorded):
    """Per class and step: one draw (n=1), applied to the real batch and then the synthetic one."""
    applies, calls = recorded
    X, y = digits
    _fit(X, y, fast, ipc=2, augment=NO_FLIP, matching_steps=2, network_steps=1, batch_real=8)
    # The network step's augmentation applies per-image parameters (n = 20) ...
    assert [a[1] for a in applies if a[1] != 1] == [20]
    # ... the matching steps one shared draw: 2 steps x 10 classes x (real, synthetic).
    applies = [a for a in applies if a[1] == 1]
    assert len(applies) == 2 * 10 * 2
    for real, syn in zip(applies[0::2], applies[1::2]):
        assert real[0] == syn[0]  # the same parameters on both sides
        assert real[1] == syn[1] == 1  # one shared draw
        assert (real[2], syn[2]) == (8, 2)  # the real batch and the class's 2 synthetic images
        assert not real[3] and syn[3]  # only the synthetic side carries a gradient
    # Different classes get different draws.
    assert len({repr(a[0]) for a in applies[0::2][:10]}) == 10
    # The network step between the two matching steps trains on augmented synthetic images.
    assert calls == [20]


def test_gradients_reach_the_synthetic_images_through_the_augmentation(digits, fast):
    X, y = digits
    base = _fit(X, y, fast, augment=None, lr_syn=1.0)
    aug = _fit(X, y, fast, augment=NO_FLIP, lr_syn=1.0)
    init = _fit(X, y, fast, augment=NO_FLIP, lr_syn=1e-12, momentum_syn=0.0)
    moved = np.abs(aug.X_syn_ - init.X_syn_).max()
    assert moved > 1e-3  # the update went through the augmentation
    assert np.abs(aug.X_syn_ - base.X_syn_).max() > 1e-4  # and differs from the plain one


def test_dsa_condensation_is_reproducible(digits, fast):
    X, y = digits
    a = _fit(X, y, fast, augment="dsa", matching_steps=2, network_steps=1)
    b = _fit(X, y, fast, augment="dsa", matching_steps=2, network_steps=1)
    c = _fit(X, y, fast, augment="dsa", matching_steps=2, network_steps=1, random_state=1)
    np.testing.assert_array_equal(a.X_syn_, b.X_syn_)
    assert not np.array_equal(a.X_syn_, c.X_syn_)


def test_dsa_leaves_the_global_rng_alone(digits, fast):
    X, y = digits
    before = torch.get_rng_state()
    _fit(X, y, fast, augment="dsa", matching_steps=2, network_steps=1)
    assert torch.equal(before, torch.get_rng_state())


def test_augment_object_and_strategy_string(digits, fast):
    X, y = digits
    by_name = _fit(X, y, fast, augment="crop_scale")
    by_object = _fit(X, y, fast, augment=DSA(strategy="crop_scale"))
    np.testing.assert_array_equal(by_name.X_syn_, by_object.X_syn_)


def test_unknown_augmentation_is_a_clear_error(digits, fast):
    X, y = digits
    message = "The 'augment' parameter of GradientMatchingCondenser must be None, 'dsa', a strategy string"
    with pytest.raises(ValueError, match=message):
        GradientMatchingCondenser(augment="crop_blur", **fast).fit(X, y)


def test_augment_needs_images(digits_flat, fast):
    X, y = digits_flat
    with pytest.raises(ValueError, match="augment needs images"):
        GradientMatchingCondenser(augment="dsa", **{**fast, "model": "mlp"}).fit(X, y)
    # with input_shape the flat features are images again
    GradientMatchingCondenser(augment="dsa", input_shape=(1, 8, 8), **{**fast, "model": "convnet"}).fit(X, y)


# ------------------------------------------------------------- evaluation
def test_classifier_trains_on_augmented_batches(digits, recorded):
    applies, calls = recorded
    X, y = digits
    plain = NetworkClassifier(epochs=2, batch_size=128, random_state=0, device="cpu").fit(X, y)
    assert calls == []
    aug = NetworkClassifier(epochs=2, batch_size=128, augment=NO_FLIP, random_state=0,
                            device="cpu").fit(X, y)
    assert calls == [128, 128, 44] * 2  # every batch, with per-image parameters
    assert not all(np.array_equal(aug.network_state_[k], plain.network_state_[k])
                   for k in plain.network_state_)


def test_classifier_augment_needs_images(digits_flat):
    X, y = digits_flat
    with pytest.raises(ValueError, match="augment needs images"):
        NetworkClassifier(epochs=1, augment="dsa").fit(X, y)


def test_evaluate_set_with_augmentation(digits, digits_test, fast):
    X, y = digits
    X_test, y_test = digits_test
    cond = _fit(X, y, fast, augment=NO_FLIP)
    kwargs = dict(normalization=cond.normalization_, n_models=2, epochs=20, random_state=0, n_jobs=1)
    plain = evaluate_set(cond.X_syn_, cond.y_syn_, X_test, y_test, **kwargs)
    aug = evaluate_set(cond.X_syn_, cond.y_syn_, X_test, y_test, augment=NO_FLIP, **kwargs)
    again = evaluate_set(cond.X_syn_, cond.y_syn_, X_test, y_test, augment=NO_FLIP, **kwargs)
    assert aug.accuracies == again.accuracies
    assert aug.accuracies != plain.accuracies
    assert all(0.0 <= a <= 1.0 for a in aug.accuracies)
