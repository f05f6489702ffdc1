"""Herding and RandomCoreset: what they select, and that they share the condenser's interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradmatch import Herding, RandomCoreset

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def greedy_herding(F, k):
    """Reference herding (Welling 2009) in numpy: grow the set whose mean tracks F's mean."""
    mu = F.mean(axis=0)
    chosen, total = [], np.zeros_like(mu)
    for j in range(1, k + 1):
        dist = np.linalg.norm((total + F) / j - mu, axis=1)
        dist[chosen] = np.inf
        i = int(np.argmin(dist))
        chosen.append(i)
        total = total + F[i]
    return chosen


def check_selection(est, X, y, ipc):
    """sample_indices_ are ipc distinct rows per class, in classes_ order, and X_syn_ is X[them]."""
    idx = est.sample_indices_
    assert idx.dtype.kind == "i"
    assert idx.shape == (len(est.classes_) * ipc,)
    np.testing.assert_array_equal(y[idx], np.repeat(est.classes_, ipc))
    for c in est.classes_:
        rows = idx[y[idx] == c]
        assert len(np.unique(rows)) == ipc
    X_syn, y_syn = est.transform()
    np.testing.assert_array_equal(X_syn, X[idx])
    np.testing.assert_array_equal(y_syn, y[idx])
    return idx


def mean_gap(F, rows):
    return float(np.linalg.norm(F[rows].mean(axis=0) - F.mean(axis=0)))


def assert_herding_beats_random(F_all, y, idx, ipc, n_random=50):
    """Per class, the herded mean is closer to the class mean than a typical random subset.

    Greedy herding is not optimal, so it need not beat the best of 50 random subsets,
    but it must beat their median in every class and by a clear margin on average.
    """
    rng = np.random.default_rng(0)
    ratios = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        F = F_all[rows]
        chosen = np.searchsorted(rows, idx[y[idx] == c])
        herded = mean_gap(F, chosen)
        random_gaps = [mean_gap(F, rng.choice(len(rows), ipc, replace=False)) for _ in range(n_random)]
        assert herded < np.median(random_gaps), c
        ratios.append(herded / np.median(random_gaps))
    assert np.mean(ratios) < 0.85


# --------------------------------------------------------------- Herding on pixels
@pytest.fixture(scope="module")
def pixel_herding(digits):
    X, y = digits
    return Herding(ipc=5, features="pixels").fit(X, y)


def test_pixel_herding_selection_is_valid(pixel_herding, digits):
    X, y = digits
    check_selection(pixel_herding, X, y, 5)
    assert pixel_herding.feature_train_accuracy_ is None
    assert pixel_herding.X_syn_.dtype == np.float64


def test_pixel_herding_beats_random_subsets(pixel_herding, digits):
    X, y = digits
    assert_herding_beats_random(X.reshape(len(X), -1), y, pixel_herding.sample_indices_, 5)


def test_pixel_herding_matches_reference_greedy(pixel_herding, digits):
    X, y = digits
    F = X.reshape(len(X), -1)
    idx = pixel_herding.sample_indices_
    for c in range(10):
        rows = np.flatnonzero(y == c)
        # Herding order within the class (grey normalisation is one affine map, which
        # leaves the greedy choices unchanged).
        expected = rows[greedy_herding(F[rows], 5)]
        np.testing.assert_array_equal(idx[c * 5 : (c + 1) * 5], expected)


def test_pixel_herding_ipc1_picks_the_sample_nearest_the_class_mean(digits):
    X, y = digits
    idx = Herding(ipc=1, features="pixels").fit(X, y).sample_indices_
    F = X.reshape(len(X), -1)
    for c, i in enumerate(idx):
        rows = np.flatnonzero(y == c)
        gaps = np.linalg.norm(F[rows] - F[rows].mean(axis=0), axis=1)
        assert i == rows[np.argmin(gaps)]


def test_herding_is_prefix_consistent(pixel_herding, digits):
    # Greedy: the first 2 of 5 herded samples are the 2 herded samples.
    X, y = digits
    idx2 = Herding(ipc=2, features="pixels").fit(X, y).sample_indices_
    idx5 = pixel_herding.sample_indices_
    np.testing.assert_array_equal(idx2.reshape(10, 2), idx5.reshape(10, 5)[:, :2])


