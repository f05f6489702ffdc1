"""Representative real batches (DREAM): clustering, the batches it gives, and fits that use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import gradmatch.sampling as sampling
from gradmatch import DistributionMatchingCondenser, GradientMatchingCondenser
from gradmatch.data import ClassPools, channel_stats
from gradmatch.networks import ConvNet
from gradmatch.runtime import make_generator
from gradmatch.sampling import RandomBatches, RepresentativeBatches, nearest_to_centres

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = dict(iterations=3, matching_steps=1, network_steps=0, schedule="fixed", batch_real=8, model="convnet",
            device="cpu", random_state=0, real_sampling="representative", recluster_every=2)


@settings(max_examples=20, deadline=None)
@given(centres=st.integers(2, 5), per=st.integers(2, 6), seed=st.integers(0, 50))
def test_well_separated_groups_give_one_row_each(centres, per, seed):
    """Groups far apart: k-means finds them, and each group's nearest row is one of its own."""
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.normal(100.0 * g, 1.0, size=(per, 3)) for g in range(centres)])
    rows = nearest_to_centres(points, centres, seed=seed)
    assert sorted(rows // per) == list(range(centres))


def test_nearest_to_centres_is_the_argmin_of_distances():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 5))
    rows = nearest_to_centres(points, 7, seed=3)
    from sklearn.cluster import KMeans

    centres = KMeans(n_clusters=7, n_init=1, random_state=3).fit(points).cluster_centers_
    want = [int(np.argmin(((points - c) ** 2).sum(1))) for c in centres]
    assert rows.tolist() == want
    # the chunked distance path agrees with the direct one
    np.testing.assert_allclose(sampling._chunked_gaps(centres, points),
                               ((centres[:, None] - points[None]) ** 2).sum(2), atol=1e-9)
    assert len(nearest_to_centres(points[:3], 7, seed=0)) == 3  # fewer rows than clusters


@pytest.fixture
def pools(digits):
    X, y = digits
    images = torch.as_tensor(X, dtype=torch.float32)[:, None]
    return ClassPools(images, torch.as_tensor(y), 10, channel_stats(images), torch.device("cpu"))


def test_batches_come_from_their_class_and_are_kept_between_clusterings(pools, monkeypatch):
    calls = []
    real = sampling.nearest_to_centres
    monkeypatch.setattr(sampling, "nearest_to_centres", lambda *a, **k: calls.append(1) or real(*a, **k))
    net = ConvNet((1, 8, 8), 10).eval()
    sampler = RepresentativeBatches(batch_real=5, every=3)
    gen = make_generator(0, torch.device("cpu"))
    held = []
    for step in range(7):
        sampler.begin_step(step, net.embed, pools, gen)
        held.append({c: sampler.rows[c].tolist() for c in range(10)})
        for c in range(10):
            x, labels = sampler.draw(pools, c, gen)
            assert x.shape == (5, 1, 8, 8) and labels.tolist() == [c] * 5
            assert set(sampler.rows[c].tolist()) <= set(pools.pools[c].tolist())
    assert len(calls) == 3 * 10  # steps 0, 3 and 6, each class once
    assert held[0] == held[1] == held[2] and held[3] == held[4] == held[5]
    assert held[0] != held[3]
    assert sampler.record()["sampling_seconds"] > 0 and sampler.record()["sampling_seconds"] == 0


def test_the_batch_is_the_class_images_nearest_the_centres(pools):
    net = ConvNet((1, 8, 8), 10).eval()
    gen = make_generator(0, torch.device("cpu"))
    sampler = RepresentativeBatches(batch_real=4, every=10)
    state = gen.get_state()
    sampler.begin_step(0, net.embed, pools, gen)
    # Redo by hand what the sampler does for class 3, from the same generator state.
    gen.set_state(state)
    for c in range(10):
        order = torch.randperm(len(pools.pools[c]), generator=gen)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen).item())
        if c == 3:
            candidates = pools.pools[c][order[: sampling.CLUSTER_SAMPLES]]
            with torch.no_grad():
                features = net.embed(pools.take(candidates)).flatten(1).double().numpy()
            want = candidates[nearest_to_centres(features, 4, seed)]
    assert sampler.rows[3].tolist() == want.tolist()


