"""DistributionMatchingCondenser: the objective, where its gradient goes, and the shared contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gradmatch import DistributionMatchingCondenser, RandomCoreset, load_set, save_set
from gradmatch.data import ClassPools, channel_stats
from gradmatch.distribution import (
    DistributionMatchingLoop,
    DistributionSettings,
    has_batchnorm,
    mean_embedding_loss,
)
from gradmatch.evaluation import evaluate_set
from gradmatch.networks import ConvNet, build_model
from gradmatch.runtime import make_generator

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = dict(ipc=1, iterations=3, batch_real=16, augment=None, device="cpu", random_state=0)


# ------------------------------------------------------------------ the objective
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**16))
def test_the_loss_is_the_per_class_squared_distance_of_mean_embeddings(classes, width, n_real, n_syn, seed):
    gen = torch.Generator().manual_seed(seed)
    real = [torch.randn(n_real, width, generator=gen, dtype=torch.float64) for _ in range(classes)]
    syn = [torch.randn(n_syn, width, generator=gen, dtype=torch.float64) for _ in range(classes)]
    by_hand = 0.0
    for r, s in zip(real, syn):
        for k in range(width):
            diff = sum(r[i, k].item() for i in range(n_real)) / n_real - sum(
                s[j, k].item() for j in range(n_syn)) / n_syn
            by_hand += diff * diff
    assert float(mean_embedding_loss(real, syn)) == pytest.approx(by_hand, rel=1e-9, abs=1e-12)
    # Zero exactly when every class's synthetic mean is its real mean.
    assert float(mean_embedding_loss(real, [r.mean(0, keepdim=True) for r in real])) == pytest.approx(0, abs=1e-12)


def test_the_loss_refuses_mismatched_class_lists():
    with pytest.raises(ValueError, match="one real and one synthetic embedding per class"):
        mean_embedding_loss([torch.zeros(2, 3)], [])


def _loop(digits, model, joint_net=None, **settings_kw):
    X, y = digits
    images = torch.as_tensor(X, dtype=torch.float32)[:, None]
    labels = torch.as_tensor(y)
    pools = ClassPools(images, labels, 10, channel_stats(images), torch.device("cpu"))
    gen = make_generator(0, torch.device("cpu"))
    syn = pools.initial_images([1] * 10, gen)
    return DistributionMatchingLoop(pools=pools, syn=syn, syn_counts=[1] * 10,
                                    make_network=lambda: build_model(model, (1, 8, 8), 10),
                                    settings=DistributionSettings(iterations=1, batch_real=16, **settings_kw),
                                    generator=gen)


def test_the_gradient_reaches_only_the_synthetic_images(digits):
    loop = _loop(digits, "convnet")
    net = build_model("convnet", (1, 8, 8), 10)
    for p in net.parameters():
        p.requires_grad_(False)
    before = loop.syn.detach().clone()
    reals, syns = loop.class_batches(net)
    loss = mean_embedding_loss([net.embed(x).detach() for x in reals], [net.embed(x) for x in syns])
    loss.backward()
    assert loop.syn.grad is not None and float(loop.syn.grad.abs().sum()) > 0
    assert all(p.grad is None for p in net.parameters())
    assert all(not x.requires_grad for x in reals)
    # One step of the loop moves the set, and only the set.
    loop.syn.grad = None
    record = loop.run_iteration()
    assert record["loss"] > 0 and not torch.equal(loop.syn.detach(), before)


class SmallBN(nn.Module):
    """A network with BatchNorm and an embed method."""

    def __init__(self, input_shape, n_classes):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 16),
                                      nn.BatchNorm1d(16), nn.ReLU())
        self.classifier = nn.Linear(16, n_classes)

    def embed(self, x):
        return self.features(x)

    def forward(self, x):
        return self.classifier(self.embed(x))


def test_a_batchnorm_network_embeds_the_classes_jointly(digits):
    loop = _loop(digits, SmallBN)
    net = SmallBN((1, 8, 8), 10).train()
    assert has_batchnorm(net) and not has_batchnorm(ConvNet((1, 8, 8), 10))
    reals, syns = loop.class_batches(net)
    state = loop.generator.get_state()
    # Joint: statistics of the whole batch, so a class's embedding depends on the others'.
    joint_real = net.embed(torch.cat(reals)).split([len(x) for x in reals])
    alone = net.embed(reals[0])
    assert not torch.allclose(joint_real[0], alone)
    loop.generator.set_state(state)
    seen = []
    real_embed = net.embed

    def spy(x):
        seen.append(len(x))
        return real_embed(x)

    loop.distribution_step(net, spy, joint=True)
    assert seen == [sum(len(x) for x in reals), 10]  # two calls: all real, all synthetic


def test_a_network_without_embed_is_named(digits):
    X, y = digits

    def plain(input_shape, n_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), n_classes))

    with pytest.raises(ValueError, match=r"embed\(\) method .* which Sequential lacks"):
        DistributionMatchingCondenser(**{**FAST, "model": plain}).fit(X, y)


# ------------------------------------------------------------------ the estimator
def test_same_seed_same_set_other_seed_other_set_global_rng_untouched(digits):
    X, y = digits
    torch.manual_seed(123)
    np.random.seed(7)
    before_torch, before_np = torch.get_rng_state(), np.random.get_state()[1].copy()
    a = DistributionMatchingCondenser(**FAST).fit(X, y)
    b = DistributionMatchingCondenser(**FAST).fit(X, y)
    c = DistributionMatchingCondenser(**{**FAST, "random_state": 1}).fit(X, y)
    np.testing.assert_array_equal(a.X_syn_, b.X_syn_)
    assert not np.array_equal(a.X_syn_, c.X_syn_)
    assert torch.equal(torch.get_rng_state(), before_torch)
    np.testing.assert_array_equal(np.random.get_state()[1], before_np)


def test_the_output_contract(digits, digits_flat, digits_uint8):
    X, y = digits
    dm = DistributionMatchingCondenser(**{**FAST, "ipc": {c: 1 + c % 2 for c in range(10)}}).fit(X, y)
    X_syn, y_syn = dm.transform()
    assert X_syn.shape == (15, 8, 8) and X_syn.dtype == X.dtype
    assert dm.sampling_strategy_ == {c: 1 + c % 2 for c in range(10)}
    assert len(dm.history_["loss"]) == dm.n_iter_ == 3 and set(dm.history_) == {"loss", "seconds"}
    flat = DistributionMatchingCondenser(**FAST).fit(*digits_flat)
    assert flat.X_syn_.shape == (10, 64)
    Xu, yu = digits_uint8
    assert DistributionMatchingCondenser(**FAST).fit(Xu, yu).X_syn_.dtype == np.float32
    torch_out = DistributionMatchingCondenser(**FAST).fit_resample(torch.as_tensor(X), torch.as_tensor(y))
    assert isinstance(torch_out[0], torch.Tensor)
    assert pickle.loads(pickle.dumps(dm)).X_syn_.shape == (15, 8, 8)


def test_resume_and_warm_start_give_the_uninterrupted_set(digits, tmp_path):
    X, y = digits
    whole = DistributionMatchingCondenser(**{**FAST, "iterations": 6}).fit(X, y)
    DistributionMatchingCondenser(**{**FAST, "iterations": 3, "checkpoint": tmp_path,
                                     "checkpoint_every": 1}).fit(X, y)
    resumed = DistributionMatchingCondenser(**{**FAST, "iterations": 6, "checkpoint": tmp_path}).fit(X, y)
    np.testing.assert_array_equal(resumed.X_syn_, whole.X_syn_)
    warm = DistributionMatchingCondenser(**{**FAST, "iterations": 2}).fit(X, y)
    warm.set_params(iterations=6, warm_start=True).fit(X, y)
    np.testing.assert_array_equal(warm.X_syn_, whole.X_syn_)


def test_saved_and_loaded(digits, tmp_path):
    X, y = digits
    dm = DistributionMatchingCondenser(**FAST).fit(X, y)
    loaded = load_set(save_set(tmp_path / "dm.npz", dm, dataset="digits"))
    assert loaded.method == "DistributionMatchingCondenser"
    np.testing.assert_array_equal(loaded.X, dm.X_syn_)
    assert loaded.history["loss"] == dm.history_["loss"]


def test_divergence_keeps_the_last_finite_set(digits):
    from gradmatch import DivergenceError

    X, y = digits
    dm = DistributionMatchingCondenser(**{**FAST, "lr_syn": 1e30, "iterations": 5})
    with pytest.raises(DivergenceError, match="lr_syn=1e\\+30"):
        dm.fit(X, y)
    assert dm.partial_ and np.isfinite(dm.X_syn_).all()


@pytest.mark.parametrize("param, value", [("iterations", 0), ("lr_syn", -1.0), ("momentum_syn", 1.0),
                                          ("init", "zeros"), ("augment", "blur"), ("batch_real", 0)])
def test_declared_rules(digits, param, value):
    X, y = digits
    with pytest.raises((ValueError, TypeError),
                       match=f"The '{param}' parameter of DistributionMatchingCondenser must be"):
        DistributionMatchingCondenser(**{**FAST, param: value}).fit(X, y)


def test_a_tiny_fit_beats_random_selection_on_digits(digits, digits_test):
    """DM at ipc 1 against a random image per class, scored the same way (same seeds, same recipe)."""
    X, y = digits
    Xt, yt = digits_test
    dm = DistributionMatchingCondenser(ipc=1, iterations=30, batch_real=30, augment=None, device="cpu",
                                       random_state=0).fit(X, y)
    rc = RandomCoreset(ipc=1, random_state=0).fit(X, y)
    score = {name: evaluate_set(est.X_syn_, est.y_syn_, Xt, yt, normalization=est.normalization_,
                                n_models=2, epochs=60, random_state=0, device="cpu").mean
             for name, est in (("dm", dm), ("random", rc))}
    assert score["dm"] > score["random"] + 0.05, score


@pytest.mark.parametrize("name", ["convnet", "mlp", "lenet", "alexnet", "vgg11", "vgg11bn", "resnet18",
                                  "resnet18bn"])
def test_every_built_in_network_embeds_for_distribution_matching(name):
    """One iteration with each built-in network on 28x28 grey images (BatchNorm ones jointly)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(3 * 6, 1, 28, 28, generator=gen)
    y = torch.arange(3).repeat_interleave(6)
    dm = DistributionMatchingCondenser(ipc=1, iterations=1, batch_real=4, augment=None, model=name,
                                       device="cpu", random_state=0).fit(X, y)
    assert np.isfinite(dm.history_["loss"][0]) and dm.history_["loss"][0] > 0
