"""GradientMatchingCondenser end to end on scikit-learn digits, with tiny budgets.

Covers every matching rule, distance and schedule; both initialisations; the MLP,
the ConvNet and a user factory; reproducibility and the caller's RNG; labels,
dtypes, layouts and torch inputs (docs/design.md section 1).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gradmatch import GradientMatchingCondenser

pytestmark = pytest.mark.usefixtures("torch_single_thread")

MATCHES = ("intra", "inter", "interleaved", "multilevel")


def check_synthetic_set(cond, X, n_classes=10, ipc=1):
    """Shape, dtype, labels and finiteness of a fitted condenser's output."""
    X_syn, y_syn = cond.transform()
    assert isinstance(X_syn, np.ndarray)
    assert X_syn.shape == (n_classes * ipc,) + X.shape[1:]
    assert X_syn.dtype == X.dtype
    assert np.all(np.isfinite(X_syn))
    np.testing.assert_array_equal(y_syn, np.repeat(cond.classes_, ipc))
    np.testing.assert_array_equal(cond.X_syn_, X_syn)
    return X_syn, y_syn


def condensed(X, y, **params):
    return GradientMatchingCondenser(**params).fit(X, y)


# --------------------------------------------------------------- matching rules
@pytest.fixture(scope="module")
def match_fits(digits):
    """One ConvNet fit per matching rule: 2 iterations, 2 matching steps, 1 network step."""
    X, y = digits
    records = {}
    fits = {}
    for match in MATCHES:
        seen = []
        fits[match] = GradientMatchingCondenser(
            ipc=2, match=match, iterations=2, matching_steps=2, network_steps=1,
            schedule="fixed", batch_real=16, model="convnet", device="cpu", random_state=0,
            callback=lambda k, record, seen=seen: seen.append((k, dict(record))),
        ).fit(X, y)
        records[match] = seen
    return fits, records


@pytest.mark.parametrize("match", MATCHES)
def test_each_matching_rule_fits(match_fits, digits, match):
    X, _ = digits
    cond = match_fits[0][match]
    check_synthetic_set(cond, X, ipc=2)
    assert cond.n_iter_ == 2
    assert set(cond.history_) >= {"loss", "seconds", "network_steps"}
    assert all(len(v) == 2 for v in cond.history_.values())
    # T = 2 matching steps: one phase of network steps, of zeta = 1 step each.
    assert cond.history_["network_steps"] == [1, 1]
    assert all(np.isfinite(v) and v >= 0 for v in cond.history_["loss"])
    assert all(v >= 0 for v in cond.history_["seconds"])
    assert cond.model_ == "convnet"
    assert cond.input_shape_ == (1, 8, 8)


def test_matching_rules_give_different_sets(match_fits):
    fits = match_fits[0]
    for i, a in enumerate(MATCHES):
        for b in MATCHES[i + 1 :]:
            assert not np.array_equal(fits[a].X_syn_, fits[b].X_syn_), (a, b)


def test_interleaved_alternates_intra_and_inter(match_fits):
    records = match_fits[1]
    assert [r["rule"] for _, r in records["interleaved"]] == ["intra", "inter"]
    assert [r["rule"] for _, r in records["multilevel"]] == ["multilevel"] * 2
    assert [k for k, _ in records["intra"]] == [0, 1]
    # The callback sees exactly what history_ records.
    fits = match_fits[0]
    for match in MATCHES:
        assert [r["loss"] for _, r in records[match]] == fits[match].history_["loss"]
        assert [r["network_steps"] for _, r in records[match]] == fits[match].history_["network_steps"]


def test_interleaved_first_iteration_is_intra(match_fits):
    # Iteration 0 of "interleaved" is "intra": same network, batches and init, so the
    # same first loss.
    fits = match_fits[0]
    assert fits["interleaved"].history_["loss"][0] == pytest.approx(fits["intra"].history_["loss"][0])
    assert fits["multilevel"].history_["loss"][0] > fits["intra"].history_["loss"][0]


# --------------------------------------------------------------- distances
def l2_callable(g_syn, g_real):
    """The built-in "l2" term written as a user callable."""
    a = g_syn.reshape(g_syn.shape[0], -1)
    b = g_real.reshape(g_real.shape[0], -1)
    return torch.linalg.vector_norm(a - b, dim=1).sum()


