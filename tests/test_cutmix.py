"""CutMix and IDC's evaluation recipe (gradmatch.training, evaluate_set, NetworkClassifier).

DC's recipe must train exactly as it did before mixing and lr schedules existed:
``_dc_train_before`` is a verbatim copy of ``train_network`` as it was, and the
tests compare weights and generator states bit for bit against it.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimators_unfitted,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_param_validation,
    check_parameters_default_constructible,
    check_set_params,
)
from torch import nn

from gradmatch.augment import DSA
from gradmatch.classifier import NetworkClassifier
from gradmatch.evaluation import evaluate_set
from gradmatch.training import (
    IDC_STRATEGY,
    LR_SCHEDULES,
    TrainRecipe,
    _symmetric_beta,
    cutmix,
    cutmix_loss,
    idc_recipe,
    lr_milestones,
    train_network,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

NORM = {"mean": [4.9], "std": [6.0]}


def unique_batch(n: int, c: int, h: int, w: int) -> torch.Tensor:
    """Images whose pixels all differ, so a pasted pixel always shows."""
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)


def changed_mask(x: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """(N, H, W): which pixels of each image differ in any channel."""
    return (mixed != x).any(dim=1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ cutmix itself
def test_box_comes_from_the_permuted_rows_and_ratio_is_the_exact_pixel_share():
    n, c, h, w = 6, 3, 9, 7
    x = unique_batch(n, c, h, w)
    labels = torch.arange(n)
    mixed_some = 0
    for seed in range(40):
        mixed, y_a, y_b, ratio = cutmix(x, labels, gen(seed), beta=1.0, prob=1.0)
        assert torch.equal(y_a, labels)
        perm = y_b  # labels are the row numbers, so labels_b is the permutation
        assert sorted(perm.tolist()) == list(range(n))
        mask = changed_mask(x, mixed)
        moved = perm != labels
        # Rows that draw from another row all show the same box; rows that keep themselves show none.
        assert not mask[~moved].any()
        if not moved.any():
            continue
        box = mask[moved][0]
        assert all(torch.equal(m, box) for m in mask[moved])
        rows, cols = torch.nonzero(box, as_tuple=True)
        area = int(box.sum())
        if area:
            y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
            assert area == (y1 - y0) * (x1 - x0)  # a rectangle
            for i in range(n):
                assert torch.equal(mixed[i, :, y0:y1, x0:x1], x[perm[i], :, y0:y1, x0:x1])
            mixed_some += 1
        assert ratio == 1.0 - area / (h * w)
        # Outside the box nothing changed.
        assert torch.equal(mixed.masked_fill(box, 0), x.masked_fill(box, 0))
    assert mixed_some > 10


def test_the_input_batch_is_never_modified():
    x = unique_batch(4, 1, 8, 8)
    before = x.clone()
    cutmix(x, torch.arange(4), gen(0), prob=1.0)
    assert torch.equal(x, before)


def test_prob_zero_leaves_the_batch_untouched():
    x = torch.randn(5, 2, 6, 6, generator=gen(1))
    labels = torch.tensor([0, 1, 2, 1, 0])
    for seed in range(20):
        mixed, y_a, y_b, ratio = cutmix(x, labels, gen(seed), prob=0.0)
        assert mixed is x and y_a is labels and y_b is labels and ratio == 1.0


def test_deterministic_under_the_generator_and_global_rngs_untouched():
    x = torch.randn(8, 3, 10, 10, generator=gen(2))
    labels = torch.arange(8) % 3
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    g1, g2 = gen(7), gen(7)
    for _ in range(10):
        a = cutmix(x, labels, g1, beta=0.7, prob=0.5)
        b = cutmix(x, labels, g2, beta=0.7, prob=0.5)
        assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) and a[3] == b[3]
        assert torch.equal(g1.get_state(), g2.get_state())
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(s, t) if isinstance(s, np.ndarray) else s == t
               for s, t in zip(np.random.get_state(), np_state))


def test_a_batch_left_unmixed_costs_one_draw():
    x, labels = torch.randn(4, 1, 5, 5), torch.arange(4)
    g, ref = gen(3), gen(3)
    cutmix(x, labels, g, prob=0.0)
    torch.rand(1, generator=ref, dtype=torch.float64)
    assert torch.equal(g.get_state(), ref.get_state())


def test_mixes_about_prob_of_the_batches():
    x, labels = unique_batch(6, 1, 8, 8), torch.arange(6)
    g = gen(4)
    mixed = sum(cutmix(x, labels, g, prob=0.3)[0] is not x for _ in range(2000))
    assert abs(mixed / 2000 - 0.3) < 0.04


def test_symmetric_beta_is_an_inverse_distribution_function():
    u = (np.arange(20000) + 0.5) / 20000  # a fine grid of U(0, 1)
    assert [_symmetric_beta(float(v), 1.0) for v in u[:5]] == list(u[:5])
    for a in (0.5, 2.0, 5.0):
        lam = np.array([_symmetric_beta(float(v), a) for v in u])
        assert np.all(np.diff(lam) > 0) and lam.min() > 0 and lam.max() < 1
        assert lam.mean() == pytest.approx(0.5, abs=1e-6)
        assert lam.var() == pytest.approx(1 / (4 * (2 * a + 1)), rel=1e-3)


def test_cutmix_rejects_what_it_cannot_mix():
    with pytest.raises(ValueError, match="images"):
        cutmix(torch.randn(4, 16), torch.arange(4), gen(0))
    with pytest.raises(ValueError, match="labels"):
        cutmix(torch.randn(4, 1, 4, 4), torch.arange(3), gen(0))
    with pytest.raises(ValueError, match="mix_prob"):
        cutmix(torch.randn(4, 1, 4, 4), torch.arange(4), gen(0), prob=1.5)
    with pytest.raises(ValueError, match="mix_beta"):
        cutmix(torch.randn(4, 1, 4, 4), torch.arange(4), gen(0), beta=0.0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
       beta=st.floats(0.1, 10.0), seed=st.integers(0, 2**32 - 1))
def test_box_inside_the_image_and_ratio_in_unit_interval(n, c, h, w, beta, seed):
    x = unique_batch(n, c, h, w)
    labels = torch.arange(n)
    mixed, _, perm, ratio = cutmix(x, labels, gen(seed), beta=beta, prob=1.0)
    assert mixed.shape == x.shape and 0.0 <= ratio <= 1.0
    moved = perm != labels
    if moved.any():
        # Clipped slices: the pasted pixels are exactly (1 - ratio) of the image, in one rectangle.
        box = changed_mask(x, mixed)[moved][0]
        area = int(box.sum())
        assert area == round((1.0 - ratio) * h * w)
        if area:
            rows, cols = torch.nonzero(box, as_tuple=True)
            assert area == (int(rows.max()) - int(rows.min()) + 1) * (int(cols.max()) - int(cols.min()) + 1)


def test_loss_mixing():
    logits = torch.randn(5, 4, generator=gen(5))
    a, b = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([3, 2, 1, 0, 1])
    ce = nn.functional.cross_entropy
    for ratio in (0.0, 0.25, 0.9):
        expected = ratio * ce(logits, a) + (1 - ratio) * ce(logits, b)
        torch.testing.assert_close(cutmix_loss(logits, a, b, ratio), expected, rtol=0, atol=1e-7)
    assert torch.equal(cutmix_loss(logits, a, b, 1.0), ce(logits, a))


# ------------------------------------------------------------------- DC's recipe unchanged
def _dc_train_before(net, images, labels, recipe, generator, mean, std):
    """train_network before mixing and lr schedules existed (verbatim, progress bar aside)."""
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    decay_at = recipe.epochs // 2
    loss_fn = nn.CrossEntropyLoss()
    n = images.shape[0]
    net.train()
    for epoch in range(recipe.epochs):
        if epoch == decay_at and epoch > 0:
            for group in opt.param_groups:
                group["lr"] = recipe.lr * 0.1
        perm = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
        for start in range(0, n, recipe.batch_size):
            rows = perm[start : start + recipe.batch_size]
            batch = (images[rows].to(torch.float32) - mean) / std
            if recipe.augment is not None:
                batch = recipe.augment(batch, generator)
            out = net(batch)
            loss = loss_fn(out, labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net


def _tiny_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10))


@pytest.mark.parametrize("augment", [None, DSA()], ids=["plain", "dsa"])
@pytest.mark.parametrize("epochs", [1, 5])
def test_dc_recipe_trains_bit_for_bit_as_before(digits, augment, epochs):
    X, y = digits
    images, labels = torch.from_numpy(X).unsqueeze(1), torch.from_numpy(y)
    mean, std = torch.tensor(4.9), torch.tensor(6.0)
    recipe = TrainRecipe(epochs=epochs, batch_size=64, augment=augment)
    assert (recipe.lr_steps, recipe.lr_decay, recipe.mix) == ((0.5,), 0.1, None)
    state = torch.get_rng_state()
    ours, g_ours = _tiny_net(0), gen(11)
    train_network(ours, images, labels, recipe, g_ours, mean, std)
    torch.set_rng_state(state)
    before, g_before = _tiny_net(0), gen(11)
    _dc_train_before(before, images, labels, recipe, g_before, mean, std)
    assert torch.equal(g_ours.get_state(), g_before.get_state())
    for (k, a), (_, b) in zip(ours.state_dict().items(), before.state_dict().items()):
        assert torch.equal(a, b), k


# ------------------------------------------------------------------------ lr schedules
class _RecordingSGD(torch.optim.SGD):
    seen: list[float] = []

    def step(self, closure=None):
        type(self).seen.append(self.param_groups[0]["lr"])
        return super().step(closure)


def _lrs_per_epoch(monkeypatch, recipe: TrainRecipe) -> list[float]:
    _RecordingSGD.seen = []
    monkeypatch.setattr(torch.optim, "SGD", _RecordingSGD)
    images, labels = torch.randn(4, 1, 8, 8), torch.arange(4)
    # One batch per epoch, so one step per epoch.
    train_network(_tiny_net(0), images, labels, replace(recipe, batch_size=4), gen(0))
    return list(_RecordingSGD.seen)


def _multistep_reference(lr: float, epochs: int, milestones: list[int], gamma: float) -> list[float]:
    """IDC's loop: lr of each epoch with a MultiStepLR stepped after every epoch."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_idc_schedule_matches_multisteplr(monkeypatch):
    for epochs in (6, 12, 25):
        lrs = _lrs_per_epoch(monkeypatch, replace(idc_recipe(epochs), augment=None, mix=None))
        ref = _multistep_reference(0.01, epochs, [2 * epochs // 3, 5 * epochs // 6], 0.2)
        assert lrs == pytest.approx(ref, rel=1e-12, abs=0)
    lrs = _lrs_per_epoch(monkeypatch, replace(idc_recipe(12), augment=None, mix=None))
    assert lrs[7] == 0.01 and lrs[8] == pytest.approx(0.002) and lrs[10] == pytest.approx(0.0004)


def test_dc_schedule_is_one_tenth_at_half(monkeypatch):
    lrs = _lrs_per_epoch(monkeypatch, TrainRecipe(epochs=10))
    assert lrs == [0.01] * 5 + [0.01 * 0.1] * 5
    assert _lrs_per_epoch(monkeypatch, TrainRecipe(epochs=1)) == [0.01]  # never at epoch 0


def test_milestones_are_exact_integer_fractions():
    steps, decay = LR_SCHEDULES["idc"]
    assert decay == 0.2
    for epochs in range(1, 3001):
        expected = tuple(m for m in (2 * epochs // 3, 5 * epochs // 6) if m > 0)
        assert lr_milestones(epochs, steps) == expected
        assert lr_milestones(epochs, LR_SCHEDULES["dc"][0]) == tuple(m for m in (epochs // 2,) if m > 0)


def test_recipe_validates_its_new_fields():
    for bad in (dict(mix="mixup"), dict(mix_prob=1.5), dict(mix_beta=0), dict(lr_steps=(1.5,)),
                dict(lr_steps="0.5"), dict(lr_decay=0), dict(lr_decay=float("nan"))):
        with pytest.raises(ValueError):
            TrainRecipe(**bad)
    assert TrainRecipe(lr_steps=[0.25, 0.75]).lr_steps == (0.25, 0.75)


def test_idc_recipe():
    r = idc_recipe()
    assert (r.epochs, r.lr, r.momentum, r.weight_decay, r.batch_size) == (1000, 0.01, 0.9, 5e-4, 64)
    assert (r.mix, r.mix_prob, r.mix_beta, r.lr_decay) == ("cutmix", 0.5, 1.0, 0.2)
    assert lr_milestones(r.epochs, r.lr_steps) == (666, 833)
    assert r.augment.strategy == IDC_STRATEGY and "cutout" not in r.augment.ops
    assert "flip" not in idc_recipe(flip=False).augment.ops
    assert idc_recipe(mix_prob=1.0).mix_prob == 1.0


def test_flat_inputs_cannot_be_mixed():
    with pytest.raises(ValueError, match="needs images"):
        train_network(nn.Linear(8, 2), torch.randn(4, 8), torch.tensor([0, 1, 0, 1]),
                      TrainRecipe(epochs=1, mix="cutmix"), gen(0))


# ------------------------------------------------------------------------ evaluate_set
def test_evaluate_set_with_cutmix(digits, digits_test):
    X, y = digits
    X_test, y_test = digits_test
    kw = dict(normalization=NORM, n_models=2, random_state=0, device="cpu")
    plain = evaluate_set(X, y, X_test, y_test, epochs=6, **kw)
    mixed = evaluate_set(X, y, X_test, y_test, epochs=6, mix="cutmix", **kw)
    assert len(mixed.accuracies) == 2 and all(0 <= a <= 1 for a in mixed.accuracies)
    assert mixed.accuracies != plain.accuracies
    # A recipe's own mix is used when mix is None; mix="cutmix" adds it to a recipe.
    own = evaluate_set(X, y, X_test, y_test, recipe=TrainRecipe(epochs=6, mix="cutmix"), **kw)
    added = evaluate_set(X, y, X_test, y_test, recipe=TrainRecipe(epochs=6), mix="cutmix", **kw)
    assert own.accuracies == added.accuracies == mixed.accuracies
    with pytest.raises(ValueError, match="mix"):
        evaluate_set(X, y, X_test, y_test, epochs=1, mix="mixup", **kw)


def test_evaluate_set_with_idc_recipe_passes_everything_to_the_networks(digits, digits_test):
    X, y = digits
    X_test, y_test = digits_test
    recipe = idc_recipe(epochs=3, flip=False)
    res = evaluate_set(X, y, X_test, y_test, normalization=NORM, recipe=recipe, n_models=1, device="cpu")
    clf = NetworkClassifier(epochs=3, batch_size=64, lr_schedule="idc", augment=recipe.augment,
                            mix="cutmix", normalization=NORM, device="cpu", random_state=0).fit(X, y)
    assert res.accuracies == [float(np.mean(clf.predict(X_test) == y_test))]


# ------------------------------------------------------------------- NetworkClassifier
def test_classifier_mix_and_schedule(digits):
    X, y = digits
    base = dict(epochs=4, batch_size=64, random_state=0, device="cpu")
    plain = NetworkClassifier(**base).fit(X, y)
    mixed = NetworkClassifier(mix="cutmix", mix_prob=1.0, **base).fit(X, y)
    again = NetworkClassifier(mix="cutmix", mix_prob=1.0, **base).fit(X, y)
    w = "classifier.weight"
    assert not np.array_equal(plain.network_state_[w], mixed.network_state_[w])
    np.testing.assert_array_equal(mixed.network_state_[w], again.network_state_[w])
    idc = NetworkClassifier(lr_schedule="idc", **base).fit(X, y)
    pair = NetworkClassifier(lr_schedule=((2 / 3, 5 / 6), 0.2), **base).fit(X, y)
    dc_pair = NetworkClassifier(lr_schedule=((0.5,), 0.1), **base).fit(X, y)
    np.testing.assert_array_equal(idc.network_state_[w], pair.network_state_[w])
    np.testing.assert_array_equal(plain.network_state_[w], dc_pair.network_state_[w])
    assert not np.array_equal(plain.network_state_[w], idc.network_state_[w])
    loaded = pickle.loads(pickle.dumps(mixed))
    np.testing.assert_array_equal(loaded.predict(X[:20]), mixed.predict(X[:20]))


def test_classifier_refuses_bad_mix_settings_and_flat_mixing(digits, digits_flat):
    X, y = digits
    for bad, match in [(dict(mix="mixup"), "'mix' parameter"), (dict(mix_prob=2.0), "'mix_prob' parameter"),
                       (dict(mix_beta=-1.0), "'mix_beta' parameter"),
                       (dict(lr_schedule="cosine"), "'lr_schedule' parameter"),
                       (dict(lr_schedule=((1.5,), 0.1)), "'lr_schedule' parameter")]:
        with pytest.raises(InvalidParameterError, match=match):
            NetworkClassifier(epochs=1, **bad).fit(X, y)
    with pytest.raises(ValueError, match="needs images"):
        NetworkClassifier(epochs=1, mix="cutmix").fit(*digits_flat)
    # Flat rows with an image shape are images.
    NetworkClassifier(epochs=1, mix="cutmix", input_shape=(1, 8, 8), device="cpu").fit(*digits_flat)


@pytest.mark.parametrize("check", [
    check_no_attributes_set_in_init, check_parameters_default_constructible, check_get_params_invariance,
    check_set_params, check_estimator_cloneable, check_estimator_repr, check_estimators_unfitted,
    check_do_not_raise_errors_in_init_or_set_params, check_param_validation,
], ids=lambda f: f.__name__)
def test_classifier_with_mix_follows_sklearn_conventions(check):
    # The checks that fit do so on flat features, which CutMix refuses (it needs images);
    # these are the ones that do not, and the tests above fit on images.
    check("NetworkClassifier", NetworkClassifier(epochs=1, mix="cutmix", lr_schedule="idc", device="cpu"))


def test_classifier_params_round_trip():
    clf = NetworkClassifier(mix="cutmix", mix_prob=0.25, mix_beta=2.0, lr_schedule="idc")
    params = clf.get_params()
    assert {k: params[k] for k in ("mix", "mix_prob", "mix_beta", "lr_schedule")} == dict(
        mix="cutmix", mix_prob=0.25, mix_beta=2.0, lr_schedule="idc")
    assert clone(clf).get_params() == params
    assert NetworkClassifier().set_params(mix="cutmix").mix == "cutmix"
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((2, 8, 8)))
