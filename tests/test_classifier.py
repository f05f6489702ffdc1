"""NetworkClassifier (train from scratch, scikit-learn style) and the evaluation protocol."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from gradmatch import GradientMatchingCondenser, RandomCoreset
from gradmatch.classifier import NetworkClassifier
from gradmatch.evaluation import ProtocolResult, evaluate_reducer, evaluate_set

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return NetworkClassifier(epochs=15, random_state=0, device="cpu").fit(X, y)


def test_learns_digits(fitted, digits_test):
    X_test, y_test = digits_test
    # 15 epochs on 300 digits: far above the 10% of chance.
    assert fitted.score(X_test, y_test) > 0.6
    proba = fitted.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(fitted.predict(X_test)) <= set(fitted.classes_)


def test_same_seed_same_network(fitted, digits, digits_test):
    X, y = digits
    again = NetworkClassifier(epochs=15, random_state=0, device="cpu").fit(X, y)
    for key, value in fitted.network_state_.items():
        np.testing.assert_array_equal(value, again.network_state_[key])
    other = NetworkClassifier(epochs=15, random_state=1, device="cpu").fit(X, y)
    assert not np.array_equal(other.network_state_["classifier.weight"],
                              fitted.network_state_["classifier.weight"])


def test_pickles_as_numpy_and_predicts_after(fitted, digits_test):
    X_test, _ = digits_test
    blob = pickle.dumps(fitted)
    loaded = pickle.loads(blob)
    assert not hasattr(loaded, "_net")
    assert all(isinstance(v, np.ndarray) for v in loaded.network_state_.values())
    np.testing.assert_array_equal(loaded.predict(X_test), fitted.predict(X_test))


def test_string_labels_and_clone(digits):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = NetworkClassifier(epochs=2, random_state=0, device="cpu")
    clf.fit(X, names[y])
    assert clf.predict(X[:3]).dtype.kind == "U"
    assert clone(clf).get_params() == clf.get_params()


def test_given_normalization_is_used(digits):
    X, y = digits
    clf = NetworkClassifier(epochs=1, normalization={"mean": [3.0], "std": [2.0]}, device="cpu",
                            random_state=0).fit(X, y)
    assert clf.normalization_ == {"mean": [3.0], "std": [2.0]}
    auto = NetworkClassifier(epochs=1, device="cpu", random_state=0).fit(X, y)
    assert auto.normalization_["mean"][0] == pytest.approx(X.mean())


def test_wrong_shape_at_predict(fitted, digits):
    X, _ = digits
    with pytest.raises(ValueError, match=r"shape \(64,\).*fitted on \(8, 8\)"):
        fitted.predict(X.reshape(len(X), -1))


def test_bad_parameters(digits):
    X, y = digits
    with pytest.raises(ValueError, match="epochs"):
        NetworkClassifier(epochs=-1).fit(X, y)
    with pytest.raises(ValueError, match="The 'model' parameter of NetworkClassifier must be 'auto' or a network name"):
        NetworkClassifier(model="resnet99").fit(X, y)


def test_a_label_matrix_is_refused_with_what_to_pass(digits):
    # Fitted on a one-vs-all matrix, the classifier would predict column numbers.
    X, y = digits
    one_hot = np.eye(10)[y]
    for matrix in (one_hot, one_hot.tolist()):
        with pytest.raises(ValueError, match=r"shape \(n_samples,\).*10 columns.*argmax\(axis=1\)"):
            NetworkClassifier(epochs=1).fit(X, matrix)
    clf = NetworkClassifier(epochs=1).fit(X, y.tolist())  # a plain list of labels is fine
    assert list(clf.classes_) == list(range(10))


def test_zero_epochs_are_refused_before_any_fit(digits, digits_test):
    # Zero epochs would score untrained networks; evaluate_reducer says so before fitting a set.
    X, y = digits
    small = RandomCoreset(ipc=1, random_state=0).fit_resample(X, y)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        evaluate_set(*small, *digits_test, normalization={"mean": [8.0], "std": [6.0]}, epochs=0)
    fitted = []
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        evaluate_reducer(RandomCoreset(ipc=1), X, y, *digits_test, epochs=0,
                         callback=lambda *a: fitted.append(a))
    assert fitted == []


def test_protocol_pools_sets_and_models(digits, digits_test):
    X, y = digits
    seen = []
    res = evaluate_reducer(RandomCoreset(ipc=2), X, y, *digits_test, n_repeats=2, n_models=2,
                           epochs=3, device="cpu", callback=lambda r, accs, s: seen.append(r))
    assert isinstance(res, ProtocolResult)
    assert seen == [0, 1]
    assert [len(a) for a in res.per_set] == [2, 2]
    assert res.accuracies == res.per_set[0] + res.per_set[1]
    # Repeat r uses random_state + 1000 r for the set and for its networks.
    X1, y1 = RandomCoreset(ipc=2, random_state=1000).fit_resample(X, y)
    direct = evaluate_set(X1, y1, *digits_test, normalization=RandomCoreset(ipc=2).fit(X, y).normalization_,
                          n_models=2, epochs=3, random_state=1000, device="cpu")
    assert direct.accuracies == res.per_set[1]


def test_protocol_with_a_condenser_and_another_evaluation_network(digits, digits_test):
    X, y = digits
    cond = GradientMatchingCondenser(ipc=1, iterations=1, batch_real=8, device="cpu")
    res = evaluate_reducer(cond, X, y, *digits_test, n_repeats=1, n_models=1, epochs=2,
                           model="mlp", device="cpu")
    assert len(res.accuracies) == 1 and 0.0 <= res.accuracies[0] <= 1.0
    assert len(res.fit_seconds) == 1 and res.fit_seconds[0] > 0
