"""Tests of the differentiable siamese augmentation (gradmatch.augment, DSA).

Images are at most 16x16 and batches a handful, so the module runs in a few
seconds on two busy CPU cores. Parameters are either drawn from a seeded
``torch.Generator`` or written by hand (``fixed``) to check an operation's
exact effect.
"""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradmatch.augment import AUGMENT_OPS, DSA, DSA_STRATEGY, DSAParams, make_augment

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SHAPE = (3, 8, 8)

#: Hand-written parameters that make each operation do something visible.
FIXED = {
    "color": {"brightness": 0.3, "saturation": 1.4, "contrast": 0.8},
    "crop": {"shift_x": 1, "shift_y": -2},
    "cutout": {"centre_x": 2, "centre_y": 3},
    "flip": {"flip": True},
    "scale": {"scale_x": 1.13, "scale_y": 0.87},
    "rotate": {"angle": 12.5},
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fixed(op: str, shape=SHAPE, **values) -> DSAParams:
    """Shared (n=1) parameters for one op, FIXED[op] updated with ``values``."""
    vals = dict(FIXED[op], **values)
    return DSAParams(n=1, image_shape=tuple(shape), ops=(op,),
                     values={k: torch.tensor([v]) for k, v in vals.items()})


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def flat(params: DSAParams) -> torch.Tensor:
    return torch.cat([params.values[k].double().flatten() for k in sorted(params.values)])


def all_dsa(**kw) -> DSA:
    return DSA(mode="all", **kw)


# ---------------------------------------------------------------------------
# constants and the siamese property
# ---------------------------------------------------------------------------

def test_constants():
    assert AUGMENT_OPS == ("color", "crop", "cutout", "flip", "scale", "rotate")
    assert DSA_STRATEGY == "_".join(AUGMENT_OPS)
    assert DSA().ops == AUGMENT_OPS


SIAMESE_CASES = [DSA(strategy=op) for op in AUGMENT_OPS] + [all_dsa()]


@pytest.mark.parametrize("dsa", SIAMESE_CASES, ids=[*AUGMENT_OPS, "all"])
def test_shared_params_transform_the_same_image_alike_in_any_batch(dsa):
    params = dsa.sample(1, gen(3), image_shape=SHAPE)
    image = randn(1, *SHAPE, seed=1)
    real = torch.cat([randn(5, *SHAPE, seed=2), image])  # the image last in a big batch
    syn = torch.cat([image, randn(1, *SHAPE, seed=4)])   # first in a small one
    out_real, out_syn = dsa.apply(real, params), dsa.apply(syn, params)
    torch.testing.assert_close(out_real[5], out_syn[0], rtol=0, atol=1e-6)
    # Every image of the batch gets the transformation it would get alone.
    for i in range(len(real)):
        torch.testing.assert_close(out_real[i : i + 1], dsa.apply(real[i : i + 1], params),
                                   rtol=0, atol=1e-6)
    assert not torch.equal(out_real[5], image[0]) or dsa.ops == ("flip",)


@pytest.mark.parametrize("dsa", SIAMESE_CASES, ids=[*AUGMENT_OPS, "all"])
def test_same_seed_same_params_other_seed_other_params(dsa):
    a, b = dsa.sample(16, gen(7), image_shape=SHAPE), dsa.sample(16, gen(7), image_shape=SHAPE)
    c = dsa.sample(16, gen(8), image_shape=SHAPE)
    assert a.ops == b.ops and a.values.keys() == b.values.keys()
    assert torch.equal(flat(a), flat(b))
    assert a.ops != c.ops or not torch.equal(flat(a), flat(c))
    x = randn(16, *SHAPE)
    assert torch.equal(dsa(x, gen(7)), dsa(x, gen(7)))


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dsa", SIAMESE_CASES, ids=[*AUGMENT_OPS, "all"])
@pytest.mark.parametrize("n", [1, 4])
def test_gradient_reaches_the_input(dsa, n):
    x = randn(4, *SHAPE).requires_grad_(True)
    params = dsa.sample(n, gen(5), image_shape=SHAPE)
    w = randn(4, *SHAPE, seed=6)
    (dsa.apply(x, params) * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad != 0).any()
    if dsa.ops in (("color",), ("flip",)):
        assert (x.grad != 0).all()


@pytest.mark.parametrize("op", AUGMENT_OPS)
def test_autograd_matches_finite_differences(op):
    # Colour needs several channels for its saturation step to do anything.
    shape = (3, 6, 6) if op == "color" else (1, 6, 6)
    dsa = DSA(strategy=op)
    params = fixed(op, shape)
    x = randn(1, *shape, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: dsa.apply(t, params), (x,), eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------
# each operation does what it says
# ---------------------------------------------------------------------------

def test_flip_mirrors_the_width_exactly():
    dsa, x = DSA(strategy="flip"), randn(2, *SHAPE)
    assert torch.equal(dsa.apply(x, fixed("flip", flip=True)), x.flip(-1))
    assert torch.equal(dsa.apply(x, fixed("flip", flip=False)), x)
    per_image = DSAParams(2, SHAPE, ("flip",), {"flip": torch.tensor([False, True])})
    out = dsa.apply(x, per_image)
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], x[1].flip(-1))


