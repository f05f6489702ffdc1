"""Bad input: a ValueError or TypeError with a useful message, raised before any network runs.

``pytest.raises(ValueError)`` / ``pytest.raises(TypeError)`` also guarantee that no raw
torch ``RuntimeError`` (or IndexError) escapes. Every failed fit must leave the
estimator's parameters as they were.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from gradmatch import DistributionMatchingCondenser, DivergenceError, GradientMatchingCondenser, Herding, RandomCoreset

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = dict(iterations=1, matching_steps=1, batch_real=8, model="mlp", device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data(digits_all):
    """10 digits per class, (100, 8, 8) float64."""
    X, y = digits_all
    idx = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(10)])
    return X[idx].copy(), y[idx].copy()


def make(kind, **params):
    if kind == "condenser":
        return GradientMatchingCondenser(**{**FAST, **params})
    if kind == "random":
        return RandomCoreset(**{"random_state": 0, **params})
    if kind == "herding":
        return Herding(**{"features": "pixels", **params})
    if kind == "dm":
        return DistributionMatchingCondenser(**{**DM_FAST, **params})
    raise AssertionError(kind)


DM_FAST = dict(iterations=1, batch_real=8, augment=None, model="mlp", device="cpu", random_state=0)
KINDS = ("condenser", "random", "herding", "dm")


def assert_fit_raises(est, X, y, exc, match):
    """fit raises ``exc`` matching ``match`` and leaves get_params() untouched."""
    before = est.get_params(deep=False)
    with pytest.raises(exc, match=match):
        est.fit(X, y)
    after = est.get_params(deep=False)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value, key


# --------------------------------------------------------------- non-finite X
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
def test_non_finite_X(data, kind, value, as_torch):
    X, y = data
    X = X.copy()
    X[3, 4, 5] = value
    if as_torch:
        X = torch.tensor(X, dtype=torch.float32)
    assert_fit_raises(make(kind), X, y, ValueError, r"(?i)NaN|infinity")


def test_non_finite_float16_tensor(data):
    X, y = data
    X = torch.tensor(X, dtype=torch.float16)
    X[0, 0, 0] = float("inf")
    assert_fit_raises(make("condenser"), X, y, ValueError, "NaN or infinity")


# --------------------------------------------------------------- X and y disagree
@pytest.mark.parametrize("kind", KINDS)
def test_length_mismatch(data, kind):
    X, y = data
    assert_fit_raises(make(kind), X, y[:-1], ValueError, "different lengths.*100.*99")
    assert_fit_raises(make(kind), torch.tensor(X), torch.tensor(y[:-3]), ValueError,
                      "different lengths")
    assert_fit_raises(make(kind), X[:-1], y, ValueError, "different lengths")


@pytest.mark.parametrize("kind", KINDS)
def test_single_class(data, kind):
    X, y = data
    assert_fit_raises(make(kind), X, np.zeros(len(y), int), ValueError, "at least 2 classes")
    assert_fit_raises(make(kind), X, ["a"] * len(y), ValueError, "at least 2 classes")


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_label_types(data, kind):
    X, y = data
    mixed = [1, "a"] * (len(y) // 2)
    assert_fit_raises(make(kind), X, mixed, TypeError, r"mixes label types \(number, string\)")
    assert_fit_raises(make(kind), X, np.array(mixed, dtype=object), TypeError,
                      r"mixes label types")
    assert_fit_raises(make(kind), X, [True, 1] * (len(y) // 2), TypeError, "mixes label types")


@pytest.mark.parametrize(
    "labels, exc, match",
    [
        (lambda y: np.where(y == 0, np.nan, y), ValueError, "y contains NaN"),
        (lambda y: np.array([None] + ["a"] * (len(y) - 1), dtype=object), TypeError,
         "mixes label types"),
        (lambda y: y + 0.5, ValueError, "Unknown label type: continuous"),
        (lambda y: np.stack([y, y], axis=1), ValueError, "1d array"),
        (lambda y: 3, TypeError, "array-like of labels"),
        (lambda y: None, ValueError, "requires y"),
    ],
    ids=["nan", "none", "continuous", "2d", "scalar", "missing"],
)
def test_bad_labels(data, labels, exc, match):
    X, y = data
    assert_fit_raises(make("condenser"), X, labels(y), exc, match)


# --------------------------------------------------------------- input_shape
def test_input_shape_product_mismatch(data):
    X, y = data
    assert_fit_raises(make("condenser", input_shape=(1, 7, 7)), X.reshape(100, -1), y,
                      ValueError, re.escape("input_shape=(1, 7, 7) holds 49 values but X has 64"))
    assert_fit_raises(make("random", input_shape=(3, 8, 8)), X.reshape(100, -1), y,
                      ValueError, "holds 192 values")


def test_input_shape_disagrees_with_images(data):
    X, y = data
    assert_fit_raises(make("condenser", input_shape=(3, 8, 8)), X[:, None], y, ValueError,
                      re.escape("input_shape=(3, 8, 8) does not match images of shape (1, 8, 8)"))
    assert_fit_raises(make("herding", input_shape=(1, 4, 16)), X, y, ValueError,
                      "does not match grey images")


@pytest.mark.parametrize("shape, exc", [((8, 8), ValueError), (5, TypeError), ((1, 0, 64), ValueError),
                                        ((1, 8.0, 8), ValueError)])
def test_malformed_input_shape(data, shape, exc):
    X, y = data
    assert_fit_raises(make("condenser", input_shape=shape), X.reshape(100, -1), y, exc,
                      r"The 'input_shape' parameter of GradientMatchingCondenser must be a tuple \(C, H, W\) "
                      "of three positive integers")


# --------------------------------------------------------------- ipc
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "ipc, exc",
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError),
     (None, TypeError), (2.0, TypeError)],
    ids=repr,
)
def test_bad_ipc(data, kind, ipc, exc):
    X, y = data
    name = type(make(kind)).__name__
    assert_fit_raises(make(kind, ipc=ipc), X, y, exc,
                      rf"The 'ipc' parameter of {name} must be an int in the range \[1, inf\) or a non-empty "
                      rf"dict {{class: int >= 1}} naming every class of y. Got {re.escape(repr(ipc))} instead")


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_integer_ipc_is_fine(data, kind):
    X, y = data
    est = make(kind, ipc=np.int64(2)).fit(X, y)
    assert est.transform()[0].shape == (20, 8, 8)


# --------------------------------------------------------------- declared rules
def among(*names):
    """A regex for scikit-learn's ``{'a', 'b'}`` listing of string options, in any order."""
    return r"\{" + "".join(f"(?=[^}}]*'{name}')" for name in names) + r"[^}]*\}"


