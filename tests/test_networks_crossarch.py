"""Tests of the networks of DC's cross-architecture study (paper Table 4).

LeNet, AlexNet, VGG11 / VGG11BN and ResNet18 / ResNet18BN, as in DC's public
``networks.py`` (VICO-UoE/DatasetCondensation), on DC's two input kinds: 28x28
grey and 32x32 colour. Layer specs and parameter counts are written out here by
hand from the architectures, never read off the code under test.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gradmatch.networks import (
    MLP,
    MODELS,
    VGG11,
    VGG11BN,
    AlexNet,
    ConvNet,
    LeNet,
    ResNet18,
    ResNet18BN,
    build_model,
    check_model,
    get_model_builder,
    list_models,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(autouse=True, scope="module")
def _free_cached_networks():
    yield
    _net.cache_clear()  # about 300 MB of weights


NEW = ("lenet", "alexnet", "vgg11", "vgg11bn", "resnet18", "resnet18bn")
CLASSES = {
    "lenet": LeNet,
    "alexnet": AlexNet,
    "vgg11": VGG11,
    "vgg11bn": VGG11BN,
    "resnet18": ResNet18,
    "resnet18bn": ResNet18BN,
}
GREY, COLOUR = (1, 28, 28), (3, 32, 32)
SHAPES = (GREY, COLOUR)
CASES = [(name, shape) for name in NEW for shape in SHAPES]
IDS = [f"{name}-{shape[0]}x{shape[1]}" for name, shape in CASES]


@functools.cache
def _net(name, shape):
    """One network per case (tests only read it, or run it in eval mode)."""
    torch.manual_seed(0)
    return build_model(name, shape, 10)


def _n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _last_linear(net: nn.Module) -> nn.Linear:
    return [m for m in net.modules() if isinstance(m, nn.Linear)][-1]


# ---------------------------------------------------------------------------
# The architectures, by hand
# ---------------------------------------------------------------------------

VGG11_CFG = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def expected_convs(name, channels):
    """(in, out, kernel, stride, padding, bias) of every Conv2d, in module order."""
    grey = channels == 1
    if name == "lenet":
        return [(channels, 6, 5, 1, 2 if grey else 0, True), (6, 16, 5, 1, 0, True)]
    if name == "alexnet":
        return [
            (channels, 128, 5, 1, 4 if grey else 2, True),
            (128, 192, 5, 1, 2, True),
            (192, 256, 3, 1, 1, True),
            (256, 192, 3, 1, 1, True),
            (192, 192, 3, 1, 1, True),
        ]
    if name in ("vgg11", "vgg11bn"):
        convs, cin = [], channels
        for i, v in enumerate(VGG11_CFG):
            if v != "M":
                convs.append((cin, v, 3, 1, 3 if grey and i == 0 else 1, True))
                cin = v
        return convs
    # ResNet-18: stem, then per block conv1, conv2 and (where the shape changes) the 1x1 shortcut.
    convs = [(channels, 64, 3, 1, 1, False)]
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for s in (stride, 1):
            convs += [(cin, planes, 3, s, 1, False), (planes, planes, 3, 1, 1, False)]
            if s != 1 or cin != planes:
                convs.append((cin, planes, 1, s, 0, False))
            cin = planes
    return convs


#: (in_features, out_features) of every Linear for 10 classes; the same for
#: 28x28 grey and 32x32 colour input, as DC hard-codes them.
EXPECTED_LINEARS = {
    "lenet": [(16 * 5 * 5, 120), (120, 84), (84, 10)],
    "alexnet": [(192 * 4 * 4, 10)],
    "vgg11": [(512, 10)],
    "vgg11bn": [(512, 10)],
    "resnet18": [(512, 10)],
    "resnet18bn": [(512, 10)],
}

#: Size of ``embed``: the input of the last Linear.
EMBED = {"lenet": 84, "alexnet": 3072, "vgg11": 512, "vgg11bn": 512, "resnet18": 512, "resnet18bn": 512}

#: Module counts by type. VGG ends with DC's AvgPool2d(1, 1); ResNet18 has a
#: stem conv and norm, 16 block convs and norms, 3 shortcut convs and norms and
#: the 4x4 average pool.
EXPECTED_COUNTS = {
    "lenet": dict(Conv2d=2, Linear=3, GroupNorm=0, BatchNorm2d=0, MaxPool2d=2, AvgPool2d=0),
    "alexnet": dict(Conv2d=5, Linear=1, GroupNorm=0, BatchNorm2d=0, MaxPool2d=3, AvgPool2d=0),
    "vgg11": dict(Conv2d=8, Linear=1, GroupNorm=8, BatchNorm2d=0, MaxPool2d=5, AvgPool2d=1),
    "vgg11bn": dict(Conv2d=8, Linear=1, GroupNorm=0, BatchNorm2d=8, MaxPool2d=5, AvgPool2d=1),
    "resnet18": dict(Conv2d=20, Linear=1, GroupNorm=20, BatchNorm2d=0, MaxPool2d=0, AvgPool2d=1),
    "resnet18bn": dict(Conv2d=20, Linear=1, GroupNorm=0, BatchNorm2d=20, MaxPool2d=0, AvgPool2d=1),
}


def _conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def _linear(n_in, n_out):
    return n_in * n_out + n_out


def _norm(c):
    return 2 * c  # affine weight and bias, GroupNorm and BatchNorm alike


def params_by_hand(name, channels, n_classes=10):
    if name == "lenet":
        return (_conv(channels, 6, 5) + _conv(6, 16, 5)
                + _linear(16 * 5 * 5, 120) + _linear(120, 84) + _linear(84, n_classes))
    if name == "alexnet":
        return (_conv(channels, 128, 5) + _conv(128, 192, 5) + _conv(192, 256, 3)
                + _conv(256, 192, 3) + _conv(192, 192, 3) + _linear(192 * 4 * 4, n_classes))
    if name in ("vgg11", "vgg11bn"):
        total, cin = 0, channels
        for v in VGG11_CFG:
            if v != "M":
                total += _conv(cin, v, 3) + _norm(v)
                cin = v
        return total + _linear(512, n_classes)

    def block(cin, cout):
        p = _conv(cin, cout, 3, bias=False) + _norm(cout) + _conv(cout, cout, 3, bias=False) + _norm(cout)
        if cin != cout:  # strided 1x1 shortcut
            p += _conv(cin, cout, 1, bias=False) + _norm(cout)
        return p

    stem = _conv(channels, 64, 3, bias=False) + _norm(64)
    stages = (block(64, 64) + block(64, 64) + block(64, 128) + block(128, 128)
              + block(128, 256) + block(256, 256) + block(256, 512) + block(512, 512))
    return stem + stages + _linear(512, n_classes)


#: The totals, checked against the formulas and against well-known counts:
#: LeNet-5 on MNIST 61,706; the CIFAR-10 VGG-11 (BatchNorm, Linear(512, 10))
#: 9,231,114 and ResNet-18 11,173,962 (instance norm has as many parameters).
PARAM_COUNTS = {
    ("lenet", 1): 61_706,
    ("lenet", 3): 62_006,
    ("alexnet", 1): 1_865_802,
    ("alexnet", 3): 1_872_202,
    ("vgg11", 1): 9_229_962,
    ("vgg11", 3): 9_231_114,
    ("vgg11bn", 1): 9_229_962,
    ("vgg11bn", 3): 9_231_114,
    ("resnet18", 1): 11_172_810,
    ("resnet18", 3): 11_173_962,
    ("resnet18bn", 1): 11_172_810,
    ("resnet18bn", 3): 11_173_962,
}


# ---------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", CASES, ids=IDS)
def test_forward_and_embed_shapes(name, shape):
    net = _net(name, shape).eval()
    torch.manual_seed(1)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        out = net(x)
        feats = net.embed(x)
        assert out.shape == (3, 10)
        assert feats.shape == (3, EMBED[name])
        # embed is exactly the input of the last Linear.
        torch.testing.assert_close(_last_linear(net)(feats), out)
    assert isinstance(net, CLASSES[name])


@pytest.mark.parametrize("name, shape", CASES, ids=IDS)
def test_module_counts_by_type(name, shape):
    counts = {t: 0 for t in EXPECTED_COUNTS[name]}
    for m in _net(name, shape).modules():
        if type(m).__name__ in counts:
            counts[type(m).__name__] += 1
    assert counts == EXPECTED_COUNTS[name]
    # No other kind of norm or pooling slipped in.
    others = [m for m in _net(name, shape).modules()
              if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.AdaptiveAvgPool2d,
                                nn.AdaptiveMaxPool2d, nn.Dropout))
              and not isinstance(m, nn.BatchNorm2d)]
    assert others == []


@pytest.mark.parametrize("name, shape", CASES, ids=IDS)
def test_conv_layers(name, shape):
    convs = [m for m in _net(name, shape).modules() if isinstance(m, nn.Conv2d)]
    got = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.bias is not None)
           for m in convs]
    assert got == expected_convs(name, shape[0])
    for m in convs:  # square kernels, strides and paddings
        assert m.kernel_size[0] == m.kernel_size[1]
        assert m.stride[0] == m.stride[1]
        assert m.padding[0] == m.padding[1]


@pytest.mark.parametrize("name, shape", CASES, ids=IDS)
def test_linear_layers(name, shape):
    linears = [m for m in _net(name, shape).modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == EXPECTED_LINEARS[name]
    assert all(m.bias is not None for m in linears)


@pytest.mark.parametrize("name, shape", CASES, ids=IDS)
def test_norm_layers(name, shape):
    net = _net(name, shape)
    norms = [m for m in net.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if name in ("lenet", "alexnet"):
        assert norms == []
        return
    # One norm after every conv, over that conv's channels.
    assert [n.num_channels if isinstance(n, nn.GroupNorm) else n.num_features for n in norms] == [
        c.out_channels for c in convs
    ]
    if name.endswith("bn"):
        assert all(type(n) is nn.BatchNorm2d and n.affine and n.track_running_stats for n in norms)
    else:
        # Instance norm: GroupNorm with one group per channel, affine.
        assert all(type(n) is nn.GroupNorm and n.num_groups == n.num_channels and n.affine for n in norms)


@pytest.mark.parametrize("name", NEW)
def test_batchnorm_only_in_the_bn_variants(name):
    for shape in SHAPES:
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in _net(name, shape).modules())
        assert has_bn == name.endswith("bn")


@pytest.mark.parametrize("name, shape", CASES, ids=IDS)
def test_parameter_count_by_hand(name, shape):
    expected = params_by_hand(name, shape[0])
    assert expected == PARAM_COUNTS[name, shape[0]]
    assert _n_params(_net(name, shape)) == expected


def test_grey_and_colour_differ_only_in_the_first_layer():
    # 28x28 grey is padded (or, for ResNet18, happens) to end with the same
    # feature map as 32x32 colour, so only the first conv's input channels differ.
    for name in NEW:
        diff = _n_params(_net(name, COLOUR)) - _n_params(_net(name, GREY))
        k = expected_convs(name, 3)[0][2]
        out = expected_convs(name, 3)[0][1]
        assert diff == 2 * out * k * k, name


def test_parameter_count_follows_n_classes():
    # Only the last Linear depends on the number of classes.
    for name in NEW:
        a = _n_params(build_model(name, GREY, 10))
        b = _n_params(build_model(name, GREY, 3))
        assert a - b == 7 * (EMBED[name] + 1), name
        assert b == params_by_hand(name, 1, n_classes=3)


# ---------------------------------------------------------------------------
# Feature maps
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=["grey28", "colour32"])
def test_feature_map_sides(shape):
    x = torch.zeros(2, *shape)
    with torch.no_grad():
        assert _net("lenet", shape).eval().features(x).shape == (2, 16, 5, 5)
        assert _net("alexnet", shape).eval().features(x).shape == (2, 192, 4, 4)
        assert _net("vgg11", shape).eval().features(x).shape == (2, 512, 1, 1)
        # ResNet-18: 28 -> 28, 14, 7, 4 and 32 -> 32, 16, 8, 4 before the 4x4 pool.
        net = _net("resnet18", shape).eval()
        h = torch.relu(net.bn1(net.conv1(x)))
        sides = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            h = layer(h)
            sides.append(h.shape[-1])
        assert sides == ([28, 14, 7, 4] if shape == GREY else [32, 16, 8, 4])
        assert h.shape == (2, 512, 4, 4)


def test_lenet_forward_matches_hand_composition():
    torch.manual_seed(3)
    net = LeNet(GREY, 4).double()
    x = torch.randn(2, *GREY, dtype=torch.float64)
    c1, c2 = net.features[0], net.features[3]
    h = F.max_pool2d(torch.relu(F.conv2d(x, c1.weight, c1.bias, padding=2)), 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, c2.weight, c2.bias)), 2).flatten(1)
    h = torch.relu(h @ net.fc1.weight.T + net.fc1.bias)
    h = torch.relu(h @ net.fc2.weight.T + net.fc2.bias)
    torch.testing.assert_close(net.embed(x), h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net(x), h @ net.fc3.weight.T + net.fc3.bias, rtol=1e-10, atol=1e-12)


def test_resnet_downsampling_block_matches_hand_composition():
    # First block of layer2 (64 -> 128, stride 2, projection shortcut), instance norm.
    torch.manual_seed(4)
    block = ResNet18(COLOUR, 10).layer2[0].double()
    with torch.no_grad():
        for p in block.parameters():  # non-trivial affine norm parameters
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 64, 8, 8, dtype=torch.float64)

    def inorm(h, gn):
        var = h.var(dim=(2, 3), unbiased=False, keepdim=True)
        h = (h - h.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(var + gn.eps)
        return h * gn.weight.view(1, -1, 1, 1) + gn.bias.view(1, -1, 1, 1)

    h = torch.relu(inorm(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    h = inorm(F.conv2d(h, block.conv2.weight, padding=1), block.bn2)
    sc_conv, sc_norm = block.shortcut[0], block.shortcut[1]
    out = torch.relu(h + inorm(F.conv2d(x, sc_conv.weight, stride=2), sc_norm))
    torch.testing.assert_close(block(x), out, rtol=1e-8, atol=1e-10)
    assert out.shape == (2, 128, 4, 4)
    # An identity block adds its input.
    ident = ResNet18(COLOUR, 10).layer1[1].double()
    y = torch.randn(2, 64, 4, 4, dtype=torch.float64)
    h = torch.relu(inorm(F.conv2d(y, ident.conv1.weight, padding=1), ident.bn1))
    h = inorm(F.conv2d(h, ident.conv2.weight, padding=1), ident.bn2)
    torch.testing.assert_close(ident(y), torch.relu(h + y), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["vgg11", "resnet18"])
def test_instance_norm_variants_treat_samples_independently(name):
    # No batch statistics, even in train mode (gradient matching relies on it).
    net = _net(name, COLOUR).train()
    torch.manual_seed(5)
    x = torch.randn(3, *COLOUR)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[:1], net(x[:1]), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# Other input sizes
# ---------------------------------------------------------------------------


def test_classifier_is_sized_from_the_input():
    # Beyond DC's two input kinds, the classifier follows the feature map.
    assert LeNet((1, 32, 32), 10).fc1.in_features == 16 * 6 * 6  # 32 -> 16 -> 12 -> 6
    assert AlexNet((3, 64, 64), 10).classifier.in_features == 192 * 8 * 8
    assert VGG11((3, 64, 64), 10).classifier.in_features == 512 * 2 * 2
    assert ResNet18((3, 64, 64), 10).classifier.in_features == 512 * 2 * 2  # 8x8 map, 4x4 pool
    assert ResNet18((3, 32, 48), 10).classifier.in_features == 512 * 1 * 1  # 4x6 map -> 1x1
    net = VGG11((3, 64, 64), 5).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("lenet", (1, 8, 8)),  # 8 -> 8 -> 4 -> 0
        ("lenet", (3, 12, 12)),  # 12 -> 8 -> 4 -> 0
        ("alexnet", (3, 4, 4)),  # 4 -> 4 -> 2 -> 2 -> 1 -> 1 -> 0
        ("vgg11", (3, 31, 31)),  # five halvings: 31 -> 0
        ("vgg11bn", (3, 32, 16)),
        ("resnet18", (3, 24, 24)),  # 24 -> 3 before the 4x4 pool
        ("resnet18bn", (1, 8, 8)),
    ],
)
def test_input_too_small_raises(name, shape):
    with pytest.raises(ValueError, match="too small"):
        build_model(name, shape, 10)


@pytest.mark.parametrize("name", NEW)
def test_flat_input_raises(name):
    with pytest.raises(ValueError, match=r"needs image input of shape \(C, H, W\)"):
        build_model(name, (64,), 10)


def test_unknown_norm_raises():
    for cls in (VGG11, ResNet18):
        with pytest.raises(ValueError, match="unknown norm 'layernorm'"):
            cls(COLOUR, 10, norm="layernorm")


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_models_lists_every_builtin():
    # One registry: MODELS (registration order) and list_models() (sorted) are its names.
    assert MODELS == ("convnet", "mlp", "lenet", "alexnet", "vgg11", "vgg11bn", "resnet18", "resnet18bn")
    assert list_models() == sorted(MODELS)
    assert {name: get_model_builder(name) for name in NEW} == CLASSES
    assert isinstance(build_model("convnet", GREY, 10), ConvNet)
    assert isinstance(build_model("mlp", GREY, 10), MLP)


@pytest.mark.parametrize("name", NEW)
def test_build_model_by_new_name(name):
    check_model(name)
    net = build_model(name, [1, 28, 28], 7)
    assert type(net) is CLASSES[name]
    assert _last_linear(net).out_features == 7
    a, b = build_model(name, COLOUR, 7), build_model(name, COLOUR, 7)
    first = [m for m in a.modules() if isinstance(m, nn.Conv2d)][0]
    assert not torch.equal(first.weight, [m for m in b.modules() if isinstance(m, nn.Conv2d)][0].weight)


@pytest.mark.parametrize("bad", ["resnet", "LeNet", "vgg", "resnet18_bn", "VGG11BN", "alexnetbn"])
def test_unknown_name_lists_all_valid_names(bad):
    for call in (lambda: build_model(bad, COLOUR, 3), lambda: check_model(bad)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert f"unknown model {bad!r}" in msg
        for name in MODELS:
            assert repr(name) in msg