def test_crop_translates_with_zero_fill():
    dsa, x = DSA(strategy="crop"), randn(2, 2, 5, 7)
    shape = (2, 5, 7)
    right = torch.zeros_like(x)
    right[..., :, 1:] = x[..., :, :-1]
    assert torch.equal(dsa.apply(x, fixed("crop", shape, shift_x=1, shift_y=0)), right)
    up_left = torch.zeros_like(x)
    up_left[..., :-2, :-1] = x[..., 2:, 1:]
    assert torch.equal(dsa.apply(x, fixed("crop", shape, shift_x=-1, shift_y=-2)), up_left)
    assert torch.equal(dsa.apply(x, fixed("crop", shape, shift_x=0, shift_y=0)), x)
    # A shift past the border leaves nothing (the one-pixel zero border is reused).
    assert torch.equal(dsa.apply(x, fixed("crop", shape, shift_x=9, shift_y=0)),
                       torch.zeros_like(x))


def test_cutout_zeroes_the_expected_square():
    shape = (2, 16, 16)
    x = 1.0 + torch.rand(1, *shape, generator=gen())  # no zeros of its own
    dsa = DSA(strategy="cutout", cutout=0.25)  # side int(16 * 0.25 + 0.5) = 4
    out = dsa.apply(x, fixed("cutout", shape, centre_x=8, centre_y=5))
    zero = out == 0
    assert int(zero.sum()) == 2 * 4 * 4
    assert zero[:, :, 3:7, 6:10].all()  # rows 5-2..5+1, columns 8-2..8+1
    torch.testing.assert_close(out[~zero], x[~zero], rtol=0, atol=0)
    # At a corner, the square is cut by the border.
    corner = dsa.apply(x, fixed("cutout", shape, centre_x=0, centre_y=15))
    assert int((corner == 0).sum()) == 2 * 2 * 3
    assert (corner[:, :, 13:, :2] == 0).all()
    # Sides round half up, each from its own dimension: int(10 * 0.25 + 0.5) = 3 rows,
    # int(14 * 0.25 + 0.5) = 4 columns.
    x = 1.0 + torch.rand(1, 1, 10, 14, generator=gen())
    out = dsa.apply(x, fixed("cutout", (1, 10, 14), centre_x=7, centre_y=5))
    assert int((out == 0).sum()) == 3 * 4 and (out[0, 0, 4:7, 5:9] == 0).all()


def test_unit_scale_and_zero_rotation_are_identities():
    x = randn(2, *SHAPE)
    out = DSA(strategy="scale").apply(x, fixed("scale", scale_x=1.0, scale_y=1.0))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)
    out = DSA(strategy="rotate").apply(x, fixed("rotate", angle=0.0))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


def test_scale_stretches_about_the_centre():
    # With align_corners=True, scale_x = 0.5 samples column j at (j - 2) * 0.5 + 2 (5 wide).
    x = torch.arange(5.0).expand(1, 1, 5, 5).contiguous()
    out = DSA(strategy="scale").apply(x, fixed("scale", (1, 5, 5), scale_x=0.5, scale_y=1.0))
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0]))