def declared(param, allowed, value, owner="GradientMatchingCondenser"):
    """The message of a declared rule: scikit-learn's, naming the parameter and what it accepts."""
    return rf"The '{param}' parameter of {owner} must be {allowed}\. Got {re.escape(repr(value))} instead"


@pytest.mark.parametrize(
    "param, value, allowed",
    [
        ("match", "cross", r"a str among " + among('inter', 'interleaved', 'intra', 'multilevel')),
        ("distance", "cosine", r"a distance string .*'cos', 'l2', 'sse', 'mse'.* or a callable"),
        ("distance", "cos+foo", r"a distance string .*'cos', 'l2', 'sse', 'mse'.* or a callable"),
        ("distance", "cos*l2", r"a distance string .* or a callable"),
        ("distance", "", r"a distance string .* or a callable"),
        ("distance", "cos+-1*l2", r"a distance string .* or a callable"),
        ("distance", 5, r"a distance string .* or a callable"),
        ("schedule", "linear", r"a str among " + among('adaptive', 'fixed', 'overfit') + r" or a callable"),
        ("schedule", 5, r"a str among " + among('adaptive', 'fixed', 'overfit') + r" or a callable"),
        ("model", "resnet", r"'auto' or a network name \('convnet', 'mlp', .*\) or a callable"),
        ("model", 5, r"'auto' or a network name .* or a callable"),
        ("init", "zeros", r"a str among " + among('noise', 'real')),
        ("init", None, r"a str among " + among('noise', 'real')),
        ("normalization", "minmax", r"a str among " + among('auto') + r", None or a pair \(mean, std\) or a dict .*"),
        ("normalization", (0.0, 0.0), r"a str among " + among('auto') + r", None or a pair \(mean, std\).*\(std > 0\)"),
        ("normalization", (0.0, 1.0, 2.0),
         r"a str among " + among('auto') + r", None or a pair \(mean, std\) or a dict .*"),
        ("callback", 5, "a callable or None"),
        ("verbose", "x", r"an int in the range \[0, inf\), an instance of 'bool' or an instance of 'numpy.bool'"),
        ("iterations", 2.0, r"an int in the range \[1, inf\)"),
        ("iterations", 0, r"an int in the range \[1, inf\)"),
        ("iterations", True, r"an int in the range \[1, inf\)"),
        ("matching_steps", 0, r"an int in the range \[1, inf\) or None"),
        ("network_steps", -1, r"an int in the range \[0, inf\) or None"),
        ("batch_real", 0, r"an int in the range \[1, inf\)"),
        ("batch_train", 0, r"an int in the range \[1, inf\)"),
        ("lr_syn", -1.0, r"a float in the range \(0\.0, 3\.4e38 \(float32's largest\)\)"),
        ("lr_syn", float("nan"), r"a float in the range \(0\.0, 3\.4e38 \(float32's largest\)\)"),
        ("lr_syn", float("inf"), r"a float in the range \(0\.0, 3\.4e38 \(float32's largest\)\)"),
        ("lr_net", 0.0, r"a float in the range \(0\.0, 3\.4e38 \(float32's largest\)\)"),
        ("momentum_syn", -0.1, r"a float in the range \[0\.0, 1\.0\)"),
        ("momentum_syn", 5, r"a float in the range \[0\.0, 1\.0\)"),
        ("lam", -1.0, r"a float in the range \[0\.0, 3\.4e38 \(float32's largest\)\) or None"),
        ("warm_start", "no", "an instance of 'bool' or an instance of 'numpy.bool'"),
        ("compile", 1, "an instance of 'bool' or an instance of 'numpy.bool'"),
        ("distributed", 0, r"a str among " + among('auto') + r" or a bool among \{False\}"),
        ("distributed", True, r"a str among " + among('auto') + r" or a bool among \{False\}"),
        ("checkpoint", "", "a non-empty folder path or None"),
        ("checkpoint_every", 0, r"an int in the range \[1, inf\)"),
        ("in_memory", "yes", r"an instance of 'bool' or an instance of 'numpy.bool' or a str among " + among('auto')),
        ("augment", "blur", "None, 'dsa', a strategy string .* or a gradmatch.augment.DSA"),
        ("precision", "fp16", r"a str among " + among('bf16', 'float32')),
    ],
)
def test_declared_rules_name_the_parameter_and_what_it_accepts(data, param, value, allowed):
    X, y = data
    assert_fit_raises(make("condenser", **{param: value}), X, y, (ValueError, TypeError),
                      declared(param, allowed, value))


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("device", "gpu0", r"unknown device 'gpu0'.*'auto', 'cpu', 'cuda'"),
        ("device", "cuda:banana", r"unknown device"),
        ("device", "meta", r"meta"),
    ],
)
def test_unknown_devices(data, param, value, match):
    X, y = data
    assert_fit_raises(make("condenser", **{param: value}), X, y, ValueError, match)


