"""Multi-formation sets (``factor``): decode, pack, the mix initialisation, and fits that use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser, load_set, save_set
from gradmatch.formation import check_factor, decode, decode_array, decoded_labels, pack, part_bounds

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = dict(iterations=2, matching_steps=2, network_steps=1, schedule="fixed", batch_real=16, model="convnet",
            device="cpu", random_state=0, input_shape=(1, 8, 8))


# ---------------------------------------------------------------- pure pieces
@given(size=st.integers(1, 64), factor=st.integers(1, 8))
def test_parts_tile_the_side_and_differ_by_at_most_one_pixel(size, factor):
    if factor > size:
        return
    bounds = part_bounds(size, factor)
    assert len(bounds) == factor and bounds[0][0] == 0 and bounds[-1][1] == size
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:]))  # contiguous
    lengths = [stop - start for start, stop in bounds]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] - lengths[-1] <= 1


def test_factor_one_decodes_to_the_same_tensor():
    stored = torch.randn(3, 2, 5, 7)
    assert decode(stored, 1) is stored
    assert pack(stored, 1) is stored
    assert decoded_labels(torch.tensor([0, 1]), 1).tolist() == [0, 1]


@pytest.mark.parametrize("factor, shape", [(2, (3, 1, 8, 8)), (3, (2, 3, 28, 28)), (2, (2, 1, 9, 7)),
                                           (3, (1, 2, 10, 11))])
def test_each_decoded_image_is_its_part_resized(factor, shape):
    """A stored image whose parts are constants decodes into images of those constants, in order."""
    n, channels, height, width = shape
    values = torch.randn(n, factor * factor, channels)
    stored = torch.empty(shape)
    for i, (r0, r1) in enumerate(part_bounds(height, factor)):
        for j, (c0, c1) in enumerate(part_bounds(width, factor)):
            stored[:, :, r0:r1, c0:c1] = values[:, i * factor + j, :, None, None]
    decoded = decode(stored, factor)
    assert decoded.shape == (n * factor * factor, channels, height, width)
    expected = values.reshape(n * factor * factor, channels, 1, 1).expand_as(decoded)
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-6)
    labels = decoded_labels(torch.arange(n), factor)
    assert labels.tolist() == [k for k in range(n) for _ in range(factor * factor)]


def test_a_decoded_part_is_the_bilinear_resize_of_that_part():
    stored = torch.randn(2, 3, 9, 9)
    decoded = decode(stored, 2)
    # part (1, 0) of stored image 1: rows 5..9, columns 0..5
    want = F.interpolate(stored[1:2, :, 5:9, 0:5], size=(9, 9), mode="bilinear", align_corners=False)
    torch.testing.assert_close(decoded[1 * 4 + 1 * 2 + 0], want[0], rtol=0, atol=0)


@pytest.mark.parametrize("factor", [2, 3])
def test_decode_is_differentiable(factor):
    stored = torch.randn(2, 1, 7, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: decode(t, factor), (stored,))


@settings(max_examples=25, deadline=None)
@given(factor=st.integers(2, 4), height=st.integers(4, 20), width=st.integers(4, 20), seed=st.integers(0, 99))
def test_the_gradient_reaches_every_stored_pixel(factor, height, width, seed):
    if factor > min(height, width):
        return
    stored = torch.zeros(1, 2, height, width, requires_grad=True)
    weights = torch.rand((factor * factor, 2, height, width), generator=torch.Generator().manual_seed(seed)) + 0.1
    (decode(stored, factor) * weights).sum().backward()
    assert bool((stored.grad != 0).all())


@pytest.mark.parametrize("factor, size", [(2, 8), (3, 28), (2, 9)])
def test_pack_places_each_image_shrunk_in_its_part(factor, size):
    images = torch.randn(2 * factor * factor, 3, size, size)
    stored = pack(images, factor)
    assert stored.shape == (2, 3, size, size)
    bounds = part_bounds(size, factor)
    for k in range(2):
        for i, (r0, r1) in enumerate(bounds):
            for j, (c0, c1) in enumerate(bounds):
                want = F.interpolate(images[k * factor * factor + i * factor + j][None], size=(r1 - r0, c1 - c0),
                                     mode="bilinear", align_corners=False, antialias=True)[0]
                torch.testing.assert_close(stored[k, :, r0:r1, c0:c1], want, rtol=0, atol=0)


def test_pack_then_decode_gives_constant_images_back_in_order():
    values = torch.randn(8, 1)
    images = values[:, :, None, None].expand(8, 1, 8, 8).contiguous()
    torch.testing.assert_close(decode(pack(images, 2), 2), images, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of factor"):
        pack(images[:7], 2)


@pytest.mark.parametrize("layout", [(64,), (8, 8), (1, 8, 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_array_keeps_layout_and_dtype(layout, dtype):
    X = np.random.default_rng(0).normal(size=(3,) + layout).astype(dtype)
    out = decode_array(X, 2, (1, 8, 8))
    assert out.shape == (12,) + layout and out.dtype == dtype
    want = decode(torch.from_numpy(X.reshape(3, 1, 8, 8)), 2).numpy().reshape((12,) + layout)
    np.testing.assert_array_equal(out, want)
    same = decode_array(X, 1, (1, 8, 8))
    np.testing.assert_array_equal(same, X)
    assert same is not X


def test_check_factor_says_what_to_do():
    check_factor(1, None)
    check_factor(8, (1, 8, 8))
    with pytest.raises(ValueError, match="flat features. Pass input_shape"):
        check_factor(2, None)
    with pytest.raises(ValueError, match="use factor <= 7"):
        check_factor(8, (3, 7, 9))


# ---------------------------------------------------------------- fits
@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return GradientMatchingCondenser(ipc=2, factor=2, init="mix", **FAST).fit(X.reshape(len(X), -1), y)


def test_a_factor_two_fit_returns_the_decoded_set(fitted):
    assert fitted.X_stored_.shape == (20, 64) and fitted.X_syn_.shape == (80, 64)
    assert fitted.factor_ == 2
    assert fitted.y_stored_.tolist() == np.repeat(np.arange(10), 2).tolist()
    assert fitted.y_syn_.tolist() == np.repeat(np.arange(10), 8).tolist()
    assert fitted.sampling_strategy_ == {c: 8 for c in range(10)}
    X_syn, y_syn = fitted.transform()
    np.testing.assert_array_equal(X_syn, decode_array(fitted.X_stored_, 2, (1, 8, 8)))
    np.testing.assert_array_equal(y_syn, fitted.y_syn_)


def test_a_factor_two_fit_is_deterministic(digits, fitted):
    X, y = digits
    again = GradientMatchingCondenser(ipc=2, factor=2, init="mix", **FAST).fit(X.reshape(len(X), -1), y)
    np.testing.assert_array_equal(again.X_stored_, fitted.X_stored_)
    other = GradientMatchingCondenser(ipc=2, factor=2, init="mix", **{**FAST, "random_state": 1}).fit(
        X.reshape(len(X), -1), y)
    assert not np.array_equal(other.X_stored_, fitted.X_stored_)


def test_factor_one_is_the_plain_method(digits):
    X, y = digits
    plain = GradientMatchingCondenser(ipc=1, **FAST).fit(X, y)
    one = GradientMatchingCondenser(ipc=1, factor=1, **FAST).fit(X, y)
    np.testing.assert_array_equal(one.X_syn_, plain.X_syn_)
    np.testing.assert_array_equal(one.X_stored_, plain.X_syn_)
    # mix with factor 1 is real initialisation: one real image per stored one
    mix = GradientMatchingCondenser(ipc=1, init="mix", **FAST).fit(X, y)
    real = GradientMatchingCondenser(ipc=1, init="real", **FAST).fit(X, y)
    np.testing.assert_array_equal(mix.X_syn_, real.X_syn_)


def test_the_mix_initialisation_packs_real_images_of_the_class(digits):
    """Before any real update (a vanishing learning rate), every part is a shrunk real image of its class."""
    X, y = digits
    est = GradientMatchingCondenser(ipc=2, factor=2, init="mix", **{**FAST, "iterations": 1, "lr_syn": 1e-30}).fit(X, y)
    shrunk = F.interpolate(torch.from_numpy(X[:, None].astype(np.float32)), size=(4, 4), mode="bilinear",
                           align_corners=False, antialias=True)[:, 0].numpy()
    for k, image in enumerate(est.X_stored_):
        c = est.y_stored_[k]
        for r in (0, 4):
            for s in (0, 4):
                part = image[r:r + 4, s:s + 4]
                gaps = np.abs(shrunk - part).reshape(len(X), -1).max(axis=1)
                assert y[np.argmin(gaps)] == c and gaps.min() < 1e-4


def test_factor_two_checkpoints_and_resumes_bit_for_bit(digits, tmp_path):
    X, y = digits
    params = dict(ipc=1, factor=2, init="mix", checkpoint=tmp_path, checkpoint_every=1,
                  **{**FAST, "iterations": 3})
    whole = GradientMatchingCondenser(**{**params, "checkpoint": None}).fit(X, y)
    GradientMatchingCondenser(**{**params, "iterations": 1}).fit(X, y)
    resumed = GradientMatchingCondenser(**params).fit(X, y)
    np.testing.assert_array_equal(resumed.X_stored_, whole.X_stored_)
    # factor is part of the key: factor 3 does not pick up factor 2's checkpoint
    other = GradientMatchingCondenser(**{**params, "factor": 3, "iterations": 1}).fit(X, y)
    assert other.n_iter_ == 1


def test_warm_start_continues_and_refuses_another_factor(digits):
    X, y = digits
    whole = GradientMatchingCondenser(ipc=1, factor=2, **{**FAST, "iterations": 2}).fit(X, y)
    est = GradientMatchingCondenser(ipc=1, factor=2, warm_start=True, **{**FAST, "iterations": 1}).fit(X, y)
    est.set_params(iterations=2).fit(X, y)
    np.testing.assert_array_equal(est.X_stored_, whole.X_stored_)
    before = est.X_syn_.copy()
    with pytest.raises(ValueError, match="factor=2 formations; factor=3"):
        est.set_params(factor=3, iterations=3).fit(X, y)
    np.testing.assert_array_equal(est.X_syn_, before)


def test_saved_and_loaded_sets_decode_the_same_way(fitted, tmp_path):
    path = save_set(tmp_path / "f2.npz", fitted)
    raw = np.load(path)
    assert int(raw["format_version"]) == 2 and int(raw["formation.factor"]) == 2
    assert raw["X"].shape == (20, 64)  # the stored form, a quarter of the decoded one
    loaded = load_set(path)
    assert loaded.factor == 2
    np.testing.assert_array_equal(loaded.X, fitted.X_syn_)
    np.testing.assert_array_equal(loaded.y, fitted.y_syn_)
    np.testing.assert_array_equal(loaded.X_stored, fitted.X_stored_)
    images, codes = loaded.as_tensor_dataset()[:]
    assert tuple(images.shape) == (80, 1, 8, 8) and codes.tolist() == np.repeat(np.arange(10), 8).tolist()


def test_a_plain_set_stays_format_version_one(digits, tmp_path):
    X, y = digits
    est = GradientMatchingCondenser(ipc=1, **{**FAST, "iterations": 1}).fit(X, y)
    raw = np.load(save_set(tmp_path / "f1.npz", est))
    assert int(raw["format_version"]) == 1 and "formation.factor" not in raw.files
    loaded = load_set(tmp_path / "f1.npz")
    assert loaded.factor == 1 and loaded.X_stored is loaded.X


@pytest.mark.parametrize("entry, match", [(np.array(1), "integer >= 2"), (np.array(9), "both sides >= 9"),
                                          (np.array([2, 2]), "integer >= 2")])
def test_a_bad_factor_entry_is_refused(fitted, tmp_path, entry, match):
    path = save_set(tmp_path / "f2.npz", fitted)
    arrays = dict(np.load(path))
    arrays["formation.factor"] = entry
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        load_set(path)


def test_flat_features_and_too_large_a_factor_are_refused_before_work(digits):
    X, y = digits
    flat = X.reshape(len(X), -1)
    with pytest.raises(ValueError, match="flat features"):
        GradientMatchingCondenser(ipc=1, factor=2, **{**FAST, "input_shape": None, "model": "mlp"}).fit(flat, y)
    with pytest.raises(ValueError, match="use factor <= 8"):
        GradientMatchingCondenser(ipc=1, factor=9, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="factor"):
        GradientMatchingCondenser(factor=0).fit(X, y)


def test_distribution_matching_with_factor_two(digits):
    X, y = digits
    dm = DistributionMatchingCondenser(ipc=1, factor=2, init="mix", iterations=3, batch_real=16, augment=None,
                                       model="convnet", random_state=0).fit(X, y)
    assert dm.X_stored_.shape == (10, 8, 8) and dm.X_syn_.shape == (40, 8, 8)
    np.testing.assert_array_equal(dm.X_syn_, decode_array(dm.X_stored_, 2, (1, 8, 8)))


@pytest.mark.parametrize("match", ["intra", "inter", "interleaved"])
def test_every_matching_rule_and_the_adaptive_schedule_run_with_a_factor(digits, match):
    X, y = digits
    est = GradientMatchingCondenser(ipc={c: 1 + c % 2 for c in range(10)}, factor=3, match=match,
                                    augment="crop_scale_rotate",
                                    **{**FAST, "schedule": "adaptive", "network_steps": None}).fit(X, y)
    assert est.X_stored_.shape == (15, 8, 8) and est.X_syn_.shape == (135, 8, 8)
    assert np.isfinite(est.X_syn_).all()
