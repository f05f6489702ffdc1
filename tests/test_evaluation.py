"""evaluate_set: train fresh networks on a small set, score them on real test data (docs/design.md section 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradmatch import GradientMatchingCondenser, RandomCoreset
from gradmatch.data import Normalization
from gradmatch.evaluation import EvaluationResult, evaluate_set
from gradmatch.training import TrainRecipe

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def small_set(digits):
    """5 real images per class selected from the training subset, and its normalisation."""
    X, y = digits
    X_set, y_set = RandomCoreset(ipc=5, random_state=0).fit_resample(X, y)
    norm = {"mean": [float(X.mean())], "std": [float(X.std())]}
    return X_set, y_set, norm


@pytest.fixture(scope="module")
def baseline(small_set, digits_test):
    """ConvNet, 5 epochs, 2 models, one process."""
    X_set, y_set, norm = small_set
    X_test, y_test = digits_test
    return evaluate_set(X_set, y_set, X_test, y_test, normalization=norm, epochs=5, n_models=2,
                        random_state=0, device="cpu", n_jobs=1)


def test_accuracies_are_fractions(baseline, digits_test):
    assert isinstance(baseline, EvaluationResult)
    assert len(baseline.accuracies) == 2
    n_test = len(digits_test[1])
    for acc in baseline.accuracies:
        assert isinstance(acc, float) and 0.0 <= acc <= 1.0
        # A fraction of the 200 test images.
        assert acc * n_test == pytest.approx(round(acc * n_test))
    assert baseline.mean == pytest.approx(np.mean(baseline.accuracies))
    assert baseline.std == pytest.approx(np.std(baseline.accuracies))
    assert "(n=2)" in str(baseline) and "%" in str(baseline)


def test_parallel_gives_the_same_accuracies(baseline, small_set, digits_test):
    X_set, y_set, norm = small_set
    parallel = evaluate_set(X_set, y_set, *digits_test, normalization=norm, epochs=5, n_models=2,
                            random_state=0, device="cpu", n_jobs=2)
    assert parallel.accuracies == baseline.accuracies


def test_a_network_registered_here_is_trained_in_worker_processes(baseline, small_set, digits_test):
    # Worker processes start with the built-in names only; the registered builder travels instead.
    from functools import partial

    from gradmatch import networks

    X_set, y_set, norm = small_set
    networks.register_model("convnet_alias")(partial(networks.ConvNet))
    try:
        parallel = evaluate_set(X_set, y_set, *digits_test, normalization=norm, model="convnet_alias",
                                epochs=5, n_models=2, random_state=0, device="cpu", n_jobs=2)
    finally:
        networks.unregister_model("convnet_alias")
    assert parallel.accuracies == baseline.accuracies  # the same network as "convnet"


def test_model_seeds_are_random_state_plus_i(baseline, small_set, digits_test):
    X_set, y_set, norm = small_set
    second = evaluate_set(X_set, y_set, *digits_test, normalization=norm, epochs=5, n_models=1,
                          random_state=1, device="cpu")
    assert second.accuracies == baseline.accuracies[1:]
    again = evaluate_set(X_set, y_set, *digits_test, normalization=norm, epochs=5, n_models=1,
                         random_state=0, device="cpu")
    assert again.accuracies == baseline.accuracies[:1]


def test_the_given_normalization_is_the_one_used(baseline, small_set, digits_test):
    # Normalising the data by hand (exactly as evaluate_set does: float32, (x - m) / s) and
    # passing the identity gives bit-identical training, hence identical accuracies.
    X_set, y_set, norm = small_set
    X_test, y_test = digits_test
    m = torch.tensor(norm["mean"], dtype=torch.float32)
    s = torch.tensor(norm["std"], dtype=torch.float32)

    def by_hand(X):
        return ((torch.from_numpy(X).to(torch.float32) - m) / s).numpy()

    pre = evaluate_set(by_hand(X_set), y_set, by_hand(X_test), y_test,
                       normalization={"mean": [0.0], "std": [1.0]}, epochs=5, n_models=2,
                       random_state=0, device="cpu")
    assert pre.accuracies == baseline.accuracies
    # A Normalization object works like the dict.
    as_object = evaluate_set(X_set, y_set, X_test, y_test,
                             normalization=Normalization(tuple(norm["mean"]), tuple(norm["std"])),
                             epochs=5, n_models=2, random_state=0, device="cpu")
    assert as_object.accuracies == baseline.accuracies


def test_a_different_normalization_changes_the_result(baseline, small_set, digits_test):
    # Together with the test above this shows the given statistics are used as given
    # (not ignored, not recomputed from the small set, which standardising by hand would
    # not change).
    X_set, y_set, _ = small_set
    other = evaluate_set(X_set, y_set, *digits_test, normalization={"mean": [0.0], "std": [1.0]},
                         epochs=5, n_models=2, random_state=0, device="cpu")
    assert other.accuracies != baseline.accuracies


@pytest.fixture(scope="module")
def trained_longer(digits, digits_test):
    """10 images per class, 30 epochs: enough to learn digits well above chance."""
    X, y = digits
    X_set, y_set = RandomCoreset(ipc=10, random_state=0).fit_resample(X, y)
    norm = {"mean": [float(X.mean())], "std": [float(X.std())]}
    good = evaluate_set(X_set, y_set, *digits_test, normalization=norm, epochs=30, n_models=2,
                        random_state=0, device="cpu")
    wild = evaluate_set(X_set, y_set, *digits_test, normalization={"mean": [1000.0], "std": [1e-3]},
                        epochs=30, n_models=2, random_state=0, device="cpu")
    return good, wild


def test_a_real_set_scores_well_above_chance(trained_longer):
    good, _ = trained_longer
    assert good.mean > 0.5  # chance is 0.1


def test_a_wildly_wrong_normalization_hurts(trained_longer):
    good, wild = trained_longer
    assert wild.mean < good.mean - 0.2


def test_condensed_set_with_its_normalization(digits, digits_test):
    X, y = digits
    cond = GradientMatchingCondenser(ipc=2, iterations=2, matching_steps=2, network_steps=1,
                                     schedule="fixed", batch_real=16, device="cpu",
                                     random_state=0).fit(X, y)
    X_syn, y_syn = cond.transform()
    res = evaluate_set(X_syn, y_syn, *digits_test, normalization=cond.normalization_, epochs=5,
                       n_models=1, device="cpu")
    assert len(res.accuracies) == 1 and 0.0 <= res.mean <= 1.0


def test_flat_features_with_mlp_and_string_labels(small_set, digits_test):
    X_set, y_set, norm = small_set
    X_test, y_test = digits_test
    names = np.array(list("abcdefghij"))
    res = evaluate_set(X_set.reshape(len(X_set), -1), names[y_set], X_test.reshape(len(X_test), -1),
                       names[y_test], normalization=norm, epochs=30, n_models=1, device="cpu")
    assert 0.0 <= res.mean <= 1.0
    # The same with integer labels: labels are matched through the classes, not by position.
    ints = evaluate_set(X_set.reshape(len(X_set), -1), y_set, X_test.reshape(len(X_test), -1), y_test,
                        normalization=norm, epochs=30, n_models=1, device="cpu")
    assert res.accuracies == ints.accuracies


def test_test_set_with_a_subset_of_the_classes(small_set, digits_test):
    X_set, y_set, norm = small_set
    X_test, y_test = digits_test
    keep = y_test >= 5
    res = evaluate_set(X_set, y_set, X_test[keep], y_test[keep], normalization=norm, epochs=5,
                       n_models=1, device="cpu")
    full = evaluate_set(X_set, y_set, X_test, y_test, normalization=norm, epochs=5, n_models=1,
                        device="cpu")
    # Same network; the half test set is scored with the right class codes.
    assert 0.0 <= res.mean <= 1.0
    assert res.mean * keep.sum() <= full.mean * len(y_test) + 1e-9


def test_recipe_overrides_epochs(baseline, small_set, digits_test):
    X_set, y_set, norm = small_set
    res = evaluate_set(X_set, y_set, *digits_test, normalization=norm, epochs=300,
                       recipe=TrainRecipe(epochs=5), n_models=2, random_state=0, device="cpu")
    assert res.accuracies == baseline.accuracies


def test_global_rngs_untouched(small_set, digits_test):
    X_set, y_set, norm = small_set
    torch.manual_seed(11)
    np.random.seed(11)
    t_before, n_before = torch.get_rng_state().clone(), np.random.get_state()
    evaluate_set(X_set, y_set, *digits_test, normalization=norm, epochs=1, n_models=1, device="cpu")
    assert torch.equal(t_before, torch.get_rng_state())
    assert np.array_equal(n_before[1], np.random.get_state()[1])


def test_uint8_set_and_test_data(small_set, digits_test):
    X_set, y_set, norm = small_set
    X_test, y_test = digits_test
    scale = 255.0 / 16.0
    to_u8 = lambda X: np.round(X * scale).astype(np.uint8)  # noqa: E731
    res = evaluate_set(to_u8(X_set), y_set, to_u8(X_test), y_test,
                       normalization={"mean": [norm["mean"][0] * scale], "std": [norm["std"][0] * scale]},
                       epochs=5, n_models=1, device="cpu")
    assert 0.0 <= res.mean <= 1.0


def test_shape_mismatch_is_an_error(small_set, digits_test):
    X_set, y_set, norm = small_set
    X_test, y_test = digits_test
    with pytest.raises(ValueError, match=r"samples of shape \(8, 8\) but the test set \(64,\)"):
        evaluate_set(X_set, y_set, X_test.reshape(len(X_test), -1), y_test, normalization=norm,
                     epochs=1, n_models=1, device="cpu")


def test_unknown_test_labels_are_an_error(small_set, digits_test):
    X_set, y_set, norm = small_set
    X_test, y_test = digits_test
    with pytest.raises(ValueError, match=r"test labels \[10\] do not occur in the training set"):
        evaluate_set(X_set, y_set, X_test, np.where(y_test == 9, 10, y_test), normalization=norm,
                     epochs=1, n_models=1, device="cpu")