DISTANCES = ["cos", "cos+l2", "cos+0.1*l2", "cos+100*mse", "l2", "cos + 1e2*mse", l2_callable]


@pytest.mark.parametrize("distance", DISTANCES, ids=lambda d: d if isinstance(d, str) else "callable")
def test_each_distance_fits(digits, distance):
    X, y = digits
    cond = condensed(X, y, ipc=1, distance=distance, iterations=1, matching_steps=2,
                     network_steps=1, schedule="fixed", batch_real=16, model="convnet",
                     device="cpu", random_state=0)
    check_synthetic_set(cond, X)
    assert cond.history_["network_steps"] == [1]
    assert np.isfinite(cond.history_["loss"][0]) and cond.history_["loss"][0] > 0


@pytest.fixture(scope="module")
def first_step_losses(digits):
    """Loss of the very first matching step for several distances (same network,
    batches and initial set, because everything is drawn from random_state=0)."""
    X, y = digits
    out = {}
    for distance in ["cos", "l2", "mse", "cos+l2", "cos+0.1*l2", "cos+100*mse", "callable"]:
        spec = l2_callable if distance == "callable" else distance
        cond = condensed(X, y, ipc=1, distance=spec, iterations=1, matching_steps=1,
                         batch_real=16, model="convnet", device="cpu", random_state=0)
        out[distance] = cond.history_["loss"][0]
    return out


def test_distance_terms_add_up(first_step_losses):
    loss = first_step_losses
    rel = 1e-4
    assert loss["cos+l2"] == pytest.approx(loss["cos"] + loss["l2"], rel=rel)
    assert loss["cos+0.1*l2"] == pytest.approx(loss["cos"] + 0.1 * loss["l2"], rel=rel)
    assert loss["cos+100*mse"] == pytest.approx(loss["cos"] + 100 * loss["mse"], rel=rel)
    assert loss["callable"] == pytest.approx(loss["l2"], rel=rel)


def test_callable_distance_sees_each_weight_tensor(digits, fast):
    X, y = digits
    calls = []

    def distance(g_syn, g_real):
        calls.append((tuple(g_syn.shape), tuple(g_real.shape), g_syn.requires_grad))
        return (g_syn - g_real).pow(2).sum()

    fast.update(distance=distance, match="intra")
    condensed(X, y, **fast)
    # MLP on 8x8 images: three weight matrices, biases skipped; 10 classes, 1 step.
    shapes = sorted({c[0] for c in calls})
    assert shapes == [(10, 128), (128, 64), (128, 128)]
    assert len(calls) == 10 * 3
    assert all(a == b for a, b, _ in calls)
    assert all(grad for _, _, grad in calls)  # the synthetic side carries a graph


# --------------------------------------------------------------- schedules
def test_fixed_schedule_steps(digits):
    X, y = digits
    cond = condensed(X, y, ipc=1, schedule="fixed", iterations=2, matching_steps=3,
                     network_steps=2, batch_real=16, model="convnet", device="cpu",
                     random_state=0)
    check_synthetic_set(cond, X)
    # (T - 1) * zeta = 2 * 2: no network steps after the last matching step.
    assert cond.history_["network_steps"] == [4, 4]
    assert len(cond.history_["loss"]) == 2


def test_adaptive_schedule_steps(digits_flat):
    X, y = digits_flat
    cond = condensed(X, y, ipc=2, schedule="adaptive", iterations=1, matching_steps=3,
                     batch_real=16, device="cpu", random_state=0)
    check_synthetic_set(cond, X, ipc=2)
    assert cond.history_["network_steps"] == [50 + 40]


def test_overfit_schedule_steps(digits_flat):
    X, y = digits_flat
    cond = condensed(X, y, ipc=1, schedule="overfit", iterations=2, matching_steps=3,
                     batch_real=16, device="cpu", random_state=0)
    check_synthetic_set(cond, X)
    assert len(cond.history_["network_steps"]) == 2
    # Two phases of network steps, each of 1..50 steps.
    assert all(2 <= s <= 100 for s in cond.history_["network_steps"])


def test_callable_schedule(digits):
    X, y = digits
    seen = []

    def schedule(t):
        seen.append(t)
        return t + 1

    cond = condensed(X, y, ipc=1, schedule=schedule, iterations=2, matching_steps=4,
                     batch_real=16, model="mlp", device="cpu", random_state=0)
    check_synthetic_set(cond, X)
    assert cond.history_["network_steps"] == [1 + 2 + 3] * 2
    assert seen == [0, 1, 2, 0, 1, 2]