@pytest.mark.parametrize("schedule", ["adaptive", "overfit", lambda t: 1])
def test_network_steps_with_another_schedule_is_refused(data, schedule):
    """Regression: network_steps was silently ignored unless schedule='fixed'."""
    X, y = data
    assert_fit_raises(make("condenser", network_steps=3, schedule=schedule), X, y, ValueError,
                      "network_steps=3 applies only to schedule='fixed'")


def test_unknown_device_for_herding(data):
    X, y = data
    assert_fit_raises(Herding(device="gpu0"), X, y, ValueError, "unknown device 'gpu0'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(data):
    X, y = data
    assert_fit_raises(make("condenser", device="cuda"), X, y, ValueError, "CUDA is not available")


@pytest.mark.parametrize(
    "params, exc, match",
    [
        (dict(features="edges"), ValueError,
         declared("features", r"a str among " + among('network', 'pixels') + r" or a callable", "edges", "Herding")),
        (dict(features=5), TypeError,
         declared("features", r"a str among " + among('network', 'pixels') + r" or a callable", 5, "Herding")),
        (dict(features="network", feature_epochs=-1), ValueError,
         declared("feature_epochs", r"an int in the range \[0, inf\) or a str among " + among('auto'), -1, "Herding")),
        (dict(features="network", feature_epochs=1.5), TypeError,
         declared("feature_epochs", r"an int in the range \[0, inf\) or a str among " + among('auto'), 1.5, "Herding")),
        (dict(features="network", model="resnet"), ValueError,
         declared("model", r"'auto' or a network name .* or a callable", "resnet", "Herding")),
        (dict(features=lambda x: x[:5].reshape(5, -1)), ValueError, r"features callable returned shape \(5, 64\)"),
        (dict(features=lambda x: x.reshape(len(x), -1).sum(1)), ValueError, "features callable returned shape"),
        (dict(features=lambda x: x.reshape(len(x), -1) * float("nan")), ValueError, "NaN or infinity"),
    ],
)
def test_herding_bad_parameters(data, params, exc, match):
    X, y = data
    assert_fit_raises(Herding(**params), X, y, exc, match)


def test_herding_model_without_embed(data):
    X, y = data

    def factory(shape, n_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), n_classes))

    assert_fit_raises(Herding(model=factory, feature_epochs=1, random_state=0), X, y, TypeError,
                      r"no embed\(\) method")