# --------------------------------------------------------------- Herding on a callable
def test_callable_feature_herding(digits):
    X, y = digits
    projection = torch.from_numpy(np.random.default_rng(1).normal(size=(64, 12))).float()
    seen = {}

    def features(images):
        seen["input"] = images.clone()
        out = torch.tanh(images.reshape(images.shape[0], -1) @ projection)
        seen["output"] = out.clone()
        return out

    est = Herding(ipc=4, features=features).fit(X, y)
    idx = check_selection(est, X, y, 4)
    assert est.feature_train_accuracy_ is None
    # The callable sees every training image, normalised, as float32 (n, C, H, W).
    inp = seen["input"]
    assert inp.dtype == torch.float32 and tuple(inp.shape) == (300, 1, 8, 8)
    np.testing.assert_allclose(inp.mean().item(), 0.0, atol=1e-4)
    np.testing.assert_allclose(inp.std(unbiased=False).item(), 1.0, atol=1e-4)
    F = seen["output"].numpy().astype(np.float64)
    assert_herding_beats_random(F, y, idx, 4)
    for c in range(10):
        rows = np.flatnonzero(y == c)
        np.testing.assert_array_equal(idx[c * 4 : (c + 1) * 4], rows[greedy_herding(F[rows], 4)])
    # A different feature space selects differently from pixels.
    pixels = Herding(ipc=4, features="pixels").fit(X, y).sample_indices_
    assert not np.array_equal(idx, pixels)


# --------------------------------------------------------------- Herding on a network
@pytest.fixture(scope="module")
def network_herding(digits):
    X, y = digits
    return Herding(ipc=3, feature_epochs=2, random_state=0, device="cpu").fit(X, y)


def test_network_herding_selection_is_valid(network_herding, digits):
    X, y = digits
    check_selection(network_herding, X, y, 3)
    acc = network_herding.feature_train_accuracy_
    assert isinstance(acc, float) and 0.0 <= acc <= 1.0


def test_network_herding_differs_from_pixel_herding(network_herding, digits):
    X, y = digits
    pixels = Herding(ipc=3, features="pixels").fit(X, y)
    assert not np.array_equal(network_herding.sample_indices_, pixels.sample_indices_)


def test_network_herding_is_reproducible_and_isolated(network_herding, digits):
    X, y = digits
    torch.manual_seed(5)
    np.random.seed(5)
    t_before = torch.get_rng_state().clone()
    n_before = np.random.get_state()
    again = Herding(ipc=3, feature_epochs=2, random_state=0, device="cpu").fit(X, y)
    assert torch.equal(t_before, torch.get_rng_state())
    n_after = np.random.get_state()
    assert np.array_equal(n_before[1], n_after[1]) and n_before[2:] == n_after[2:]
    np.testing.assert_array_equal(again.sample_indices_, network_herding.sample_indices_)
    assert again.feature_train_accuracy_ == network_herding.feature_train_accuracy_


def test_network_herding_more_epochs_learns(digits):
    X, y = digits
    est = Herding(ipc=1, feature_epochs=10, random_state=0, device="cpu").fit(X, y)
    assert est.feature_train_accuracy_ > 0.5


def test_network_herding_mlp_on_flat_features(digits_flat):
    X, y = digits_flat
    est = Herding(ipc=2, feature_epochs=1, random_state=0, device="cpu").fit(X, y)
    check_selection(est, X, y, 2)
    assert est.X_syn_.shape == (20, 64)
    assert 0.0 <= est.feature_train_accuracy_ <= 1.0


def test_network_herding_with_model_factory(digits):
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, shape, n_classes):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), 16), nn.ReLU())
            self.head = nn.Linear(16, n_classes)

        def embed(self, x):
            return self.body(x)

        def forward(self, x):
            return self.head(self.embed(x))

    X, y = digits
    est = Herding(ipc=2, feature_epochs=1, model=Tiny, random_state=0, device="cpu").fit(X, y)
    check_selection(est, X, y, 2)


def test_feature_epochs_zero_uses_an_untrained_network(digits):
    X, y = digits
    est = Herding(ipc=2, feature_epochs=0, random_state=0, device="cpu").fit(X, y)
    check_selection(est, X, y, 2)
    assert 0.0 <= est.feature_train_accuracy_ <= 1.0


# --------------------------------------------------------------- RandomCoreset
def test_random_coreset_balanced_distinct(digits):
    X, y = digits
    est = RandomCoreset(ipc=7, random_state=0).fit(X, y)
    idx = check_selection(est, X, y, 7)
    assert np.bincount(y[idx]).tolist() == [7] * 10
    assert len(np.unique(idx)) == 70


def test_random_coreset_reproducible(digits):
    X, y = digits
    a = RandomCoreset(ipc=3, random_state=0).fit(X, y).sample_indices_
    b = RandomCoreset(ipc=3, random_state=0).fit(X, y).sample_indices_
    c = RandomCoreset(ipc=3, random_state=1).fit(X, y).sample_indices_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_coreset_whole_class(digits):
    # ipc equal to the class size takes every sample.
    X, y = digits
    idx = RandomCoreset(ipc=30, random_state=0).fit(X, y).sample_indices_
    assert sorted(idx.tolist()) == list(range(300))