def test_default_loops_for_ipc_1(digits, fast):
    # ipc=1 uses DC's (T, zeta) = (1, 1): one matching step, hence no network steps.
    X, y = digits
    fast.update(matching_steps=None, network_steps=None, iterations=2)
    cond = condensed(X, y, **fast)
    assert cond.history_["network_steps"] == [0, 0]


# --------------------------------------------------------------- initialisation
def test_init_real_starts_from_real_images_of_the_class(digits, fast):
    X, y = digits
    # A negligible learning rate leaves the set where it started.
    fast.update(init="real", lr_syn=1e-12, momentum_syn=0.0)
    cond = condensed(X, y, ipc=3, **fast)
    X_syn, y_syn = check_synthetic_set(cond, X, ipc=3)
    for img, label in zip(X_syn, y_syn):
        dist = np.abs(X[y == label] - img).reshape(np.sum(y == label), -1).max(axis=1)
        assert dist.min() < 1e-4
    # Distinct real images within each class.
    for label in cond.classes_:
        rows = X_syn[y_syn == label].reshape(3, -1)
        assert len(np.unique(rows, axis=0)) == 3


def test_init_noise_is_standard_normal_in_normalised_space(digits, fast):
    X, y = digits
    fast.update(init="noise", lr_syn=1e-12, momentum_syn=0.0)
    cond = condensed(X, y, ipc=2, **fast)
    X_syn, _ = check_synthetic_set(cond, X, ipc=2)
    mean, std = cond.normalization_["mean"][0], cond.normalization_["std"][0]
    z = (X_syn - mean) / std
    assert abs(z.mean()) < 0.15
    assert 0.85 < z.std() < 1.15
    # No synthetic image is a real one.
    assert np.abs(X_syn[:, None] - X[None]).reshape(20, len(X), -1).max(axis=2).min() > 1.0


def test_normalization_is_the_real_data_statistics(digits, fast):
    X, y = digits
    cond = condensed(X, y, **fast)
    assert cond.normalization_["mean"] == pytest.approx([X.mean()])
    assert cond.normalization_["std"] == pytest.approx([X.std()])


def test_given_normalization_is_stored(digits, fast):
    X, y = digits
    cond = condensed(X, y, normalization=(5.0, 4.0), **fast)
    assert cond.normalization_ == {"mean": [5.0], "std": [4.0]}
    cond = condensed(X, y, normalization=None, **fast)
    assert cond.normalization_ == {"mean": [0.0], "std": [1.0]}


# --------------------------------------------------------------- models
def test_mlp_on_flat_features(digits_flat, fast):
    X, y = digits_flat
    fast.update(model="mlp")
    cond = condensed(X, y, **fast)
    check_synthetic_set(cond, X)
    assert cond.model_ == "mlp"
    assert cond.input_shape_ is None
    assert cond.n_features_in_ == 64
    # Flat features are normalised per feature.
    assert len(cond.normalization_["mean"]) == 64


def test_auto_model_picks_mlp_for_flat_and_convnet_for_images(digits, digits_flat, fast):
    fast.update(model="auto")
    assert condensed(*digits_flat, **fast).model_ == "mlp"
    assert condensed(*digits, **fast).model_ == "convnet"


def test_convnet_on_flat_features_with_input_shape(digits_flat, fast):
    X, y = digits_flat
    fast.update(model="convnet", input_shape=(1, 8, 8))
    cond = condensed(X, y, **fast)
    check_synthetic_set(cond, X)
    assert cond.model_ == "convnet"
    assert cond.input_shape_ == (1, 8, 8)
    assert cond.n_features_in_ == 64
    assert len(cond.normalization_["mean"]) == 1


class TinyConv(nn.Module):
    def __init__(self, input_shape, n_classes):
        super().__init__()
        c, h, w = input_shape
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.fc = nn.Linear(4 * h * w, n_classes)

    def embed(self, x):
        return torch.relu(self.conv(x)).flatten(1)

    def forward(self, x):
        return self.fc(self.embed(x))