def test_bad_random_state(data):
    X, y = data
    allowed = "an int in the range \\[0, 4294967295\\], an instance of 'numpy.random.mtrand.RandomState' or None"
    assert_fit_raises(make("random", random_state="seed"), X, y, ValueError,
                      declared("random_state", allowed, "seed", "RandomCoreset"))
    assert_fit_raises(make("condenser", random_state="seed"), X, y, ValueError,
                      declared("random_state", allowed, "seed"))


# --------------------------------------------------------------- shapes of X
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
def test_X_with_1_or_5_dimensions(data, kind, as_torch):
    X, y = data
    conv = torch.tensor if as_torch else np.asarray
    assert_fit_raises(make(kind), conv(X[:, 0, 0]), y, ValueError, r"(?i)2D array|2 to 4 dimensions")
    assert_fit_raises(make(kind), conv(X[:, None, None]), y, ValueError,
                      re.escape("X must have 2 to 4 dimensions (n, d), (n, H, W) or (n, C, H, W); "
                                "got shape (100, 1, 1, 8, 8)"))


@pytest.mark.parametrize("kind", KINDS)
def test_empty_X(data, kind):
    X, y = data
    assert_fit_raises(make(kind), X[:0], y[:0], ValueError, "0 sample")
    assert_fit_raises(make(kind), torch.tensor(X[:0]), torch.tensor(y[:0]), ValueError, "empty")


@pytest.mark.parametrize("kind", KINDS)
def test_complex_X(data, kind):
    X, y = data
    assert_fit_raises(make(kind), X.astype(np.complex128), y, ValueError, "Complex data not supported")
    assert_fit_raises(make(kind), torch.tensor(X).to(torch.complex64), y, TypeError,
                      "X must hold real numbers")


@pytest.mark.parametrize("kind", KINDS)
def test_meta_tensor(data, kind):
    _, y = data
    assert_fit_raises(make(kind), torch.empty(100, 8, 8, device="meta"), y, ValueError,
                      "meta device")
    X = torch.zeros(100, 8, 8)
    assert_fit_raises(make(kind), X, torch.empty(100, dtype=torch.long, device="meta"),
                      ValueError, "meta device")


def test_string_X(data):
    _, y = data
    X = np.full((100, 64), "a")
    assert_fit_raises(make("condenser"), X, y, ValueError, "(?i)string|numeric|could not convert")


# --------------------------------------------------------------- Datasets
class PairDataset(torch.utils.data.Dataset):
    def __init__(self, X, y, item):
        self.X, self.y, self.item = X, y, item

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.item(self.X[i], self.y[i], i)