def test_rotate_90_degrees_turns_clockwise_like_rot90_k_minus_1():
    x = randn(2, 2, 7, 7)
    out = DSA(strategy="rotate").apply(x, fixed("rotate", (2, 7, 7), angle=90.0))
    torch.testing.assert_close(out, torch.rot90(x, k=-1, dims=(2, 3)), rtol=0, atol=1e-5)
    assert not torch.allclose(out, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-3)


def test_color_formulas_by_hand():
    dsa = DSA(strategy="color")
    # A constant image: saturation and contrast pull towards means equal to the pixel.
    const = torch.full((1, *SHAPE), 0.7)
    out = dsa.apply(const, fixed("color", brightness=0.25, saturation=1.7, contrast=0.6))
    torch.testing.assert_close(out, torch.full_like(const, 0.95))
    # Contrast alone: half the pixels 0, half 2, mean 1 -> 1 + (x - 1) * 0.6.
    two = torch.zeros(1, 1, 4, 4)
    two[..., :2, :] = 2.0
    out = dsa.apply(two, fixed("color", (1, 4, 4), brightness=0.0, saturation=1.0, contrast=0.6))
    torch.testing.assert_close(out, 1.0 + (two - 1.0) * 0.6)
    # Saturation alone: channels 0, 1, 2 at each pixel, channel mean 1 -> 1 + (x - 1) * 1.5.
    chans = torch.arange(3.0).view(1, 3, 1, 1).expand(1, 3, 4, 4).contiguous()
    out = dsa.apply(chans, fixed("color", (3, 4, 4), brightness=0.0, saturation=1.5,
                                 contrast=1.0))
    torch.testing.assert_close(out, 1.0 + (chans - 1.0) * 1.5)


sizes = st.integers(1, 16)
unit = st.floats(0.0, 1.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 5), h=sizes, w=sizes,
       scale=st.floats(1.0, 3.0), rotate=st.floats(0.0, 180.0), crop=st.floats(0.0, 0.49),
       brightness=st.floats(0.0, 3.0), saturation=st.floats(0.0, 3.0),
       contrast=st.floats(0.0, 3.0))
def test_sampled_parameters_stay_in_their_ranges(seed, n, h, w, scale, rotate, crop,
                                                 brightness, saturation, contrast):
    dsa = all_dsa(scale=scale, rotate=rotate, crop=crop, brightness=brightness,
                  saturation=saturation, contrast=contrast)
    p = dsa.sample(n, gen(seed), image_shape=(1, h, w))
    v = p.values
    assert p.n == n and p.ops == AUGMENT_OPS and all(len(t) == n for t in v.values())
    eps = 1e-6
    assert (v["brightness"].abs() <= brightness / 2 + eps).all()
    assert ((v["saturation"] >= 0) & (v["saturation"] <= saturation + eps)).all()
    assert ((v["contrast"] >= contrast) & (v["contrast"] <= contrast + 1 + eps)).all()
    px, py = int(w * crop + 0.5), int(h * crop + 0.5)
    assert (v["shift_x"].abs() <= px).all() and (v["shift_y"].abs() <= py).all()
    assert ((v["centre_x"] >= 0) & (v["centre_x"] < w)).all()
    assert ((v["centre_y"] >= 0) & (v["centre_y"] < h)).all()
    assert v["flip"].dtype == torch.bool
    for k in ("scale_x", "scale_y"):
        assert ((v[k] >= 1 / scale - eps) & (v[k] <= scale + eps)).all()
    assert (v["angle"].abs() <= rotate + eps).all()


# ---------------------------------------------------------------------------
# modes, per-image parameters, the global RNG
# ---------------------------------------------------------------------------

