"""Pipeline wrappers: CondensedEstimator (scikit-learn Pipeline, GridSearchCV,
cross_val_score) and ResampleAdapter (imbalanced-learn's Pipeline).

Budgets are tiny (one condensation iteration, a few epochs): these tests check
the plumbing, not the accuracy of the sets.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from gradmatch import GradientMatchingCondenser, Herding, RandomCoreset
from gradmatch.classifier import NetworkClassifier
from gradmatch.data import channel_stats
from gradmatch.pipeline import CondensedEstimator, ResampleAdapter
from gradmatch.validation import prepare_training_data

pytestmark = pytest.mark.usefixtures("torch_single_thread")

N_CLASSES = 10


def condenser(fast, **params):
    """The tiny condenser of conftest's ``fast`` settings, with smaller real batches."""
    settings = dict(fast, batch_real=8)
    settings.update(params)
    return GradientMatchingCondenser(**settings)


def network(**params):
    settings = dict(model="mlp", epochs=3, device="cpu", random_state=0)
    settings.update(params)
    return NetworkClassifier(**settings)


# --------------------------------------------------------------------- scikit-learn Pipeline
def test_last_step_of_a_pipeline_with_the_condenser(digits_flat, fast):
    X, y = digits_flat
    pipe = make_pipeline(
        StandardScaler(),
        CondensedEstimator(condenser(fast, ipc=2, input_shape=(1, 8, 8)), network()),
    )
    pipe.fit(X, y)
    step = pipe[-1]
    # The network was trained on the condensed set only: 2 flat samples per class.
    assert step.reducer_.X_syn_.shape == (2 * N_CLASSES, 64)
    assert step.reducer_.ipc == 2
    np.testing.assert_array_equal(pipe.classes_, np.arange(N_CLASSES))
    assert step.n_features_in_ == 64
    pred = pipe.predict(X)
    assert pred.shape == (len(X),) and set(pred) <= set(range(N_CLASSES))
    proba = pipe.predict_proba(X)
    assert proba.shape == (len(X), N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert pipe.decision_function(X).shape == (len(X), N_CLASSES)
    assert 0.0 <= pipe.score(X, y) <= 1.0
    # The wrapped estimators are clones: the user's objects stay unfitted.
    assert not hasattr(pipe[-1].reducer, "X_syn_")
    assert not hasattr(pipe[-1].estimator, "network_state_")


def test_image_input_with_a_convnet_downstream(digits, fast):
    X, y = digits  # (300, 8, 8) grey images
    model = CondensedEstimator(condenser(fast, ipc=1), network(model="convnet", epochs=2))
    model.fit(X, y)
    assert model.reducer_.X_syn_.shape == (N_CLASSES, 8, 8)
    assert model.n_features_in_ == 64
    assert model.predict(X[:5]).shape == (5,)


@pytest.mark.parametrize(
    "reducer, estimator",
    [
        (RandomCoreset(ipc=3, random_state=0), KNeighborsClassifier(n_neighbors=1)),
        (Herding(ipc=3, features="pixels"), LogisticRegression(max_iter=500)),
    ],
    ids=["random-knn", "herding-logreg"],
)
def test_plain_sklearn_estimator_downstream(digits_flat, reducer, estimator):
    X, y = digits_flat
    model = CondensedEstimator(reducer, estimator).fit(X, y)
    assert len(model.estimator_.classes_) == N_CLASSES
    assert model.estimator_.n_features_in_ == 64
    # The downstream estimator saw exactly the selected rows.
    np.testing.assert_array_equal(model.reducer_.X_syn_, X[model.reducer_.sample_indices_])
    # Real coresets of 3 per class are well above chance (10%) on the training data.
    assert model.score(X, y) > 0.5


def test_string_labels_come_back(digits_flat):
    X, y = digits_flat
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    model = CondensedEstimator(RandomCoreset(ipc=2, random_state=0), KNeighborsClassifier(1))
    model.fit(X, names[y])
    assert set(model.classes_) == set(names)
    assert model.predict(X[:4]).dtype.kind == "U"


def test_default_estimator_is_a_network_classifier(digits_flat, fast):
    X, y = digits_flat
    model = CondensedEstimator(condenser(fast))
    assert hasattr(model, "predict_proba") and hasattr(model, "decision_function")
    model.fit(X, y)  # DC's recipe: 300 epochs, on 10 samples (one batch each)
    assert isinstance(model.estimator_, NetworkClassifier)
    assert model.estimator is None
    assert model.predict(X[:2]).shape == (2,)


# --------------------------------------------------------------------- normalisation hand-off
def test_network_gets_the_real_data_normalization(digits_flat, fast):
    X, y = digits_flat
    model = CondensedEstimator(condenser(fast, ipc=2), network()).fit(X, y)
    real = model.reducer_.normalization_
    assert model.estimator_.normalization_ == real
    # ... the statistics of all of X, per feature: not those of the 20 synthetic samples.
    expected = channel_stats(prepare_training_data(X, y, None).images).as_dict()
    np.testing.assert_allclose(real["mean"], expected["mean"])
    X_syn = model.reducer_.X_syn_
    assert not np.allclose(model.estimator_.normalization_["mean"], X_syn.mean(axis=0))
    # The user's estimator keeps "auto": only the fitted clone was told.
    assert model.estimator.normalization == "auto"
    assert model.get_params()["estimator__normalization"] == "auto"


def test_image_statistics_are_handed_to_a_flat_network(digits_flat, fast):
    X, y = digits_flat
    model = CondensedEstimator(condenser(fast, input_shape=(1, 8, 8)), network()).fit(X, y)
    (mean,), (std,) = model.reducer_.normalization_["mean"], model.reducer_.normalization_["std"]
    assert mean == pytest.approx(X.mean()) and std == pytest.approx(X.std())
    # One grey channel, broadcast to the flat network's 64 features.
    np.testing.assert_allclose(model.estimator_.normalization_["mean"], [mean] * 64)
    np.testing.assert_allclose(model.estimator_.normalization_["std"], [std] * 64)


def test_selectors_hand_off_their_statistics_too(digits_flat):
    X, y = digits_flat
    model = CondensedEstimator(RandomCoreset(ipc=2, random_state=0), network()).fit(X, y)
    assert model.estimator_.normalization_ == model.reducer_.normalization_


def test_explicit_normalization_is_left_alone(digits_flat, fast):
    X, y = digits_flat
    model = CondensedEstimator(condenser(fast), network(normalization=None)).fit(X, y)
    assert model.estimator_.normalization_ == {"mean": [0.0] * 64, "std": [1.0] * 64}
    given = (5.0, 4.0)
    model = CondensedEstimator(condenser(fast), network(normalization=given)).fit(X, y)
    assert model.estimator_.normalization_ == {"mean": [5.0] * 64, "std": [4.0] * 64}


# --------------------------------------------------------------------- delegation, fitting state
def test_delegated_methods_exist_only_when_the_estimator_has_them(digits_flat):
    X, y = digits_flat
    knn = CondensedEstimator(RandomCoreset(ipc=2, random_state=0), KNeighborsClassifier(1))
    svc = CondensedEstimator(RandomCoreset(ipc=2, random_state=0), LinearSVC())
    net = CondensedEstimator(RandomCoreset(ipc=2, random_state=0), network())
    for model in (knn, clone(knn).fit(X, y)):
        assert hasattr(model, "predict") and hasattr(model, "predict_proba") and hasattr(model, "score")
        assert not hasattr(model, "decision_function")
    for model in (svc, clone(svc).fit(X, y)):
        assert hasattr(model, "decision_function")
        assert not hasattr(model, "predict_proba") and not hasattr(model, "predict_log_proba")
    fitted = clone(net).fit(X, y)
    for model in (net, fitted):
        assert all(hasattr(model, m) for m in ("predict", "predict_proba", "decision_function", "score"))
    np.testing.assert_allclose(fitted.decision_function(X[:5]), fitted.estimator_.decision_function(X[:5]))
    assert fitted.score(X, y) == fitted.estimator_.score(X, y)


def test_score_passes_sample_weight(digits_flat):
    X, y = digits_flat
    model = CondensedEstimator(RandomCoreset(ipc=2, random_state=0), KNeighborsClassifier(1)).fit(X, y)
    weights = (model.predict(X) == y).astype(float)  # only the right answers count
    assert model.score(X, y, sample_weight=weights) == 1.0


def test_not_fitted_error_before_fit(digits_flat, fast):
    X, _ = digits_flat
    model = CondensedEstimator(condenser(fast), network())
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    for method in ("predict", "predict_proba", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(model, method)(X)
    with pytest.raises(NotFittedError):
        model.score(X, np.zeros(len(X)))


def test_reducer_without_fit_resample_is_a_type_error(digits_flat):
    X, y = digits_flat
    with pytest.raises(TypeError, match="fit_resample"):
        CondensedEstimator(StandardScaler(), KNeighborsClassifier()).fit(X, y)
    with pytest.raises(TypeError, match="fit_resample"):
        ResampleAdapter(StandardScaler()).fit_resample(X, y)


def test_fitted_model_pickles(digits_flat, fast):
    X, y = digits_flat
    model = CondensedEstimator(condenser(fast), network()).fit(X, y)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# --------------------------------------------------------------------- params, clone
def test_nested_params_round_trip(fast):
    model = CondensedEstimator(condenser(fast, ipc=2), network(epochs=3))
    params = model.get_params(deep=True)
    assert params["reducer__ipc"] == 2 and params["estimator__epochs"] == 3
    assert params["reducer__model"] == "mlp" and params["estimator__normalization"] == "auto"
    assert params["reducer"] is model.reducer and params["estimator"] is model.estimator
    assert model.set_params(reducer__ipc=4, estimator__epochs=7) is model
    assert model.reducer.ipc == 4 and model.estimator.epochs == 7
    again = clone(model)
    assert again.reducer is not model.reducer and again.estimator is not model.estimator
    assert again.get_params(deep=True).keys() == model.get_params(deep=True).keys()
    assert again.get_params()["reducer__ipc"] == 4 and again.get_params()["estimator__epochs"] == 7
    # Whole sub-estimators can be swapped too.
    model.set_params(reducer=RandomCoreset(ipc=1), estimator=KNeighborsClassifier(1))
    assert model.get_params()["reducer__ipc"] == 1 and model.get_params()["estimator__n_neighbors"] == 1


def test_clone_of_a_fitted_model_is_unfitted(digits_flat):
    X, y = digits_flat
    model = CondensedEstimator(RandomCoreset(ipc=1, random_state=0), KNeighborsClassifier(1)).fit(X, y)
    fresh = clone(model)
    assert not hasattr(fresh, "reducer_") and not hasattr(fresh, "estimator_")
    assert fresh.get_params()["reducer__random_state"] == 0


def test_is_a_classifier():
    # So that cross-validation stratifies: every fold then has samples of every class.
    assert is_classifier(CondensedEstimator(RandomCoreset(), KNeighborsClassifier()))
    assert is_classifier(CondensedEstimator(RandomCoreset()))


# --------------------------------------------------------------------- model selection
def _set_size_scorer(estimator, X, y):
    return {
        "accuracy": estimator.score(X, y),
        "ipc": estimator.reducer_.ipc,
        "set_size": len(estimator.reducer_.y_syn_),
        "classifier_saw": len(np.asarray(estimator.estimator_.classes_)),
    }


def test_grid_search_over_reducer_ipc_with_the_condenser(digits_flat, fast):
    X, y = digits_flat
    model = CondensedEstimator(condenser(fast, input_shape=(1, 8, 8)), network(epochs=2))
    search = GridSearchCV(model, {"reducer__ipc": [1, 2]}, cv=2, scoring=_set_size_scorer,
                          refit="accuracy")
    search.fit(X, y)
    results = search.cv_results_
    assert [p["reducer__ipc"] for p in results["params"]] == [1, 2]
    # Each candidate's fitted reducer had its own ipc, in both folds.
    np.testing.assert_array_equal(results["mean_test_ipc"], [1, 2])
    np.testing.assert_array_equal(results["std_test_ipc"], [0, 0])
    np.testing.assert_array_equal(results["mean_test_set_size"], [N_CLASSES, 2 * N_CLASSES])
    np.testing.assert_array_equal(results["mean_test_classifier_saw"], [N_CLASSES, N_CLASSES])
    best = int(np.argmax(results["mean_test_accuracy"]))
    assert search.best_params_ == {"reducer__ipc": [1, 2][best]}
    assert search.best_estimator_.reducer_.ipc == search.best_params_["reducer__ipc"]
    assert search.predict(X[:3]).shape == (3,)


def test_grid_search_picks_the_larger_coreset(digits_flat):
    X, y = digits_flat
    model = CondensedEstimator(RandomCoreset(random_state=0), KNeighborsClassifier(1))
    search = GridSearchCV(model, {"reducer__ipc": [1, 10]}, cv=2).fit(X, y)
    assert search.best_params_ == {"reducer__ipc": 10}
    assert search.best_estimator_.reducer_.sample_indices_.shape == (10 * N_CLASSES,)


def test_grid_search_over_estimator_params_inside_a_pipeline(digits_flat):
    X, y = digits_flat
    pipe = make_pipeline(StandardScaler(),
                         CondensedEstimator(RandomCoreset(ipc=3, random_state=0), KNeighborsClassifier()))
    grid = {"condensedestimator__estimator__n_neighbors": [1, 3],
            "condensedestimator__reducer__ipc": [2, 3]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_[-1]
    assert best.estimator_.n_neighbors == search.best_params_["condensedestimator__estimator__n_neighbors"]
    assert best.reducer_.ipc == search.best_params_["condensedestimator__reducer__ipc"]


def test_cross_val_score_with_the_condenser(digits_flat, fast):
    X, y = digits_flat
    model = CondensedEstimator(condenser(fast, ipc=1), network(epochs=2))
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))


def test_cross_val_score_is_stratified(digits_flat):
    X, y = digits_flat
    model = CondensedEstimator(RandomCoreset(ipc=2, random_state=0), KNeighborsClassifier(1))
    default = cross_val_score(model, X, y, cv=3)
    stratified = cross_val_score(model, X, y, cv=StratifiedKFold(3))
    np.testing.assert_array_equal(default, stratified)


# --------------------------------------------------------------------- scikit-learn's checks
@parametrize_with_checks(
    [CondensedEstimator(RandomCoreset(ipc=1, random_state=0), LogisticRegression(max_iter=200))]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------- ResampleAdapter
def test_adapter_exposes_only_fit_resample(digits_flat):
    X, y = digits_flat
    adapter = ResampleAdapter(RandomCoreset(ipc=3, random_state=0))
    for name in ("transform", "fit_transform", "fit", "predict"):
        assert not hasattr(adapter, name)
    assert adapter.get_params(deep=True)["reducer__ipc"] == 3
    adapter.set_params(reducer__ipc=4)
    assert adapter.reducer.ipc == 4
    X_red, y_red = adapter.fit_resample(X, y)
    expected = RandomCoreset(ipc=4, random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(X_red, expected[0])
    np.testing.assert_array_equal(y_red, expected[1])
    assert adapter.reducer_.sample_indices_.shape == (4 * N_CLASSES,)
    assert adapter.n_features_in_ == 64
    assert adapter.sampling_strategy_ == {c: 4 for c in range(N_CLASSES)} == adapter.reducer_.sampling_strategy_
    assert not hasattr(adapter.reducer, "X_syn_")  # the clone was fitted
    assert not hasattr(clone(adapter), "reducer_")


def test_adapter_declares_itself_a_sampler():
    adapter = ResampleAdapter(RandomCoreset())
    assert adapter._estimator_type == "sampler"
    tags = adapter.__sklearn_tags__()
    assert tags.estimator_type == "sampler" and tags.transformer_tags is None
    # imbalanced-learn's sampler tags, as its own samplers declare them.
    assert tags.sampler_tags.sample_indices is False and tags.input_tags.dataframe is True
    imblearn_base = pytest.importorskip("imblearn.base")
    assert imblearn_base.is_sampler(adapter)


def _imblearn_pipeline():
    return pytest.importorskip("imblearn.pipeline")


def test_imblearn_refuses_the_bare_reducer(digits_flat):
    pipeline = _imblearn_pipeline()
    X, y = digits_flat
    pipe = pipeline.make_pipeline(RandomCoreset(ipc=5), LogisticRegression())
    with pytest.raises(TypeError, match="fit_resample"):
        pipe.fit(X, y)


def test_imblearn_pipeline_with_a_coreset(digits_flat):
    pipeline = _imblearn_pipeline()
    X, y = digits_flat
    pipe = pipeline.make_pipeline(ResampleAdapter(RandomCoreset(ipc=5, random_state=0)),
                                  LogisticRegression(max_iter=500))
    pipe.fit(X, y)
    # The classifier was fitted on the 50 selected samples; prediction skips the sampler.
    assert pipe[0].reducer_.sample_indices_.shape == (5 * N_CLASSES,)
    clf = pipe[-1]
    refit = LogisticRegression(max_iter=500).fit(X[pipe[0].reducer_.sample_indices_],
                                                 y[pipe[0].reducer_.sample_indices_])
    np.testing.assert_allclose(clf.coef_, refit.coef_)
    pred = pipe.predict(X)
    assert pred.shape == (len(X),)
    assert pipe.score(X, y) > 0.5
    assert pipe.n_features_in_ == 64


def test_imblearn_pipeline_with_the_condenser(digits_flat, fast):
    pipeline = _imblearn_pipeline()
    X, y = digits_flat
    pipe = pipeline.make_pipeline(StandardScaler(),
                                  ResampleAdapter(condenser(fast, ipc=2, input_shape=(1, 8, 8))),
                                  network(epochs=2))
    pipe.fit(X, y)
    assert pipe[1].reducer_.X_syn_.shape == (2 * N_CLASSES, 64)
    assert pipe[-1].n_features_in_ == 64
    assert pipe.predict(X).shape == (len(X),)
    assert pipe.predict_proba(X[:4]).shape == (4, N_CLASSES)


def test_imblearn_grid_search_over_the_adapter(digits_flat):
    pipeline = _imblearn_pipeline()
    X, y = digits_flat
    pipe = pipeline.make_pipeline(ResampleAdapter(RandomCoreset(random_state=0)), KNeighborsClassifier(1))
    search = GridSearchCV(pipe, {"resampleadapter__reducer__ipc": [1, 10]}, cv=2).fit(X, y)
    assert search.best_params_ == {"resampleadapter__reducer__ipc": 10}
    assert search.best_estimator_[0].reducer_.ipc == 10


def test_imblearn_pipeline_with_metadata_routing(digits_flat):
    pipeline = _imblearn_pipeline()
    import sklearn

    X, y = digits_flat
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = pipeline.make_pipeline(ResampleAdapter(RandomCoreset(ipc=2, random_state=0)),
                                      KNeighborsClassifier(1))
        assert pipe.fit(X, y).predict(X[:3]).shape == (3,)


def test_module_imports_without_imblearn():
    code = (
        "import sys; sys.modules['imblearn'] = None\n"
        "from gradmatch.pipeline import CondensedEstimator, ResampleAdapter\n"
        "from gradmatch import RandomCoreset\n"
        "X, y = ResampleAdapter(RandomCoreset(ipc=1)).fit_resample([[0.0], [1.0]], [0, 1])\n"
        "assert len(y) == 2 and 'imblearn' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