@pytest.mark.parametrize(
    "item, match",
    [
        (lambda x, y, i: torch.tensor(x), r"must return \(image, label\) pairs; item 0 is Tensor"),
        (lambda x, y, i: (torch.tensor(x), y, 0), r"pairs; item 0 is tuple of length 3"),
        (lambda x, y, i: (torch.tensor(x),), r"pairs; item 0 is tuple of length 1"),
        (lambda x, y, i: {"image": x, "label": y}, r"pairs; item 0 is dict"),
        (lambda x, y, i: (torch.tensor(x), torch.tensor([y, y])), r"expected a scalar"),
        (lambda x, y, i: (torch.zeros(8, 9 if i == 5 else 8), y), r"item 5 has image shape \(8, 9\)"),
    ],
    ids=["bare", "triple", "single", "dict", "vector-label", "ragged"],
)
def test_dataset_with_wrong_items(data, item, match):
    X, y = data
    assert_fit_raises(make("condenser"), PairDataset(X, y, item), None, ValueError, match)


def test_dataset_with_y(data):
    X, y = data
    ds = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y))
    assert_fit_raises(make("condenser"), ds, y, ValueError, "y must be None when X is a Dataset")


def test_empty_dataset():
    ds = torch.utils.data.TensorDataset(torch.zeros(0, 8, 8), torch.zeros(0))
    assert_fit_raises(make("condenser"), ds, None, ValueError, "Dataset passed as X is empty")


def test_dataset_of_numpy_pairs_with_string_labels(data):
    X, y = data
    ds = PairDataset(X, np.array(list("abcdefghij"))[y], lambda x, label, i: (x, label))
    est = make("condenser").fit(ds)
    assert list(est.classes_) == list("abcdefghij")
    assert np.asarray(est.transform()[1]).tolist() == list("abcdefghij")


# --------------------------------------------------------------- models
def test_convnet_needs_images(data):
    X, y = data
    assert_fit_raises(make("condenser", model="convnet"), X.reshape(100, -1), y, ValueError,
                      r"model='convnet' needs images.*input_shape")
    assert_fit_raises(Herding(model="convnet", feature_epochs=1), X.reshape(100, -1), y,
                      ValueError, "needs images")


def test_images_too_small_for_the_convnet(data):
    X, y = data
    assert_fit_raises(make("condenser", model="convnet"), X[:, :2, :2], y, ValueError,
                      "too small for a depth-3 ConvNet")


def test_factory_returning_a_non_module(data):
    X, y = data
    assert_fit_raises(make("condenser", model=lambda shape, n: "net"), X, y, TypeError,
                      "model factory returned str, expected a torch.nn.Module")


@pytest.mark.parametrize(
    "factory",
    [
        lambda shape, n: nn.Sequential(nn.Flatten(), nn.Linear(60, n)),
        lambda shape, n: nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), 3)),
    ],
    ids=["wrong-input-size", "wrong-output-size"],
)
def test_factory_network_that_does_not_fit_the_data(data, factory):
    X, y = data
    assert_fit_raises(make("condenser", model=factory), X, y, (ValueError, TypeError),
                      "(?i)shape|output|input")


@pytest.mark.parametrize(
    "distance, exc, match",
    [
        (lambda a, b: 1.0, TypeError, "must return a torch scalar tensor, got float"),
        (lambda a, b: (a - b).sum(dim=1), ValueError, r"must return a scalar, got shape \(128,\)"),
    ],
)
def test_distance_callable_returning_wrong_things(data, distance, exc, match):
    X, y = data
    assert_fit_raises(make("condenser", distance=distance), X, y, exc, match)


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_schedule_callable_returning_wrong_things(data, value):
    X, y = data
    est = make("condenser", matching_steps=2, schedule=lambda t: value)
    assert_fit_raises(est, X, y, ValueError,
                      re.escape(f"schedule returned {value!r} network steps for t=0: expected an integer >= 0"))


# --------------------------------------------------------------- small classes
def _shrink_class(X, y, label, keep):
    mask = np.ones(len(y), bool)
    mask[np.flatnonzero(y == label)[keep:]] = False
    return X[mask], y[mask]