def test_a_large_class_is_clustered_on_a_subsample(pools, monkeypatch):
    sizes = []
    real = sampling.nearest_to_centres
    monkeypatch.setattr(sampling, "nearest_to_centres", lambda f, *a, **k: sizes.append(len(f)) or real(f, *a, **k))
    sampler = RepresentativeBatches(batch_real=4, every=1, max_samples=12)
    sampler.begin_step(0, ConvNet((1, 8, 8), 10).eval().embed, pools, make_generator(0, torch.device("cpu")))
    assert sizes == [12] * 10


def test_random_batches_are_todays_draws(pools):
    a, b = make_generator(0, torch.device("cpu")), make_generator(0, torch.device("cpu"))
    x, labels = RandomBatches(8).draw(pools, 2, a)
    want, want_labels = pools.sample(2, 8, b)
    assert torch.equal(x, want) and torch.equal(labels, want_labels)


# ---------------------------------------------------------------- fits
def test_a_representative_fit_is_deterministic_and_differs_from_random(digits):
    X, y = digits
    first = GradientMatchingCondenser(ipc=1, **FAST).fit(X, y)
    again = GradientMatchingCondenser(ipc=1, **FAST).fit(X, y)
    np.testing.assert_array_equal(first.X_syn_, again.X_syn_)
    random = GradientMatchingCondenser(ipc=1, **{**FAST, "real_sampling": "random"}).fit(X, y)
    assert not np.array_equal(first.X_syn_, random.X_syn_)
    assert set(first.history_) == {"loss", "seconds", "network_steps", "sampling_seconds"}
    assert "sampling_seconds" not in random.history_
    # clustering happens at steps 0 and 2 (every 2), and its time is part of the iteration's
    spent = first.history_["sampling_seconds"]
    assert spent[0] > 0 and spent[1] == 0 and spent[2] > 0
    assert all(s <= t for s, t in zip(spent, first.history_["seconds"]))


def test_a_representative_fit_resumes_bit_for_bit_between_clusterings(digits, tmp_path):
    """Resumed at step 1, inside an interval: the held batches come back from the checkpoint."""
    X, y = digits
    params = dict(ipc=1, checkpoint=tmp_path, checkpoint_every=1, **FAST)
    whole = GradientMatchingCondenser(**{**params, "checkpoint": None}).fit(X, y)
    GradientMatchingCondenser(**{**params, "iterations": 1}).fit(X, y)
    resumed = GradientMatchingCondenser(**params).fit(X, y)
    np.testing.assert_array_equal(resumed.X_syn_, whole.X_syn_)
    assert resumed.history_["loss"] == whole.history_["loss"]


def test_warm_start_continues_the_held_batches(digits):
    X, y = digits
    whole = GradientMatchingCondenser(ipc=1, **FAST).fit(X, y)
    est = GradientMatchingCondenser(ipc=1, warm_start=True, **{**FAST, "iterations": 1}).fit(X, y)
    est.set_params(iterations=3).fit(X, y)
    np.testing.assert_array_equal(est.X_syn_, whole.X_syn_)


def test_factor_and_representative_together_with_matching_steps(digits):
    X, y = digits
    est = GradientMatchingCondenser(ipc=1, factor=2, init="mix", **{**FAST, "matching_steps": 3,
                                                                      "network_steps": 1}).fit(X, y)
    assert est.X_syn_.shape == (40, 8, 8)
    # 3 iterations x 3 steps, every 2 steps: clusterings at steps 0, 2, 4, 6, 8
    assert sum(s > 0 for s in est.history_["sampling_seconds"]) == 3


def test_distribution_matching_with_representative_batches(digits):
    X, y = digits
    dm = DistributionMatchingCondenser(ipc=1, iterations=2, batch_real=8, augment=None, model="convnet",
                                       real_sampling="representative", recluster_every=1, random_state=0).fit(X, y)
    assert all(s > 0 for s in dm.history_["sampling_seconds"])


class NoEmbed(nn.Module):
    def __init__(self, input_shape, n_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), n_classes))

    def forward(self, x):
        return self.net(x)


def test_a_network_without_embed_is_refused_before_work(digits):
    X, y = digits
    with pytest.raises(ValueError, match="embed\\(\\) method.*real_sampling='random'"):
        GradientMatchingCondenser(ipc=1, **{**FAST, "model": NoEmbed}).fit(X, y)
    with pytest.raises(ValueError, match="real_sampling"):
        GradientMatchingCondenser(real_sampling="kmeans").fit(X, y)
    with pytest.raises(ValueError, match="recluster_every"):
        GradientMatchingCondenser(recluster_every=0).fit(X, y)
