"""Tests of the matching rules (paper section 3.1, eqs. 4-6; docs/design.md section 2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from gradmatch.distances import make_distance
from gradmatch.matching import (
    MATCH_RULES,
    check_match,
    matching_loss,
    rule_for_iteration,
    union_gradient,
)
from gradmatch.networks import MLP, ConvNet

pytestmark = pytest.mark.usefixtures("torch_single_thread")


# ---------------------------------------------------------------------------
# paper eq. 5: the union-batch gradient is the size-weighted mean
# ---------------------------------------------------------------------------


def _grads(net, x, y):
    loss = F.cross_entropy(net(x), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(net.parameters()))]


def _check_eq5(net, input_shape, sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    n_classes = len(sizes)
    xs = [torch.randn((n, *input_shape), generator=gen, dtype=torch.float64) for n in sizes]
    ys = [torch.full((n,), c, dtype=torch.long) for c, n in enumerate(sizes)]
    per_class = [_grads(net, x, y) for x, y in zip(xs, ys)]
    union = _grads(net, torch.cat(xs), torch.cat(ys))
    total = sum(sizes)
    combined = union_gradient(per_class, [n / total for n in sizes])
    assert len(combined) == len(union)
    for got, want in zip(combined, union):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-10)
    # Sanity: with unequal sizes, uniform weights do NOT give the union gradient
    # (so the test discriminates between the two weightings).
    if len(set(sizes)) > 1:
        uniform = union_gradient(per_class, [1.0 / n_classes] * n_classes)
        diff = max((u - w).abs().max().item() for u, w in zip(uniform, union))
        scale = max(w.abs().max().item() for w in union)
        assert diff > 1e-8 * max(scale, 1e-12)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    seed=st.integers(0, 2**31 - 1),
)
def test_eq5_union_gradient_mlp(sizes, seed):
    torch.manual_seed(seed)
    net = MLP((1, 2, 2), len(sizes)).double()
    _check_eq5(net, (1, 2, 2), sizes, seed)


@settings(max_examples=6, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=3),
    seed=st.integers(0, 2**31 - 1),
)
def test_eq5_union_gradient_convnet(sizes, seed):
    torch.manual_seed(seed)
    net = ConvNet((1, 8, 8), len(sizes)).double()
    _check_eq5(net, (1, 8, 8), sizes, seed)


def test_union_gradient_by_hand():
    g1 = [torch.tensor([[1.0, 2.0]]), torch.tensor([1.0])]
    g2 = [torch.tensor([[3.0, -2.0]]), torch.tensor([5.0])]
    out = union_gradient([g1, g2], [0.25, 0.5])  # weights used as given
    torch.testing.assert_close(out[0], torch.tensor([[1.75, -0.5]]))
    torch.testing.assert_close(out[1], torch.tensor([2.75]))


def test_union_gradient_errors():
    g = [torch.ones(2, 2)]
    with pytest.raises(ValueError):
        union_gradient([g, g], [0.5])
    with pytest.raises(ValueError):
        union_gradient([], [])


# ---------------------------------------------------------------------------
# matching_loss
# ---------------------------------------------------------------------------


@st.composite
def class_gradients(draw):
    """Per-class synthetic and real gradient lists for a small network shape."""
    n_classes = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    shapes = [(3, 2, 3, 3), (3,), (n_classes, 12), (n_classes,)]
    gen = torch.Generator().manual_seed(seed)

    def one():
        return [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]

    g_syn = [one() for _ in range(n_classes)]
    g_real = [one() for _ in range(n_classes)]
    return g_syn, g_real


def _hand_intra(distance, g_syn, g_real):
    return sum(distance(gs, gr).item() for gs, gr in zip(g_syn, g_real))


def _hand_union(grads, weights):
    n_layers = len(grads[0])
    return [sum(w * grads[c][layer] for c, w in enumerate(weights)) for layer in range(n_layers)]


def _hand_inter(distance, g_syn, g_real, lam, weights):
    return lam * distance(_hand_union(g_syn, weights), _hand_union(g_real, weights)).item()


SPECS = ["cos+l2", "cos", "l2", "cos+100*mse"]
lams = st.floats(min_value=0.1, max_value=20.0)


@settings(max_examples=30, deadline=None)
@given(grads=class_gradients(), spec=st.sampled_from(SPECS))
def test_multilevel_with_zero_lambda_equals_intra(grads, spec):
    g_syn, g_real = grads
    d = make_distance(spec)
    multi = matching_loss(g_syn, g_real, distance=d, match="multilevel", lam=0.0)
    intra = matching_loss(g_syn, g_real, distance=d, match="intra", lam=5.0)
    assert multi.item() == pytest.approx(intra.item(), rel=1e-12, abs=1e-12)
    assert intra.item() == pytest.approx(_hand_intra(d, g_syn, g_real), rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(grads=class_gradients(), spec=st.sampled_from(SPECS), lam=lams)
def test_intra_ignores_lambda(grads, spec, lam):
    g_syn, g_real = grads
    d = make_distance(spec)
    a = matching_loss(g_syn, g_real, distance=d, match="intra", lam=lam)
    b = matching_loss(g_syn, g_real, distance=d, match="intra", lam=1.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(grads=class_gradients(), spec=st.sampled_from(SPECS), lam=lams)
def test_inter_is_lambda_times_distance_of_unions(grads, spec, lam):
    g_syn, g_real = grads
    d = make_distance(spec)
    n = len(g_syn)
    inter = matching_loss(g_syn, g_real, distance=d, match="inter", lam=lam)
    expected = _hand_inter(d, g_syn, g_real, lam, [1.0 / n] * n)
    assert inter.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(grads=class_gradients(), spec=st.sampled_from(SPECS), lam=lams)
def test_multilevel_is_intra_plus_inter(grads, spec, lam):
    g_syn, g_real = grads
    d = make_distance(spec)
    n = len(g_syn)
    multi = matching_loss(g_syn, g_real, distance=d, match="multilevel", lam=lam).item()
    intra = matching_loss(g_syn, g_real, distance=d, match="intra", lam=lam).item()
    inter = matching_loss(g_syn, g_real, distance=d, match="inter", lam=lam).item()
    assert multi == pytest.approx(intra + inter, rel=1e-10)
    hand = _hand_intra(d, g_syn, g_real) + _hand_inter(d, g_syn, g_real, lam, [1.0 / n] * n)
    assert multi == pytest.approx(hand, rel=1e-10)


@settings(max_examples=20, deadline=None)
@given(grads=class_gradients(), lam=lams, iteration=st.integers(0, 1000))
def test_interleaved_alternates_intra_and_inter(grads, lam, iteration):
    g_syn, g_real = grads
    d = make_distance("cos+l2")
    got = matching_loss(g_syn, g_real, distance=d, match="interleaved", lam=lam, iteration=iteration)
    rule = "intra" if iteration % 2 == 0 else "inter"
    want = matching_loss(g_syn, g_real, distance=d, match=rule, lam=lam, iteration=iteration)
    other = matching_loss(g_syn, g_real, distance=d, match="inter" if rule == "intra" else "intra", lam=lam)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    # The two rules give different values here, so the check discriminates.
    assert got.item() != pytest.approx(other.item(), rel=1e-6)


def test_iteration_does_not_affect_non_interleaved_rules():
    gen = torch.Generator().manual_seed(0)
    g_syn = [[torch.randn(2, 3, generator=gen)] for _ in range(3)]
    g_real = [[torch.randn(2, 3, generator=gen)] for _ in range(3)]
    d = make_distance("cos+l2")
    for match in ("intra", "inter", "multilevel"):
        v0 = matching_loss(g_syn, g_real, distance=d, match=match, lam=3.0, iteration=0)
        v1 = matching_loss(g_syn, g_real, distance=d, match=match, lam=3.0, iteration=1)
        assert v0.item() == v1.item()


def test_rule_for_iteration():
    assert rule_for_iteration("interleaved", 0) == "intra"
    assert rule_for_iteration("interleaved", 1) == "inter"
    assert rule_for_iteration("interleaved", 2) == "intra"
    assert rule_for_iteration("interleaved", 7) == "inter"
    for match in ("intra", "inter", "multilevel"):
        for k in range(4):
            assert rule_for_iteration(match, k) == match


@pytest.mark.parametrize("bad", ["multi", "Multilevel", "", "union", None, 3])
def test_unknown_match_raises_listing_all_names(bad):
    for call in (
        lambda: check_match(bad),
        lambda: matching_loss(
            [[torch.ones(2, 2)]], [[torch.ones(2, 2)]], distance=make_distance("l2"), match=bad
        ),
    ):
        with pytest.raises(ValueError) as info:
            call()
        for name in ("intra", "inter", "interleaved", "multilevel"):
            assert repr(name) in str(info.value)


def test_match_rules_constant_and_valid_names_pass():
    assert set(MATCH_RULES) == {"intra", "inter", "interleaved", "multilevel"}
    for m in MATCH_RULES:
        assert check_match(m) == m


@settings(max_examples=20, deadline=None)
@given(grads=class_gradients(), lam=lams)
def test_default_weights_are_uniform(grads, lam):
    g_syn, g_real = grads
    d = make_distance("cos+l2")
    n = len(g_syn)
    default = matching_loss(g_syn, g_real, distance=d, match="inter", lam=lam)
    uniform = matching_loss(g_syn, g_real, distance=d, match="inter", lam=lam, weights=[1.0 / n] * n)
    assert default.item() == pytest.approx(uniform.item(), rel=1e-12)
    # Uniform 1/C is the mean, not the plain sum (the l2 term is not scale-free).
    summed = matching_loss(g_syn, g_real, distance=d, match="inter", lam=lam, weights=[1.0] * n)
    assert default.item() != pytest.approx(summed.item(), rel=1e-6)


@settings(max_examples=20, deadline=None)
@given(grads=class_gradients(), lam=lams, data=st.data())
def test_unequal_weights_are_used_by_inter(grads, lam, data):
    g_syn, g_real = grads
    n = len(g_syn)
    raw = data.draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n))
    weights = [w / sum(raw) for w in raw]
    d = make_distance("cos+l2")
    got = matching_loss(g_syn, g_real, distance=d, match="inter", lam=lam, weights=weights)
    assert got.item() == pytest.approx(_hand_inter(d, g_syn, g_real, lam, weights), rel=1e-10)
    multi = matching_loss(g_syn, g_real, distance=d, match="multilevel", lam=lam, weights=weights)
    expected = _hand_intra(d, g_syn, g_real) + _hand_inter(d, g_syn, g_real, lam, weights)
    assert multi.item() == pytest.approx(expected, rel=1e-10)
    # Weights as a tensor are accepted too.
    as_tensor = matching_loss(
        g_syn, g_real, distance=d, match="inter", lam=lam, weights=torch.tensor(weights, dtype=torch.float64)
    )
    assert as_tensor.item() == pytest.approx(got.item(), rel=1e-10)


def test_unequal_weights_change_the_inter_term():
    gen = torch.Generator().manual_seed(4)
    g_syn = [[torch.randn(3, 4, generator=gen, dtype=torch.float64)] for _ in range(3)]
    g_real = [[torch.randn(3, 4, generator=gen, dtype=torch.float64)] for _ in range(3)]
    d = make_distance("cos+l2")
    uniform = matching_loss(g_syn, g_real, distance=d, match="inter", lam=3.0)
    skewed = matching_loss(g_syn, g_real, distance=d, match="inter", lam=3.0, weights=[0.7, 0.2, 0.1])
    assert abs(uniform.item() - skewed.item()) > 1e-6


def test_loss_is_differentiable_in_the_synthetic_gradients():
    gen = torch.Generator().manual_seed(6)
    g_syn = [[torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)] for _ in range(2)]
    g_real = [[torch.randn(3, 4, generator=gen, dtype=torch.float64)] for _ in range(2)]
    for match in MATCH_RULES:
        for it in (0, 1):
            loss = matching_loss(g_syn, g_real, distance=make_distance("cos+l2"), match=match, lam=2.0, iteration=it)
            assert loss.dim() == 0
            grads = torch.autograd.grad(loss, [g[0] for g in g_syn])
            assert all(torch.isfinite(g).all() for g in grads)
            assert any(g.abs().sum() > 0 for g in grads)


def test_inter_with_zero_lambda_is_a_differentiable_zero():
    g_syn = [[torch.ones(2, 3, requires_grad=True)], [torch.ones(2, 3, requires_grad=True)]]
    g_real = [[torch.zeros(2, 3)], [torch.zeros(2, 3)]]
    loss = matching_loss(g_syn, g_real, distance=make_distance("l2"), match="inter", lam=0.0)
    assert loss.item() == 0.0
    assert loss.requires_grad


def test_class_count_mismatch_raises():
    g = [torch.ones(2, 2)]
    with pytest.raises(ValueError):
        matching_loss([g, g], [g], distance=make_distance("l2"), match="intra")