@pytest.mark.parametrize("kind", ["random", "herding"])
def test_selectors_refuse_classes_smaller_than_ipc(data, kind):
    X, y = _shrink_class(*data, label=3, keep=2)
    # The message names the class (numpy may print it as np.int64(3)) and its size.
    assert_fit_raises(make(kind, ipc=3), X, y, ValueError,
                      r"cannot pick ipc=3 distinct samples from every class: (np\.int64\()?3\)? has 2\. "
                      r"Lower ipc or add samples")
    assert_fit_raises(make(kind, ipc=3), X, np.array(list("abcdefghij"))[y], ValueError,
                      r"cannot pick ipc=3.*'d'\)? has 2")
    assert_fit_raises(make(kind, ipc=11), *data, ValueError, "has 10")


def test_small_class_message_shows_plain_labels(data):
    X, y = _shrink_class(*data, label=3, keep=2)
    with pytest.raises(ValueError) as err:
        RandomCoreset(ipc=3).fit(X, y)
    assert "np.int64" not in str(err.value) and "3 has 2" in str(err.value)


def test_condenser_warns_for_small_class_and_still_fits(data):
    X, y = _shrink_class(*data, label=3, keep=2)
    est = make("condenser", ipc=3)
    with pytest.warns(UserWarning, match=r"fewer than ipc=3 real samples"):
        est.fit(X, y)
    X_syn, y_syn = est.transform()
    assert X_syn.shape == (30, 8, 8) and np.all(np.isfinite(X_syn))
    assert np.sum(y_syn == 3) == 3


def test_condenser_with_every_class_smaller_than_ipc(data):
    X, y = data
    with pytest.warns(UserWarning, match="fewer than ipc=12"):
        est = make("condenser", ipc=12, init="real").fit(X, y)
    assert est.transform()[0].shape == (120, 8, 8)


# --------------------------------------------------------------- divergence
def test_divergence_is_reported_and_last_finite_set_kept(data):
    X, y = data
    est = make("condenser", lr_syn=1e30, matching_steps=3, schedule="fixed", network_steps=1, iterations=2)
    with pytest.raises(DivergenceError, match=r"diverged.*lr_syn=1e\+30"):
        est.fit(X, y)
    assert np.all(np.isfinite(est.X_syn_))
    assert est.X_syn_.shape == (10, 8, 8)


# --------------------------------------------------------------- failed fit after a good one
def test_failed_refit_keeps_parameters(data):
    X, y = data
    est = make("condenser").fit(X, y)
    params = est.get_params()
    with pytest.raises(ValueError):
        est.fit(X[:-1], y)
    assert est.get_params() == params


# --------------------------------------------------------------- channels-last images
CHANNELS_LAST = r"looks channels-last.*X\.transpose\(0, 3, 1, 2\).*np\.moveaxis\(X, -1, 1\).*input_shape="


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_last_arrays_are_refused_up_front(data, kind, channels):
    X, y = data
    X_hwc = np.repeat(X[..., None], channels, axis=-1)  # (100, 8, 8, channels), as PIL or TensorFlow give
    # The ConvNet would refuse (8, 8, channels) as "too small"; the layout is named first.
    est = make(kind, model="convnet") if kind in ("condenser", "dm") else make(kind)
    assert_fit_raises(est, X_hwc, y, ValueError, CHANNELS_LAST)
    with pytest.raises(ValueError, match=re.escape(f"images of shape ({channels}, 8, 8)")):
        make(kind).fit(X_hwc, y)


def test_channels_last_message_for_rgb_tensors_and_datasets(data):
    X, y = data
    X_rgb = torch.zeros(20, 32, 32, 3)
    y20 = torch.arange(20) % 2
    with pytest.raises(ValueError, match=r"\(32, 32, 3\), which looks channels-last.*permute\(0, 3, 1, 2\)"):
        RandomCoreset().fit(X_rgb, y20)
    # A Dataset of (H, W, C) arrays (np.asarray of a PIL image, no ToTensor) is caught too.
    items = [(np.zeros((16, 16, 3), np.uint8), i % 2) for i in range(10)]
    for in_memory in (True, False):
        with pytest.raises(ValueError, match="looks channels-last"):
            make("condenser", in_memory=in_memory).fit(ItemsDataset(items), None)


