"""Tests of the greedy herding order (Welling, 2009) on feature vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradmatch.herding import herding_order

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def brute_force_herding(features: np.ndarray, k: int) -> list[int]:
    """Independent greedy herding: try every unused row, keep the best (first on ties)."""
    n = features.shape[0]
    mu = features.mean(axis=0)
    chosen: list[int] = []
    for _ in range(k):
        best, best_dist = None, np.inf
        for i in range(n):
            if i in chosen:
                continue
            subset = features[chosen + [i]]
            dist = float(np.sqrt(((subset.mean(axis=0) - mu) ** 2).sum()))
            if dist < best_dist:
                best, best_dist = i, dist
        chosen.append(best)
    return chosen


def _objective(features: np.ndarray, prefix: list[int], i: int) -> float:
    mu = features.mean(axis=0)
    return float(np.linalg.norm(features[prefix + [i]].mean(axis=0) - mu))


@st.composite
def gaussian_features(draw, max_n=12, max_d=5):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-2, 1.0, 100.0]))
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, d)) * scale + rng.normal(size=d) * scale
    k = draw(st.integers(1, n))
    return feats, k


@settings(max_examples=60, deadline=None)
@given(data=gaussian_features())
def test_matches_brute_force_greedy(data):
    """Each pick is a greedy one; where two candidates tie (e.g. two points, equally far
    from their mean), either may come first, so ties are judged by the objective."""
    feats, k = data
    order = herding_order(torch.from_numpy(feats), k).tolist()
    assert len(order) == k == len(set(order))
    for j, pick in enumerate(order):
        prefix = order[:j]
        rest = [i for i in range(len(feats)) if i not in prefix]
        best = min(_objective(feats, prefix, i) for i in rest)
        got = _objective(feats, prefix, pick)
        assert got <= best + 1e-9 * max(1.0, float(np.abs(feats).max())), (j, pick, got, best)
    # Without ties the sequence is exactly the brute-force one.
    brute = brute_force_herding(feats, k)
    if order != brute:
        j = next(i for i, (a, b) in enumerate(zip(order, brute)) if a != b)
        tie = abs(_objective(feats, order[:j], order[j]) - _objective(feats, order[:j], brute[j]))
        assert tie <= 1e-9 * max(1.0, float(np.abs(feats).max()))


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            st.lists(
                st.lists(st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 1)), min_size=2, max_size=2),
                min_size=n,
                max_size=n,
            ),
            st.integers(1, n),
        )
    )
)
def test_each_pick_is_a_greedy_minimiser_even_with_ties(data):
    # Rounded values produce duplicate rows and exact ties; whatever the tie
    # rule, every pick must minimise the greedy objective over the unused rows.
    rows, k = data
    feats = np.array(rows, dtype=np.float64)
    order = herding_order(torch.from_numpy(feats), k).tolist()
    assert len(order) == k
    assert len(set(order)) == k
    for j, i in enumerate(order):
        prefix = order[:j]
        unused = [r for r in range(len(feats)) if r not in prefix]
        best = min(_objective(feats, prefix, r) for r in unused)
        assert _objective(feats, prefix, i) <= best + 1e-9


@settings(max_examples=40, deadline=None)
@given(data=gaussian_features())
def test_returns_k_distinct_valid_indices(data):
    feats, k = data
    order = herding_order(torch.from_numpy(feats), k)
    assert order.dtype == torch.long
    assert order.shape == (k,)
    values = order.tolist()
    assert len(set(values)) == k
    assert all(0 <= i < feats.shape[0] for i in values)


@settings(max_examples=40, deadline=None)
@given(data=gaussian_features())
def test_first_pick_is_the_row_closest_to_the_mean(data):
    feats, _ = data
    first = int(herding_order(torch.from_numpy(feats), 1)[0])
    dists = np.linalg.norm(feats - feats.mean(axis=0), axis=1)
    assert dists[first] == pytest.approx(dists.min(), rel=1e-12, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(data=gaussian_features())
def test_k_equal_n_is_a_permutation(data):
    feats, _ = data
    n = feats.shape[0]
    order = herding_order(torch.from_numpy(feats), n).tolist()
    assert sorted(order) == list(range(n))


@settings(max_examples=30, deadline=None)
@given(data=gaussian_features())
def test_orders_are_prefixes(data):
    # Greedy: the order for k is the first k entries of the order for n.
    feats, k = data
    full = herding_order(torch.from_numpy(feats), feats.shape[0]).tolist()
    assert herding_order(torch.from_numpy(feats), k).tolist() == full[:k]


def test_docstring_example_and_hand_case():
    f = torch.tensor([[0.0], [10.0], [4.0], [6.0]])
    assert herding_order(f, 2).tolist() == [2, 3]
    # Mean is 2: 1.5 first (closest), then 3.0 pulls the running mean to 2.25,
    # which beats 0.0 (0.75) and 3.5 (2.5).
    g = torch.tensor([[0.0], [1.5], [3.5], [3.0]])
    assert herding_order(g, 2).tolist() == [1, 3]


def test_herding_differs_from_nearest_to_mean_ranking():
    # Mean 0. Ranking by distance to the mean gives rows 3, 0, 1 (|-0.12|, 0.5,
    # 0.52); herding takes 3, then 0 (running mean 0.19), then 2: with -0.9 the
    # running mean is -0.173, with 0.52 it would be 0.3.
    f = torch.tensor([[0.5], [0.52], [-0.9], [-0.12]], dtype=torch.float64)
    nearest = torch.argsort((f[:, 0] - f[:, 0].mean()).abs()).tolist()
    assert nearest[:3] == [3, 0, 1]
    order = herding_order(f, 3).tolist()
    assert order == [3, 0, 2]
    assert order == brute_force_herding(f.numpy(), 3)


def test_float32_input_and_unchanged_features():
    f = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    before = f.clone()
    order = herding_order(f, 4)
    assert torch.equal(f, before)
    assert order.tolist() == brute_force_herding(f.double().numpy(), 4)


@pytest.mark.parametrize("k", [0, -1, 6, 100])
def test_k_out_of_range_raises(k):
    with pytest.raises(ValueError):
        herding_order(torch.randn(5, 3), k)


def test_single_row():
    assert herding_order(torch.tensor([[1.0, 2.0]]), 1).tolist() == [0]