def test_single_mode_picks_each_strategy_op_and_only_those():
    dsa, g = DSA(strategy="crop_flip_rotate"), gen(0)
    seen = set()
    for _ in range(60):
        p = dsa.sample(1, g, image_shape=SHAPE)
        assert len(p.ops) == 1 and p.ops[0] in dsa.ops
        keys = {"crop": {"shift_x", "shift_y"}, "flip": {"flip"}, "rotate": {"angle"}}
        assert set(p.values) == keys[p.ops[0]]
        seen.add(p.ops[0])
    assert seen == {"crop", "flip", "rotate"}


def test_all_mode_applies_every_op_in_strategy_order():
    x = randn(1, *SHAPE)
    for strategy in ("crop_flip", "flip_crop"):
        dsa = all_dsa(strategy=strategy)
        p = dsa.sample(1, gen(0), image_shape=SHAPE)
        assert p.ops == tuple(strategy.split("_"))
        shift = fixed("crop", shift_x=1, shift_y=0)
        mirror = fixed("flip", flip=True)
        p = DSAParams(1, SHAPE, p.ops, {**shift.values, **mirror.values})
        first, second = (shift, mirror) if strategy == "crop_flip" else (mirror, shift)
        expected = dsa.apply(dsa.apply(x, first), second)
        assert torch.equal(dsa.apply(x, p), expected)
    # The two orders really differ, so the check above sees the order.
    a, b = all_dsa(strategy="crop_flip"), all_dsa(strategy="flip_crop")
    p = DSAParams(1, SHAPE, ("crop", "flip"), {**fixed("crop", shift_x=1, shift_y=0).values,
                                               "flip": torch.tensor([True])})
    q = DSAParams(1, SHAPE, ("flip", "crop"), p.values)
    assert not torch.equal(a.apply(x, p), b.apply(x, q))


def test_all_mode_flip_mirrors_some_images_and_keeps_others():
    x = randn(12, *SHAPE)
    out = all_dsa(strategy="flip")(x, gen(1))
    mirrored = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(m != k for m, k in zip(mirrored, kept))
    assert any(mirrored) and any(kept)


def test_per_image_params_differ_between_images():
    p = all_dsa().sample(8, gen(2), image_shape=SHAPE)
    for key, t in p.values.items():
        assert len(t) == 8
        if t.is_floating_point():
            assert len(torch.unique(t)) == 8, key
        else:
            assert len(torch.unique(t)) > 1, key
    same = randn(1, *SHAPE).expand(4, *SHAPE).contiguous()
    out = DSA(strategy="rotate")(same, gen(0))
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 4))


def test_param_count_and_shape_mismatch_raise():
    dsa, x = DSA(strategy="rotate"), randn(4, *SHAPE)
    assert dsa.apply(x, dsa.sample(4, gen(), image_shape=SHAPE)).shape == x.shape
    assert dsa.apply(x, dsa.sample(1, gen(), image_shape=SHAPE)).shape == x.shape
    with pytest.raises(ValueError, match="n=3"):
        dsa.apply(x, dsa.sample(3, gen(), image_shape=SHAPE))
    with pytest.raises(ValueError, match="drawn for images"):
        dsa.apply(x, dsa.sample(1, gen(), image_shape=(3, 8, 9)))
    with pytest.raises(ValueError, match="floating point"):
        dsa.apply(torch.zeros(4, *SHAPE, dtype=torch.int64),
                  dsa.sample(1, gen(), image_shape=SHAPE))
    with pytest.raises(ValueError, match="n must be"):
        dsa.sample(0, gen(), image_shape=SHAPE)
    with pytest.raises(ValueError, match="image_shape"):
        dsa.sample(1, gen(), image_shape=(8, 8))
    with pytest.raises(TypeError, match="Generator"):
        dsa.sample(1, 0, image_shape=SHAPE)


def test_global_rng_is_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    x, g = randn(4, *SHAPE), gen(0)
    for dsa in (DSA(), all_dsa()):
        for _ in range(10):
            dsa.apply(x, dsa.sample(1, g, image_shape=SHAPE))
            dsa(x, g)
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------------------
# dtype, device, shape
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 2, 7, 10), (2, 1, 28, 28)])
def test_dtype_device_and_shape_are_preserved(dtype, shape):
    x = randn(*shape, dtype=dtype)
    for strategy in AUGMENT_OPS + (DSA_STRATEGY,):
        out = all_dsa(strategy=strategy)(x, gen(0))
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generator_and_tensors_stay_on_the_device():
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(4, *SHAPE, device="cuda", requires_grad=True)
    dsa = all_dsa()
    p = dsa.sample(1, g, image_shape=SHAPE)
    assert all(t.device.type == "cuda" for t in p.values.values())
    out = dsa.apply(x, p)
    out.sum().backward()
    assert out.device == x.device and torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------