class ItemsDataset(torch.utils.data.Dataset):
    """A tiny Dataset over a list of (image, label) pairs."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("shape", [(12, 3, 32, 32), (12, 1, 28, 28), (12, 4, 8, 8), (12, 3, 8, 3),
                                   (12, 2, 8, 1)])
def test_channel_first_images_are_not_mistaken_for_channels_last(shape):
    X = np.random.default_rng(0).random(shape, dtype=np.float32)
    y = np.arange(12) % 2
    X_sel, _ = RandomCoreset(random_state=0).fit_resample(X, y)
    assert X_sel.shape == (2,) + shape[1:]


def test_channels_last_transposed_or_declared_fits(data):
    X, y = data
    X_hwc = X[..., None]  # (100, 8, 8, 1)
    est = make("condenser").fit(X_hwc.transpose(0, 3, 1, 2), y)
    assert est.input_shape_ == (1, 8, 8)
    est = make("condenser").fit(np.moveaxis(X_hwc, -1, 1), y)
    assert est.input_shape_ == (1, 8, 8)
    # Really 8-channel 8x1 images: input_shape says so, for X as it is or flat.
    assert make("random", input_shape=(8, 8, 1)).fit(X_hwc, y).input_shape_ == (8, 8, 1)
    assert make("random", input_shape=(8, 8, 1)).fit(X_hwc.reshape(100, -1), y).input_shape_ == (8, 8, 1)


# --------------------------------------------------------------- transform(X)
@pytest.mark.parametrize("kind", KINDS)
def test_transform_with_data_says_it_takes_none(data, kind):
    X, y = data
    est = make(kind)
    message = (rf"{type(est).__name__}\.transform\(\) takes no data and returns the learned set.*"
               r"fit_resample\(X, y\).*transform\(\)")
    with pytest.raises(TypeError, match=message):
        est.transform(X)  # unfitted: the call is wrong either way
    est.fit(X, y)
    with pytest.raises(TypeError, match=message):
        est.transform(X)
    with pytest.raises(TypeError, match=r"called with X=\.\.\."):
        est.transform(X=X)
    X_syn, y_syn = est.transform()
    assert len(X_syn) == len(y_syn) == 10


# --------------------------------------------------------------- more synthetic than real images
def test_ipc_above_class_sizes_says_what_was_asked(data):
    X, y = data  # 10 real images per class
    with pytest.warns(UserWarning) as caught:
        make("condenser", ipc=12).fit(X, y)
    message = str(caught[0].message)
    assert message.startswith("ipc=12 asks for 12 synthetic images per class (120 in all, from 100 real "
                              "images), but class 0 has 10 real images; ")
    assert "fewer than ipc=12 real samples" in message and "ipc <= 10" in message
    budget = {c: 1 for c in range(10)}
    budget[4] = 15
    with pytest.warns(UserWarning, match=r"ipc asks for 15 synthetic images of class 4, but that class has 10 "
                                         r"real images.*\(4 has 10 \(ipc 15\)\)"):
        make("dm", ipc=budget).fit(X, y)


# --------------------------------------------------------------- pandas column names
def test_feature_names_come_from_string_columns_only():
    from gradmatch._base import _feature_names
    from gradmatch.validation import InputLayout

    def layout(columns, kind="dataframe"):
        return InputLayout((len(columns),), None, "float32", kind, frame=(tuple(columns), ()))

    names = _feature_names(layout(["a", "b"]))
    assert names.dtype == object and names.tolist() == ["a", "b"]
    assert _feature_names(layout([0, 1])) is None
    assert _feature_names(layout(["a", 1])) is None
    assert _feature_names(layout(["a", "b"], kind="numpy")) is None


@pytest.mark.parametrize("kind", KINDS)
def test_dataframe_sets_feature_names_in(data, kind):
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X.reshape(100, -1), columns=[f"px{i}" for i in range(64)])
    est = make(kind).fit(frame, y)
    assert isinstance(est.feature_names_in_, np.ndarray) and est.feature_names_in_.dtype == object
    assert est.feature_names_in_.tolist() == list(frame.columns)
    est.fit(X.reshape(100, -1), y)  # a refit without column names drops them, as in scikit-learn
    assert not hasattr(est, "feature_names_in_")
    assert not hasattr(make(kind).fit(pd.DataFrame(X.reshape(100, -1)), y), "feature_names_in_")