def test_random_coreset_leaves_global_rngs_alone(digits):
    X, y = digits
    np.random.seed(3)
    torch.manual_seed(3)
    n_before, t_before = np.random.get_state(), torch.get_rng_state().clone()
    RandomCoreset(ipc=2, random_state=0).fit(X, y)
    assert np.array_equal(n_before[1], np.random.get_state()[1])
    assert torch.equal(t_before, torch.get_rng_state())


def test_random_coreset_is_roughly_uniform(digits):
    # Over many seeds, every sample of a class is picked about equally often.
    X, y = digits
    counts = np.zeros(len(y))
    for seed in range(200):
        counts[RandomCoreset(ipc=3, random_state=seed).fit(X, y).sample_indices_] += 1
    # Expected 200 * 3 / 30 = 20 picks per sample.
    assert counts.min() > 2 and counts.max() < 45
    assert abs(counts.mean() - 20) < 1e-9


# --------------------------------------------------------------- common interface
SELECTORS = {
    "random": lambda **kw: RandomCoreset(random_state=0, **kw),
    "herding-pixels": lambda **kw: Herding(features="pixels", **kw),
    "herding-network": lambda **kw: Herding(feature_epochs=1, random_state=0, device="cpu", **kw),
}


@pytest.mark.parametrize("name", SELECTORS)
def test_uint8_selected_as_float32_exact_values(digits_uint8, name):
    X, y = digits_uint8
    est = SELECTORS[name](ipc=2).fit(X, y)
    X_syn, _ = est.transform()
    assert X_syn.dtype == np.float32
    np.testing.assert_array_equal(X_syn, X[est.sample_indices_].astype(np.float32))


@pytest.mark.parametrize("name", SELECTORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_kept(digits, name, dtype):
    X, y = digits
    X_syn, _ = SELECTORS[name](ipc=1).fit(X.astype(dtype), y).transform()
    assert X_syn.dtype == dtype


@pytest.mark.parametrize("name", SELECTORS)
def test_layouts(digits, name):
    X, y = digits
    flat = X.reshape(300, 64)
    est = SELECTORS[name](ipc=2, input_shape=(1, 8, 8)).fit(flat, y)
    assert est.transform()[0].shape == (20, 64)
    assert est.input_shape_ == (1, 8, 8)
    assert SELECTORS[name](ipc=2).fit(X, y).transform()[0].shape == (20, 8, 8)
    X4 = np.stack([X, 16 - X, X], axis=1)
    est = SELECTORS[name](ipc=2).fit(X4, y)
    assert est.transform()[0].shape == (20, 3, 8, 8)
    np.testing.assert_array_equal(est.transform()[0], X4[est.sample_indices_])


@pytest.mark.parametrize("name", SELECTORS)
def test_string_and_offset_labels(digits, name):
    X, y = digits
    letters = np.array(list("abcdefghij"))[y]
    est = SELECTORS[name](ipc=2).fit(X, letters)
    _, y_syn = est.transform()
    assert y_syn.dtype.kind == "U"
    np.testing.assert_array_equal(y_syn, np.repeat(list("abcdefghij"), 2))
    _, y_syn = SELECTORS[name](ipc=2).fit(X, 10 * y + 10).transform()
    np.testing.assert_array_equal(y_syn, np.repeat(np.arange(10, 101, 10), 2))


@pytest.mark.parametrize("name", SELECTORS)
def test_torch_in_torch_out(digits, name):
    X, y = digits
    Xt = torch.tensor(X, dtype=torch.float32)
    est = SELECTORS[name](ipc=2).fit(Xt, torch.tensor(y))
    X_syn, y_syn = est.transform()
    assert isinstance(X_syn, torch.Tensor) and X_syn.device.type == "cpu"
    assert X_syn.dtype == torch.float32
    assert torch.equal(X_syn, Xt[torch.from_numpy(est.sample_indices_)])
    assert isinstance(y_syn, torch.Tensor)
    assert y_syn.tolist() == np.repeat(np.arange(10), 2).tolist()


@pytest.mark.parametrize("name", SELECTORS)
def test_tensor_dataset_input(digits, name):
    X, y = digits
    ds = torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    est = SELECTORS[name](ipc=2).fit(ds)
    X_syn, y_syn = est.transform()
    np.testing.assert_array_equal(np.asarray(X_syn), X[est.sample_indices_].astype(np.float32))
    assert np.asarray(y_syn).tolist() == np.repeat(np.arange(10), 2).tolist()


@pytest.mark.parametrize("name", SELECTORS)
def test_fit_resample_equals_fit_transform(digits, name):
    X, y = digits
    X_a, y_a = SELECTORS[name](ipc=2).fit_resample(X, y)
    est = SELECTORS[name](ipc=2)
    assert est.fit(X, y) is est
    X_b, y_b = est.transform()
    np.testing.assert_array_equal(X_a, X_b)
    np.testing.assert_array_equal(y_a, y_b)