def test_model_factory(digits, fast):
    X, y = digits
    calls = []

    def factory(input_shape, n_classes):
        calls.append((input_shape, n_classes))
        return TinyConv(input_shape, n_classes)

    fast.update(model=factory, iterations=2)
    cond = condensed(X, y, **fast)
    check_synthetic_set(cond, X)
    assert cond.model_ == "custom"
    assert len(calls) >= 2  # at least one fresh network per iteration
    assert set(calls) == {((1, 8, 8), 10)}


# --------------------------------------------------------------- reproducibility
@pytest.fixture(scope="module")
def repro_fits(digits):
    X, y = digits
    params = dict(ipc=2, iterations=2, matching_steps=2, network_steps=1, schedule="fixed",
                  batch_real=16, model="convnet", device="cpu")
    return [condensed(X, y, random_state=seed, **params).X_syn_ for seed in (0, 0, 1)]


def test_same_random_state_same_set(repro_fits):
    assert np.array_equal(repro_fits[0], repro_fits[1])


def test_different_random_state_different_set(repro_fits):
    assert not np.array_equal(repro_fits[0], repro_fits[2])
    assert not np.allclose(repro_fits[0], repro_fits[2])


def test_result_does_not_depend_on_global_seeds(digits, fast):
    X, y = digits
    fast.update(iterations=2, matching_steps=2, network_steps=1)
    torch.manual_seed(123)
    np.random.seed(123)
    a = condensed(X, y, **fast).X_syn_
    torch.manual_seed(321)
    np.random.seed(321)
    b = condensed(X, y, **fast).X_syn_
    assert np.array_equal(a, b)


def test_random_state_instance_is_accepted(digits, fast):
    X, y = digits
    fast["random_state"] = np.random.RandomState(0)
    a = condensed(X, y, **fast).X_syn_
    fast["random_state"] = 0
    b = condensed(X, y, **fast).X_syn_
    # RandomState(0) and 0 seed the same way, as in scikit-learn.
    assert np.array_equal(a, b)


def test_numpy_global_rng_untouched(digits, fast):
    X, y = digits
    np.random.seed(7)
    before = np.random.get_state()
    condensed(X, y, **fast)
    after = np.random.get_state()
    assert np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_torch_global_rng_untouched(digits, fast):
    X, y = digits
    for model in ("mlp", "convnet"):
        torch.manual_seed(7)
        before = torch.get_rng_state().clone()
        fast.update(model=model)
        condensed(X, y, **fast)
        assert torch.equal(before, torch.get_rng_state()), model


# --------------------------------------------------------------- labels
def test_string_labels_come_back_as_strings(digits, fast):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    y_str = names[y]
    cond = condensed(X, y_str, ipc=2, **fast)
    X_syn, y_syn = cond.transform()
    assert y_syn.dtype.kind == y_str.dtype.kind == "U"
    np.testing.assert_array_equal(cond.classes_, np.sort(names))
    np.testing.assert_array_equal(y_syn, np.repeat(cond.classes_, 2))
    # A plain list of strings too: a list comes back (imbalanced-learn's convention).
    cond = condensed(X, y_str.tolist(), **fast)
    labels = cond.transform()[1]
    assert isinstance(labels, list) and all(isinstance(v, str) for v in labels)
    assert set(labels) == set(names)


def test_integer_labels_keep_their_values(digits, fast):
    X, y = digits
    y_big = (y + 1) * 10
    cond = condensed(X, y_big, ipc=2, **fast)
    _, y_syn = cond.transform()
    np.testing.assert_array_equal(cond.classes_, np.arange(10, 101, 10))
    np.testing.assert_array_equal(y_syn, np.repeat(np.arange(10, 101, 10), 2))
    assert y_syn.dtype.kind == "i"


def test_labels_in_classes_order_even_when_unsorted_input(digits, fast):
    X, y = digits
    perm = np.random.default_rng(0).permutation(len(y))
    cond = condensed(X[perm], y[perm], ipc=3, **fast)
    np.testing.assert_array_equal(cond.transform()[1], np.repeat(np.arange(10), 3))


