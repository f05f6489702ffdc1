"""Tests of DC's ConvNet and MLP, of ``build_model`` and of the network registry (docs/design.md section 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gradmatch import networks
from gradmatch.networks import (
    MLP,
    MODELS,
    ConvNet,
    build_model,
    check_model,
    conv_output_size,
    get_model,
    get_model_builder,
    list_models,
    register_model,
    unregister_model,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _blocks(net: ConvNet):
    mods = list(net.features)
    assert len(mods) % 4 == 0
    return [mods[i : i + 4] for i in range(0, len(mods), 4)]


@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8), (3, 8, 8)])
def test_convnet_block_structure(input_shape):
    net = ConvNet(input_shape, 10)
    blocks = _blocks(net)
    assert len(blocks) == 3
    in_ch = input_shape[0]
    for d, (conv, norm, act, pool) in enumerate(blocks):
        assert type(conv) is nn.Conv2d
        assert conv.in_channels == in_ch
        assert conv.out_channels == 128
        assert conv.kernel_size == (3, 3)
        assert conv.stride == (1, 1)
        assert conv.bias is not None
        expected_pad = 3 if (input_shape[0] == 1 and d == 0) else 1
        assert conv.padding == (expected_pad, expected_pad), f"block {d}"
        # Instance norm: GroupNorm with one group per channel, affine.
        assert type(norm) is nn.GroupNorm
        assert norm.num_groups == 128
        assert norm.num_channels == 128
        assert norm.affine is True
        assert type(act) is nn.ReLU
        assert type(pool) is nn.AvgPool2d
        assert pool.kernel_size in (2, (2, 2))
        assert pool.stride in (2, (2, 2))
        in_ch = 128
    assert type(net.classifier) is nn.Linear
    assert net.classifier.out_features == 10


@pytest.mark.parametrize(
    "input_shape, in_features, feat_side",
    [
        ((1, 28, 28), 128 * 4 * 4, 4),  # 28 + 6 - 2 = 32 -> 16 -> 8 -> 4
        ((1, 8, 8), 128, 1),  # 8 + 6 - 2 = 12 -> 6 -> 3 -> 1
        ((3, 32, 32), 128 * 4 * 4, 4),  # 32 -> 16 -> 8 -> 4
        ((3, 8, 8), 128, 1),  # 8 -> 4 -> 2 -> 1
        ((1, 32, 32), 128 * 4 * 4, 4),  # 36 -> 18 -> 9 -> 4
    ],
)
def test_convnet_classifier_size_and_output_shapes(input_shape, in_features, feat_side):
    net = ConvNet(input_shape, 7)
    assert net.classifier.in_features == in_features
    assert conv_output_size(input_shape[0], input_shape[1]) == feat_side
    x = torch.zeros(3, *input_shape)
    assert net.features(x).shape == (3, 128, feat_side, feat_side)
    assert net.embed(x).shape == (3, in_features)
    assert net(x).shape == (3, 7)


def test_convnet_non_square_input():
    net = ConvNet((3, 32, 16), 5)
    # 32 -> 4, 16 -> 8 -> 4 -> 2.
    assert net.classifier.in_features == 128 * 4 * 2
    assert net(torch.zeros(2, 3, 32, 16)).shape == (2, 5)


def test_convnet_parameter_count_by_hand():
    # (1, 28, 28), 10 classes.
    conv1 = 1 * 128 * 3 * 3 + 128
    conv23 = 128 * 128 * 3 * 3 + 128
    norm = 2 * 128
    linear = 128 * 4 * 4 * 10 + 10
    expected = conv1 + 2 * conv23 + 3 * norm + linear
    assert expected == 317_706
    net = ConvNet((1, 28, 28), 10)
    assert _n_params(net) == expected
    # Parameter order and shapes (the distances rely on them).
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [
        (128, 1, 3, 3), (128,), (128,), (128,),
        (128, 128, 3, 3), (128,), (128,), (128,),
        (128, 128, 3, 3), (128,), (128,), (128,),
        (10, 2048), (10,),
    ]


def test_convnet_parameter_count_rgb():
    net = ConvNet((3, 32, 32), 10)
    expected = (3 * 128 * 9 + 128) + 2 * (128 * 128 * 9 + 128) + 3 * 256 + (2048 * 10 + 10)
    assert _n_params(net) == expected


def test_convnet_forward_matches_hand_composition():
    torch.manual_seed(0)
    net = ConvNet((1, 8, 8), 4).double()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    h = x
    for conv, norm, _, _ in _blocks(net):
        h = torch.nn.functional.conv2d(h, conv.weight, conv.bias, padding=conv.padding)
        # Instance norm by hand: per sample and channel over the spatial dims.
        mean = h.mean(dim=(2, 3), keepdim=True)
        var = h.var(dim=(2, 3), unbiased=False, keepdim=True)
        h = (h - mean) / torch.sqrt(var + norm.eps)
        h = h * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
        h = torch.relu(h)
        h = torch.nn.functional.avg_pool2d(h, 2)
    out = h.flatten(1) @ net.classifier.weight.T + net.classifier.bias
    torch.testing.assert_close(net(x), out, rtol=1e-8, atol=1e-10)


def test_convnet_samples_are_independent():
    # Instance norm has no batch statistics: one sample's output does not
    # depend on the others in the batch (paper eq. 5 relies on it).
    torch.manual_seed(1)
    net = ConvNet((1, 8, 8), 3).double()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(net(x)[:1], net(x[:1]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("input_shape", [(3, 4, 4), (3, 7, 7), (1, 1, 1), (3, 32, 4), (3, 2, 32)])
def test_convnet_input_too_small_raises(input_shape):
    with pytest.raises(ValueError, match="too small"):
        ConvNet(input_shape, 10)


def test_grey_padding_decides_the_smallest_input():
    # Grey input gets padding 3 in the first conv only: 4x4 gives
    # 4 + 6 - 2 = 8 -> 4, then 4 -> 2, then 2 -> 1 (accepted), while 2x2 gives
    # 6 -> 3, then 3 -> 1, then 1 -> 0 (too small).
    assert conv_output_size(1, 4) == 1
    assert ConvNet((1, 4, 4), 2)(torch.zeros(1, 1, 4, 4)).shape == (1, 2)
    with pytest.raises(ValueError):
        ConvNet((1, 2, 2), 2)


# ---------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("input_shape, d", [((1, 28, 28), 784), ((64,), 64), ((1, 8, 8), 64), ((3, 4, 5), 60)])
def test_mlp_structure(input_shape, d):
    net = MLP(input_shape, 6)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(d, 128), (128, 128), (128, 6)]
    assert all(m.bias is not None for m in linears)
    assert _n_params(net) == (d * 128 + 128) + (128 * 128 + 128) + (128 * 6 + 6)
    x = torch.zeros(5, *input_shape)
    assert net(x).shape == (5, 6)


def test_mlp_parameter_count_by_hand():
    assert _n_params(MLP((1, 28, 28), 10)) == 100_480 + 16_512 + 1_290 == 118_282


def test_mlp_forward_is_linear_relu_linear_relu_linear():
    torch.manual_seed(2)
    net = MLP((1, 2, 2), 3).double()
    x = torch.randn(6, 1, 2, 2, dtype=torch.float64)
    h = x.reshape(6, -1)
    h = torch.relu(h @ net.fc1.weight.T + net.fc1.bias)
    h = torch.relu(h @ net.fc2.weight.T + net.fc2.bias)
    out = h @ net.fc3.weight.T + net.fc3.bias
    torch.testing.assert_close(net(x), out, rtol=1e-10, atol=1e-12)
    # The ReLUs matter: a purely linear stack would differ.
    lin = ((x.reshape(6, -1) @ net.fc1.weight.T + net.fc1.bias) @ net.fc2.weight.T + net.fc2.bias)
    lin = lin @ net.fc3.weight.T + net.fc3.bias
    assert not torch.allclose(net(x), lin)


# ---------------------------------------------------------------------------
# build_model
# ---------------------------------------------------------------------------


def test_build_model_by_name():
    # DC's cross-architecture networks follow (tests/test_networks_crossarch.py).
    assert MODELS[:2] == ("convnet", "mlp")
    conv = build_model("convnet", (1, 28, 28), 10)
    assert isinstance(conv, ConvNet) and conv.classifier.out_features == 10
    mlp = build_model("mlp", (64,), 4)
    assert isinstance(mlp, MLP) and mlp.fc3.out_features == 4


def test_build_model_with_factory():
    calls = []

    def factory(input_shape, n_classes):
        calls.append((input_shape, n_classes))
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], n_classes))

    net = build_model(factory, [np.int64(1), 8, 8], np.int64(3))
    assert calls == [((1, 8, 8), 3)]
    shape, n = calls[0]
    assert isinstance(shape, tuple) and all(type(v) is int for v in shape)
    assert type(n) is int
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("bad", ["resnet", "ConvNet", "", "MLP"])
def test_build_model_unknown_name_raises_listing_valid_names(bad):
    for call in (lambda: build_model(bad, (1, 8, 8), 3), lambda: check_model(bad)):
        with pytest.raises(ValueError) as info:
            call()
        assert "'convnet'" in str(info.value)
        assert "'mlp'" in str(info.value)


@pytest.mark.parametrize("returned", [None, 3, "convnet", lambda x: x, torch.zeros(2)])
def test_build_model_factory_returning_non_module_raises(returned):
    with pytest.raises(TypeError, match="Module"):
        build_model(lambda shape, n: returned, (1, 8, 8), 3)


@pytest.mark.parametrize("bad", [None, 3, ["convnet"], nn.Linear(2, 2).weight])
def test_build_model_non_callable_raises(bad):
    with pytest.raises(TypeError):
        build_model(bad, (1, 8, 8), 3)


def test_fresh_models_are_randomly_initialised():
    a = build_model("convnet", (1, 8, 8), 3)
    b = build_model("convnet", (1, 8, 8), 3)
    assert not torch.equal(a.features[0].weight, b.features[0].weight)


# ---------------------------------------------------------------------------
# The registry (register_model, list_models, get_model_builder, get_model)
# ---------------------------------------------------------------------------

BUILTIN = ("convnet", "mlp", "lenet", "alexnet", "vgg11", "vgg11bn", "resnet18", "resnet18bn")


def _tiny(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_classes))


@pytest.fixture
def registry():
    """Leaves the registry as it found it, whatever the test registers."""
    before = dict(networks._REGISTRY)
    yield
    networks._REGISTRY.clear()
    networks._REGISTRY.update(before)
    networks._registry_changed()
    assert networks.MODELS == BUILTIN


def test_models_is_the_registry_in_registration_order():
    assert networks.MODELS == MODELS == BUILTIN
    assert list_models() == sorted(MODELS)
    for name in MODELS:
        assert get_model_builder(name) is networks._REGISTRY[name]
    assert get_model_builder("convnet") is ConvNet and get_model_builder("mlp") is MLP


def test_list_models_filters_like_torchvision():
    assert list_models(include="vgg*") == ["vgg11", "vgg11bn"]
    assert list_models(include=["lenet", "mlp"]) == ["lenet", "mlp"]
    assert list_models(exclude="*bn") == ["alexnet", "convnet", "lenet", "mlp", "resnet18", "vgg11"]
    assert list_models(include="resnet*", exclude=["*bn"]) == ["resnet18"]
    assert list_models(include="RESNET*") == []  # names are case-sensitive


@pytest.mark.parametrize("bad", ["resnet", "ConvNet", "", ["convnet"]])
def test_get_model_builder_unknown_name_lists_the_registered_ones(bad):
    with pytest.raises(ValueError, match="unknown model") as info:
        get_model_builder(bad)
    for name in BUILTIN:
        assert repr(name) in str(info.value)


def test_get_model_passes_keyword_config():
    net = get_model("convnet", input_shape=(1, 8, 8), n_classes=4, width=16, depth=2)
    assert isinstance(net, ConvNet) and net.classifier.out_features == 4
    assert net.features[0].out_channels == 16 and len(net.features) == 8


def test_register_custom_model(registry):
    returned = register_model("tiny")(_tiny)
    assert returned is _tiny  # the decorator hands the builder back unchanged
    assert networks.MODELS == (*BUILTIN, "tiny")
    assert list_models() == sorted(networks.MODELS)
    assert get_model_builder("tiny") is _tiny
    check_model("tiny")
    net = build_model("tiny", (1, 8, 8), 3)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError) as info:
        check_model("tinynet")
    assert "'tiny'" in str(info.value)  # the message lists the user's name too
    assert unregister_model("tiny") is _tiny
    assert networks.MODELS == BUILTIN
    with pytest.raises(ValueError, match="unknown model 'tiny'"):
        build_model("tiny", (1, 8, 8), 3)


def test_register_model_decorates_classes_and_defaults_to_the_name(registry):
    @register_model()
    class WideMLP(MLP):
        def __init__(self, input_shape, n_classes):
            super().__init__(input_shape, n_classes, hidden=32)

    assert get_model_builder("WideMLP") is WideMLP
    assert isinstance(build_model("WideMLP", (1, 8, 8), 10), WideMLP)


@pytest.mark.parametrize("name", ["convnet", "tiny"])
def test_register_model_refuses_a_duplicate_name(registry, name):
    register_model("tiny")(_tiny)

    def other(input_shape, n_classes):
        return _tiny(input_shape, n_classes)

    with pytest.raises(ValueError, match=f"already registered under the name '{name}'"):
        register_model(name)(other)
    assert get_model_builder(name) is (ConvNet if name == "convnet" else _tiny)  # not replaced
    assert networks.MODELS == (*BUILTIN, "tiny")


def test_register_model_refuses_bad_names_and_builders(registry):
    with pytest.raises(ValueError, match="'auto' cannot be a network name"):
        register_model("auto")(_tiny)
    for bad in ("", 3):
        with pytest.raises(TypeError, match="non-empty string"):
            register_model(bad)
    with pytest.raises(TypeError, match="builder"):
        register_model("x")(3)
    assert networks.MODELS == BUILTIN


def test_unregister_model_refuses_builtins_and_unknown_names():
    with pytest.raises(ValueError, match="built-in"):
        unregister_model("convnet")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        unregister_model("nope")
    assert networks.MODELS == BUILTIN


def test_condenser_accepts_a_registered_model(registry, digits, fast):
    from gradmatch import GradientMatchingCondenser

    calls = []

    @register_model("tiny")
    def tiny(input_shape, n_classes):
        calls.append((input_shape, n_classes))
        return _tiny(input_shape, n_classes)

    X, y = digits
    cond = GradientMatchingCondenser(**{**fast, "model": "tiny", "ipc": 1})
    X_syn, y_syn = cond.fit_resample(X, y)
    assert X_syn.shape == (10, 8, 8) and calls and calls[0] == ((1, 8, 8), 10)
    with pytest.raises(ValueError, match="'model' parameter"):
        GradientMatchingCondenser(**{**fast, "model": "tinynet"}).fit_resample(X, y)