# validation, make_augment, pickling
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["colour", "crop_blur", "crop__flip", "Crop"])
def test_unknown_op_names_are_rejected_with_the_valid_ones(strategy):
    with pytest.raises(ValueError) as err:
        DSA(strategy=strategy)
    msg = str(err.value)
    assert "unknown augmentation" in msg and all(op in msg for op in AUGMENT_OPS)


@pytest.mark.parametrize("strategy", ["", None, 3, ("crop",)])
def test_empty_or_non_str_strategy_is_rejected(strategy):
    with pytest.raises(ValueError, match="strategy"):
        DSA(strategy=strategy)


@pytest.mark.parametrize("mode", ["S", "both", None])
def test_bad_mode_lists_the_valid_ones(mode):
    with pytest.raises(ValueError, match="mode") as err:
        DSA(mode=mode)
    assert "'single'" in str(err.value) and "'all'" in str(err.value)


@pytest.mark.parametrize("name, value", [
    ("scale", 0.99), ("scale", math.nan), ("scale", math.inf), ("rotate", -1.0),
    ("rotate", 180.5), ("crop", 0.5), ("crop", -0.01), ("cutout", 1.01), ("cutout", -0.1),
    ("brightness", -0.1), ("saturation", math.inf), ("contrast", math.nan),
])
def test_bad_numeric_settings_name_the_parameter(name, value):
    with pytest.raises(ValueError, match=name):
        DSA(**{name: value})


@pytest.mark.parametrize("name, value", [("scale", "1.2"), ("rotate", None), ("crop", True)])
def test_non_numeric_settings_are_type_errors(name, value):
    with pytest.raises(TypeError, match=name):
        DSA(**{name: value})


def test_boundary_settings_are_accepted():
    dsa = DSA(scale=1, rotate=180, crop=0, cutout=0, brightness=0, saturation=0, contrast=0)
    assert dsa.scale == 1.0 and isinstance(dsa.scale, float)
    DSA(cutout=1.0, crop=0.49)


def test_make_augment_accepted_inputs():
    assert make_augment(None) is None
    assert make_augment("none") is None
    assert make_augment("dsa") == DSA()
    assert make_augment("crop") == DSA(strategy="crop")
    no_flip = "color_crop_cutout_scale_rotate"
    assert make_augment(no_flip) == DSA(strategy=no_flip)
    custom = DSA(mode="all", rotate=30)
    assert make_augment(custom) is custom


@pytest.mark.parametrize("augment", ["DSA", "", "blur", "crop_blur", "crop__flip"])
def test_make_augment_rejected_strings(augment):
    with pytest.raises(ValueError) as err:
        make_augment(augment)
    msg = str(err.value)
    assert "'dsa'" in msg and "gradmatch.augment.DSA" in msg and "joined by '_'" in msg


@pytest.mark.parametrize("augment", [3, True, ["crop"], DSA])
def test_make_augment_rejected_types(augment):
    with pytest.raises(TypeError, match="gradmatch.augment.DSA"):
        make_augment(augment)


def test_pickle_repr_and_equality():
    dsa = DSA(strategy="crop_flip", mode="all", scale=1.5, cutout=0.25)
    clone = pickle.loads(pickle.dumps(dsa))
    assert clone == dsa and hash(clone) == hash(dsa) and repr(clone) == repr(dsa)
    assert repr(dsa).startswith("DSA(strategy='crop_flip', mode='all', scale=1.5,")
    assert eval(repr(dsa), {"DSA": DSA}) == dsa
    assert dsa != DSA() and dsa != DSA(strategy="crop_flip", mode="all", scale=1.5)
    assert dsa != "crop_flip"