# --------------------------------------------------------------- dtypes and scale
def test_uint8_input_gives_float32_in_the_0_255_scale(digits_uint8, fast):
    X, y = digits_uint8
    cond = condensed(X, y, ipc=2, **fast)
    X_syn, _ = cond.transform()
    assert X_syn.dtype == np.float32
    assert X_syn.shape == (20, 8, 8)
    # Not rounded: a learned set is not a set of integers.
    assert np.mean(np.abs(X_syn - np.round(X_syn)) > 1e-3) > 0.5
    # In the 0..255 scale, not 0..1 or normalised: the statistics are those of X.
    assert cond.normalization_["mean"][0] == pytest.approx(X.astype(np.float64).mean())
    assert cond.normalization_["std"][0] == pytest.approx(X.astype(np.float64).std())
    assert 20 < X_syn.std() < 300
    assert -150 < X_syn.mean() < 300


def test_uint8_input_real_init_stays_in_range(digits_uint8, fast):
    X, y = digits_uint8
    fast.update(init="real", lr_syn=1e-3, momentum_syn=0.0)
    X_syn, _ = condensed(X, y, ipc=2, **fast).transform()
    assert X_syn.dtype == np.float32
    # Started from real 0..255 images and moved a little.
    assert -10 < X_syn.min() and X_syn.max() < 265
    assert X_syn.max() > 100


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_kept(digits, fast, dtype):
    X, y = digits
    X_syn, _ = condensed(X.astype(dtype), y, **fast).transform()
    assert X_syn.dtype == dtype


# --------------------------------------------------------------- layouts
def test_flat_with_input_shape_returns_flat(digits_flat, fast):
    X, y = digits_flat
    fast.update(input_shape=(1, 8, 8))
    X_syn, _ = condensed(X, y, ipc=2, **fast).transform()
    assert X_syn.shape == (20, 64)


def test_grey_images_return_grey_images(digits, fast):
    X, y = digits
    X_syn, _ = condensed(X, y, ipc=2, **fast).transform()
    assert X_syn.shape == (20, 8, 8)


@pytest.mark.parametrize("channels", [1, 3])
def test_channel_first_images_return_channel_first(digits, fast, channels):
    X, y = digits
    X4 = np.stack([X, 16.0 - X, X.transpose(0, 2, 1)][:channels], axis=1)
    fast.update(model="convnet")
    cond = condensed(X4, y, ipc=2, **fast)
    X_syn, _ = cond.transform()
    assert X_syn.shape == (20, channels, 8, 8)
    assert cond.input_shape_ == (channels, 8, 8)
    assert len(cond.normalization_["mean"]) == channels
    assert cond.normalization_["mean"] == pytest.approx(X4.mean(axis=(0, 2, 3)).tolist())


