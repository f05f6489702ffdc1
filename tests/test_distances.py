"""Tests of the layer-wise gradient distances (docs/design.md section 2, paper eqs. 7-9).

Property tests use float64 rows whose norm is at least 1e-2 and a tolerance of
1e-4. The angle term d1 carries the ``+ 1e-6`` of DC in its denominator, so its
"exact" identities (0 with a positive multiple, 2 with the negation) only hold
up to ``1e-6 / (|a||b|)``: those identities are checked against the exact
closed form at norm >= 1e-2, and within 1e-4 where ``|a||b| >= 1e-2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gradmatch.distances import (
    ANGLE_EPS,
    DISTANCE_TERMS,
    LayerwiseDistance,
    angle_rows,
    euclidean_rows,
    make_distance,
    mse_rows,
    parse_distance,
    sse_rows,
)

TOL = 1e-4
MIN_NORM = 1e-2
VALID_NAMES = ("cos", "l2", "sse", "mse")


pytestmark = pytest.mark.usefixtures("torch_single_thread")


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

_finite = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)


@st.composite
def row_pairs(draw, min_norm=MIN_NORM, max_rows=4, max_len=6):
    """Two float64 ``(out, n)`` tensors of the same shape, every row of norm >= min_norm."""
    out = draw(st.integers(1, max_rows))
    n = draw(st.integers(1, max_len))
    a = np.array(draw(st.lists(_finite, min_size=out * n, max_size=out * n))).reshape(out, n)
    b = np.array(draw(st.lists(_finite, min_size=out * n, max_size=out * n))).reshape(out, n)
    assume(np.all(np.linalg.norm(a, axis=1) >= min_norm))
    assume(np.all(np.linalg.norm(b, axis=1) >= min_norm))
    return torch.from_numpy(a), torch.from_numpy(b)


@st.composite
def rows(draw, min_norm=MIN_NORM, max_rows=4, max_len=6):
    return draw(row_pairs(min_norm=min_norm, max_rows=max_rows, max_len=max_len))[0]


positive_scale = st.floats(min_value=0.1, max_value=10.0, allow_nan=False)

# ---------------------------------------------------------------------------
# per-row terms
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(a=rows(), s=positive_scale)
def test_angle_positive_multiple_matches_closed_form(a, s):
    # d1(a, s a) = 1 - s|a|^2 / (s|a|^2 + eps) = eps / (s|a|^2 + eps): the only
    # departure from 0 is DC's epsilon.
    sq = (a * a).sum(dim=1)
    expected = ANGLE_EPS / (s * sq + ANGLE_EPS)
    got = angle_rows(a, s * a)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)
    # With itself (s = 1).
    torch.testing.assert_close(angle_rows(a, a), ANGLE_EPS / (sq + ANGLE_EPS), rtol=1e-6, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=rows(), s=positive_scale)
def test_angle_negation_matches_closed_form(a, s):
    sq = (a * a).sum(dim=1)
    expected = 1.0 + s * sq / (s * sq + ANGLE_EPS)
    torch.testing.assert_close(angle_rows(a, -s * a), expected, rtol=1e-6, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=rows(min_norm=0.1), s=st.floats(min_value=1.0, max_value=10.0))
def test_angle_self_multiple_and_negation_within_tolerance(a, s):
    # |a| >= 0.1 and s >= 1 give |a||s a| >= 1e-2, so eps / (|a||b|) <= 1e-4.
    zeros = torch.zeros(a.shape[0], dtype=a.dtype)
    twos = torch.full((a.shape[0],), 2.0, dtype=a.dtype)
    torch.testing.assert_close(angle_rows(a, a), zeros, rtol=0, atol=TOL)
    torch.testing.assert_close(angle_rows(a, s * a), zeros, rtol=0, atol=TOL)
    torch.testing.assert_close(angle_rows(s * a, a), zeros, rtol=0, atol=TOL)
    torch.testing.assert_close(angle_rows(a, -a), twos, rtol=0, atol=TOL)
    torch.testing.assert_close(angle_rows(a, -s * a), twos, rtol=0, atol=TOL)


@settings(max_examples=60, deadline=None)
@given(pair=row_pairs())
def test_angle_matches_hand_formula_and_is_in_range(pair):
    a, b = pair
    an, bn = a.numpy(), b.numpy()
    expected = 1.0 - (an * bn).sum(1) / (np.linalg.norm(an, axis=1) * np.linalg.norm(bn, axis=1) + 1e-6)
    np.testing.assert_allclose(angle_rows(a, b).numpy(), expected, rtol=0, atol=1e-10)
    d1 = angle_rows(a, b)
    assert torch.all(d1 >= -TOL) and torch.all(d1 <= 2.0 + TOL)


def test_zero_row_has_angle_one():
    zero = torch.zeros(1, 5, dtype=torch.float64)
    other = torch.tensor([[1.0, -2.0, 3.0, 0.5, 4.0]], dtype=torch.float64)
    assert angle_rows(zero, other).item() == 1.0
    assert angle_rows(other, zero).item() == 1.0
    assert angle_rows(zero, zero).item() == 1.0
    # No NaN from 0/0, and a mixed batch keeps the other rows' values.
    mixed_a = torch.cat([zero, other])
    mixed_b = torch.cat([other, other])
    out = angle_rows(mixed_a, mixed_b)
    assert out[0].item() == 1.0
    assert abs(out[1].item()) < TOL


@settings(max_examples=60, deadline=None)
@given(pair=row_pairs())
@pytest.mark.parametrize("name", VALID_NAMES)
def test_every_term_is_symmetric(name, pair):
    a, b = pair
    fn = DISTANCE_TERMS[name]
    torch.testing.assert_close(fn(a, b), fn(b, a), rtol=0, atol=TOL)


@settings(max_examples=60, deadline=None)
@given(pair=row_pairs())
def test_l2_is_sqrt_of_sse_and_mse_is_sse_over_len(pair):
    a, b = pair
    d2, d3, d4 = euclidean_rows(a, b), sse_rows(a, b), mse_rows(a, b)
    torch.testing.assert_close(d2, torch.sqrt(d3), rtol=0, atol=TOL)
    torch.testing.assert_close(d4, d3 / a.shape[1], rtol=0, atol=TOL)
    # And d3 by hand.
    expected = ((a.numpy() - b.numpy()) ** 2).sum(axis=1)
    np.testing.assert_allclose(d3.numpy(), expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(a=rows())
@pytest.mark.parametrize("name", ("l2", "sse", "mse"))
def test_magnitude_terms_vanish_on_equal_rows(name, a):
    assert torch.all(DISTANCE_TERMS[name](a, a.clone()) == 0)


def test_terms_are_per_row():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    b = torch.zeros_like(a)
    torch.testing.assert_close(euclidean_rows(a, b), torch.tensor([5.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(sse_rows(a, b), torch.tensor([25.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(mse_rows(a, b), torch.tensor([12.5, 0.5], dtype=torch.float64))


# ---------------------------------------------------------------------------
# layer-wise sum
# ---------------------------------------------------------------------------


def _hand_rows(a: np.ndarray, b: np.ndarray, name: str) -> np.ndarray:
    """Independent numpy implementation of one per-row term."""
    if name == "cos":
        return 1.0 - (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-6)
    diff2 = ((a - b) ** 2).sum(1)
    if name == "l2":
        return np.sqrt(diff2)
    if name == "sse":
        return diff2
    if name == "mse":
        return diff2 / a.shape[1]
    raise AssertionError(name)


@pytest.mark.parametrize("spec", ["cos", "l2", "sse", "mse", "cos+l2"])
def test_one_dimensional_tensors_count_zero(spec):
    d = make_distance(spec)
    g = torch.Generator().manual_seed(0)
    bias_a = torch.randn(7, generator=g, dtype=torch.float64)
    bias_b = torch.randn(7, generator=g, dtype=torch.float64)
    assert d([bias_a], [bias_b]).item() == 0.0
    assert d.layer(bias_a, bias_b).item() == 0.0
    w_a = torch.randn(3, 4, generator=g, dtype=torch.float64)
    w_b = torch.randn(3, 4, generator=g, dtype=torch.float64)
    # Adding very different biases changes nothing.
    with_bias = d([w_a, bias_a], [w_b, 100 * bias_b + 5])
    without = d([w_a], [w_b])
    assert with_bias.item() == pytest.approx(without.item(), abs=1e-12)
    assert without.item() > 0


@st.composite
def layer_lists(draw):
    """Paired lists of gradients of mixed shapes (1-D, 2-D, 4-D)."""
    seed = draw(st.integers(0, 2**31 - 1))
    shapes = draw(
        st.lists(
            st.sampled_from([(5,), (3, 4), (2, 6), (4, 2, 3, 3), (2, 1, 3, 3), (6,)]),
            min_size=1,
            max_size=5,
        )
    )
    g = torch.Generator().manual_seed(seed)
    a = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    b = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    return a, b


@settings(max_examples=40, deadline=None)
@given(lists=layer_lists(), spec=st.sampled_from(["cos", "l2", "sse", "100*mse", "cos+l2", "cos+0.1*l2"]))
def test_layerwise_sum_equals_sum_of_layers(lists, spec):
    a, b = lists
    d = make_distance(spec)
    total = d(a, b)
    per_layer = sum(d([x], [y]).item() for x, y in zip(a, b))
    assert total.item() == pytest.approx(per_layer, rel=1e-10, abs=1e-10)
    # ... and equals an independent numpy computation.
    terms = parse_distance(spec)
    hand = 0.0
    for x, y in zip(a, b):
        if x.dim() < 2:
            continue
        xn = x.numpy().reshape(x.shape[0], -1)
        yn = y.numpy().reshape(y.shape[0], -1)
        hand += sum(w * _hand_rows(xn, yn, name).sum() for w, name in terms)
    assert total.item() == pytest.approx(hand, rel=1e-9, abs=1e-9)


def test_conv_gradients_are_reshaped_out_by_rest():
    g = torch.Generator().manual_seed(1)
    out, cin, h, w = 4, 3, 3, 3
    a = torch.randn(out, cin, h, w, generator=g, dtype=torch.float64)
    b = torch.randn(out, cin, h, w, generator=g, dtype=torch.float64)
    an, bn = a.numpy(), b.numpy()
    # Hand computation: one row per output channel, of length in*h*w.
    cos = 0.0
    l2 = 0.0
    mse = 0.0
    for o in range(out):
        x = an[o].ravel()
        y = bn[o].ravel()
        assert x.size == cin * h * w
        cos += 1.0 - x.dot(y) / (math.sqrt(x.dot(x)) * math.sqrt(y.dot(y)) + 1e-6)
        l2 += math.sqrt(((x - y) ** 2).sum())
        mse += ((x - y) ** 2).sum() / x.size
    assert make_distance("cos")([a], [b]).item() == pytest.approx(cos, rel=1e-10)
    assert make_distance("l2")([a], [b]).item() == pytest.approx(l2, rel=1e-10)
    assert make_distance("mse")([a], [b]).item() == pytest.approx(mse, rel=1e-10)
    # A different row grouping (e.g. rows of length w) gives different values,
    # so the checks above do discriminate.
    wrong_l2 = np.sqrt(((an - bn) ** 2).reshape(-1, w).sum(1)).sum()
    assert abs(wrong_l2 - l2) > 1e-3


def test_linear_gradients_keep_out_by_in_rows():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 1.0], [0.0, 4.0], [3.0, 4.0]], dtype=torch.float64)
    # Row angles: orthogonal (1), parallel (eps), equal (eps); l2: sqrt 2, 2, 0.
    cos = make_distance("cos")([a], [b]).item()
    l2 = make_distance("l2")([a], [b]).item()
    assert cos == pytest.approx(1.0 + 1e-6 / (8 + 1e-6) + 1e-6 / (25 + 1e-6), abs=1e-12)
    assert l2 == pytest.approx(math.sqrt(2) + 2.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(lists=layer_lists(), w1=st.floats(0.0, 100.0), w2=st.floats(0.0, 100.0))
def test_weights_scale_the_terms(lists, w1, w2):
    a, b = lists
    cos = make_distance("cos")(a, b).item()
    l2 = make_distance("l2")(a, b).item()
    mse = make_distance("mse")(a, b).item()
    assert make_distance("cos+0.1*l2")(a, b).item() == pytest.approx(cos + 0.1 * l2, rel=1e-10, abs=1e-10)
    assert make_distance("cos+100*mse")(a, b).item() == pytest.approx(cos + 100 * mse, rel=1e-10, abs=1e-10)
    spec = f"{w1!r}*cos+{w2!r}*l2"
    assert make_distance(spec)(a, b).item() == pytest.approx(w1 * cos + w2 * l2, rel=1e-9, abs=1e-9)


def test_repeated_term_adds_up():
    g = torch.Generator().manual_seed(3)
    a = [torch.randn(3, 5, generator=g, dtype=torch.float64)]
    b = [torch.randn(3, 5, generator=g, dtype=torch.float64)]
    l2 = make_distance("l2")(a, b).item()
    assert make_distance("l2+l2")(a, b).item() == pytest.approx(2 * l2, rel=1e-12)


@pytest.mark.parametrize("spec", ["l2", "cos+l2", "cos+0.1*l2", "sse", "mse"])
def test_gradient_at_equal_inputs_is_finite(spec):
    target = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a = target.clone().requires_grad_(True)
    value = make_distance(spec)([a], [target])
    value.backward()
    assert torch.isfinite(value)
    assert torch.all(torch.isfinite(a.grad)), f"NaN/inf gradient of {spec!r} at a == b"


def test_gradient_of_l2_at_equal_rows_is_zero_and_elsewhere_correct():
    target = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    a = torch.tensor([[1.0, 2.0], [6.0, 8.0]], dtype=torch.float64, requires_grad=True)
    make_distance("l2")([a], [target]).backward()
    # Row 0 equal: zero gradient; row 1: (a-b)/|a-b| = (3,4)/5.
    torch.testing.assert_close(a.grad, torch.tensor([[0.0, 0.0], [0.6, 0.8]], dtype=torch.float64))


def test_mismatched_inputs_raise():
    d = make_distance("cos+l2")
    with pytest.raises(ValueError):
        d([torch.ones(2, 3)], [torch.ones(2, 3), torch.ones(2, 3)])
    with pytest.raises(ValueError):
        d([torch.ones(2, 3)], [torch.ones(3, 2)])
    with pytest.raises(ValueError):
        d([], [])


def test_distance_works_in_float32():
    a = [torch.ones(3, 4), torch.ones(3)]
    b = [2 * t for t in a]
    value = make_distance("cos+l2")(a, b)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(6.0, abs=1e-4)


# ---------------------------------------------------------------------------
# grammar
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        # Paper Table 2.
        ("cos", ((1.0, "cos"),)),
        ("l2", ((1.0, "l2"),)),
        ("sse", ((1.0, "sse"),)),
        ("100*mse", ((100.0, "mse"),)),
        ("cos+l2", ((1.0, "cos"), (1.0, "l2"))),
        ("cos+sse", ((1.0, "cos"), (1.0, "sse"))),
        ("cos+100*mse", ((1.0, "cos"), (100.0, "mse"))),
        # Paper note 5 and the grammar's float literals and spaces.
        ("cos+0.1*l2", ((1.0, "cos"), (0.1, "l2"))),
        ("1e2*mse", ((100.0, "mse"),)),
        ("cos + l2", ((1.0, "cos"), (1.0, "l2"))),
        ("  cos\t+ 0.1 * l2 ", ((1.0, "cos"), (0.1, "l2"))),
        ("1e+2*mse", ((100.0, "mse"),)),
        ("cos+1e+2*mse", ((1.0, "cos"), (100.0, "mse"))),
        ("1E-1*l2", ((0.1, "l2"),)),
        (".5*sse", ((0.5, "sse"),)),
    ],
)
def test_parse_valid_specs(spec, expected):
    parsed = parse_distance(spec)
    assert [name for _, name in parsed] == [name for _, name in expected]
    for (w, _), (w_exp, _) in zip(parsed, expected):
        assert w == pytest.approx(w_exp, rel=1e-12)
        assert isinstance(w, float)


@pytest.mark.parametrize("spec", ["", "   ", "cos+", "foo", "cos*2", "cos++l2", "abc+l2", "+cos", "2*", "*cos"])
def test_parse_bad_specs_raise_listing_valid_names(spec):
    with pytest.raises(ValueError) as info:
        parse_distance(spec)
    message = str(info.value)
    for name in VALID_NAMES:
        assert repr(name) in message, f"{name!r} missing from {message!r}"
    # The same through make_distance.
    with pytest.raises(ValueError):
        make_distance(spec)


def test_negative_weight_raises():
    with pytest.raises(ValueError):
        parse_distance("-1*cos")
    with pytest.raises(ValueError):
        parse_distance("cos+-0.5*l2")


def test_negative_weight_message_lists_valid_names():
    with pytest.raises(ValueError) as info:
        parse_distance("-1*cos")
    for name in VALID_NAMES:
        assert repr(name) in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    w=st.floats(min_value=0.0, max_value=1e300, allow_nan=False),
    fmt=st.sampled_from(["{!r}", "{:e}", "{:E}", "{:.3g}", "{:f}"]),
    name=st.sampled_from(VALID_NAMES),
)
def test_any_float_literal_weight_parses(w, fmt, name):
    literal = fmt.format(w)
    assert parse_distance(f"cos + {literal} * {name}") == ((1.0, "cos"), (float(literal), name))


def test_dotted_mantissa_with_signed_exponent_parses():
    assert parse_distance("1.e+2*mse") == ((100.0, "mse"),)
    assert parse_distance("cos+1.e+2*mse") == ((1.0, "cos"), (100.0, "mse"))


def test_infinite_weight_raises():
    with pytest.raises(ValueError):
        parse_distance("1e999*cos")


@pytest.mark.parametrize("bad", [3, 1.5, None, ["cos"], ("cos", "l2"), b"cos"])
def test_non_string_non_callable_raises_type_error(bad):
    with pytest.raises(TypeError):
        make_distance(bad)


def test_parse_non_string_raises_type_error():
    with pytest.raises(TypeError):
        parse_distance(3)


def test_layerwise_distance_str_round_trips():
    for spec in ["cos+l2", "cos+0.1*l2", "cos+100*mse", "sse"]:
        d = make_distance(spec)
        assert isinstance(d, LayerwiseDistance)
        assert parse_distance(str(d)) == parse_distance(spec)


# ---------------------------------------------------------------------------
# user callables
# ---------------------------------------------------------------------------


def test_callable_is_summed_over_2d_layers_only():
    calls = []

    def fn(gs, gr):
        calls.append(tuple(gs.shape))
        return ((gs - gr) ** 2).sum()

    d = make_distance(fn)
    g = torch.Generator().manual_seed(5)
    a = [
        torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64),
        torch.randn(4, generator=g, dtype=torch.float64),
        torch.randn(2, 36, generator=g, dtype=torch.float64),
        torch.randn(2, generator=g, dtype=torch.float64),
    ]
    b = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in a]
    value = d(a, b)
    # Called once per 2+-D tensor, with the parameter's own shape.
    assert calls == [(4, 1, 3, 3), (2, 36)]
    expected = ((a[0] - b[0]) ** 2).sum() + ((a[2] - b[2]) ** 2).sum()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    assert value.dim() == 0


def test_callable_is_differentiable():
    d = make_distance(lambda gs, gr: (gs * gr).sum())
    a = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.full((2, 3), 2.0, dtype=torch.float64)
    d([a], [b]).backward()
    torch.testing.assert_close(a.grad, b)


def test_callable_returning_non_scalar_raises():
    d = make_distance(lambda gs, gr: gs - gr)
    with pytest.raises(ValueError, match="scalar"):
        d([torch.ones(2, 3)], [torch.zeros(2, 3)])


def test_callable_returning_non_tensor_raises():
    d = make_distance(lambda gs, gr: 1.0)
    with pytest.raises(TypeError, match="tensor"):
        d([torch.ones(2, 3)], [torch.zeros(2, 3)])


def test_callable_one_element_tensor_is_accepted_as_scalar():
    d = make_distance(lambda gs, gr: (gs - gr).abs().sum().reshape(1, 1))
    value = d([torch.ones(2, 3), torch.ones(2, 3)], [torch.zeros(2, 3), torch.zeros(2, 3)])
    assert value.shape == ()
    assert value.item() == pytest.approx(12.0)