# --------------------------------------------------------------- torch inputs
def test_torch_tensors_in_give_cpu_tensors_out(digits, fast):
    X, y = digits
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y)
    cond = condensed(Xt, yt, ipc=2, **fast)
    X_syn, y_syn = cond.transform()
    assert isinstance(X_syn, torch.Tensor) and X_syn.device.type == "cpu"
    assert X_syn.dtype == torch.float32 and X_syn.shape == (20, 8, 8)
    assert isinstance(y_syn, torch.Tensor)
    assert y_syn.tolist() == np.repeat(np.arange(10), 2).tolist()
    # Same numbers as from numpy float32 input.
    ref, _ = condensed(X.astype(np.float32), y, ipc=2, **fast).transform()
    np.testing.assert_allclose(X_syn.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_torch_uint8_tensor_gives_float32_tensor(digits_uint8, fast):
    X, y = digits_uint8
    X_syn, _ = condensed(torch.from_numpy(X), y, **fast).transform()
    assert isinstance(X_syn, torch.Tensor) and X_syn.dtype == torch.float32


def test_tensor_dataset_of_pairs(digits, fast):
    X, y = digits
    ds = torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    cond = condensed(ds, None, ipc=2, **fast)
    X_syn, y_syn = cond.transform()
    assert tuple(X_syn.shape) == (20, 8, 8)
    assert np.all(np.isfinite(np.asarray(X_syn)))
    assert np.asarray(y_syn).tolist() == np.repeat(np.arange(10), 2).tolist()
    np.testing.assert_array_equal(cond.classes_, np.arange(10))


# --------------------------------------------------------------- interface details
def test_fit_returns_self_and_fit_resample_matches(digits, fast):
    X, y = digits
    cond = GradientMatchingCondenser(**fast)
    assert cond.fit(X, y) is cond
    X_a, y_a = cond.transform()
    X_b, y_b = GradientMatchingCondenser(**fast).fit_resample(X, y)
    np.testing.assert_array_equal(X_a, X_b)
    np.testing.assert_array_equal(y_a, y_b)


def test_transform_returns_copies(digits, fast):
    X, y = digits
    cond = condensed(X, y, **fast)
    X_a, y_a = cond.transform()
    X_a[...] = -1
    y_a[...] = 99
    X_b, y_b = cond.transform()
    assert not np.any(X_b == -1)
    np.testing.assert_array_equal(y_b, np.arange(10))


def test_callback_can_stop_early(digits, fast):
    X, y = digits
    seen = []

    def callback(k, record):
        seen.append(k)
        assert {"loss", "seconds", "network_steps", "rule"} <= set(record)
        return k == 1

    fast.update(iterations=5, callback=callback)
    cond = condensed(X, y, **fast)
    assert seen == [0, 1]
    assert cond.n_iter_ == 2
    assert len(cond.history_["loss"]) == 2


def test_verbose_progress_bar_runs(digits, fast, capsys):
    X, y = digits
    fast.update(verbose=1, iterations=2)
    cond = condensed(X, y, **fast)
    assert cond.n_iter_ == 2


def test_input_is_not_modified(digits_uint8, digits, fast):
    for X, y in (digits, digits_uint8):
        X_copy, y_copy = X.copy(), y.copy()
        condensed(X, y, init="real", **fast)
        np.testing.assert_array_equal(X, X_copy)
        np.testing.assert_array_equal(y, y_copy)


def test_small_class_warns_and_fits_with_real_init(digits, fast):
    X, y = digits
    keep = np.ones(len(y), bool)
    keep[np.flatnonzero(y == 3)[2:]] = False  # class 3 keeps 2 samples
    fast.update(init="real", lr_syn=1e-12, momentum_syn=0.0)
    # The message names the class (numpy may show it as np.int64(3)) and its size.
    with pytest.warns(UserWarning, match=r"fewer than ipc=3 real samples \(.*3\)? has 2\)"):
        cond = condensed(X[keep], y[keep], ipc=3, **fast)
    X_syn, y_syn = check_synthetic_set(cond, X, ipc=3)
    # The class's two images are both used, then one is repeated.
    class3 = X[keep][y[keep] == 3].reshape(2, -1)
    got = X_syn[y_syn == 3].reshape(3, -1)
    for row in got:
        assert np.abs(class3 - row).max(axis=1).min() < 1e-4
    for real in class3:
        assert np.abs(got - real).max(axis=1).min() < 1e-4


def test_no_warning_for_normal_fit(digits, fast):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        condensed(X, y, **fast)


def test_small_class_warning_points_at_the_caller(digits, fast):
    X, y = digits
    keep = np.ones(len(y), bool)
    keep[np.flatnonzero(y == 3)[2:]] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GradientMatchingCondenser(ipc=3, **fast).fit(X[keep], y[keep])
    assert [w.filename for w in caught if w.category is UserWarning] == [__file__]


# --------------------------------------------------------------- GPU (skipped on CPU-only machines)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_returns_cpu_output(digits, fast):
    X, y = digits
    fast.update(device="cuda")
    X_syn, y_syn = condensed(X, y, ipc=2, **fast).transform()
    assert isinstance(X_syn, np.ndarray) and X_syn.shape == (20, 8, 8)
    Xt = torch.tensor(X, dtype=torch.float32, device="cuda")
    X_syn, _ = condensed(Xt, y, ipc=2, **fast).transform()
    assert isinstance(X_syn, torch.Tensor) and X_syn.device.type == "cpu"
    torch.cuda.manual_seed(3)
    before = torch.cuda.get_rng_state()
    condensed(X, y, **fast)
    assert torch.equal(before, torch.cuda.get_rng_state())


def test_as_tensor_dataset(digits, fast):
    X, y = digits
    names = np.array(list("abcdefghij"))[y]
    est = GradientMatchingCondenser(ipc=2, **fast).fit(X, names)
    ds = est.as_tensor_dataset()
    images, codes = ds.tensors
    assert images.shape == (20, 1, 8, 8) and images.dtype == torch.float32
    assert codes.dtype == torch.long
    np.testing.assert_array_equal(est.classes_[codes.numpy()], est.y_syn_)
    np.testing.assert_allclose(images.numpy().reshape(20, 8, 8), est.X_syn_, rtol=1e-6)
