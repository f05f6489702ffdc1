"""The networks of DC's public implementation (docs/design.md section 2).

* :class:`ConvNet`: ``depth`` x [Conv 3x3 (width 128) -> instance norm
  (GroupNorm with one group per channel, affine) -> ReLU -> AvgPool 2x2]
  -> Linear. Grey (1-channel) input gets padding 3 in the first conv, as DC
  does for MNIST, so 28x28 becomes 32x32 before pooling. The classifier is
  sized from the actual input.
* :class:`MLP`: Linear(d, 128) -> ReLU -> Linear(128, 128) -> ReLU ->
  Linear(128, C).

The other networks of DC's cross-architecture study (paper Table 4), for 28x28
grey and 32x32 colour images as in DC's ``networks.py``:

* :class:`LeNet`: Conv 5x5 (6) -> ReLU -> MaxPool -> Conv 5x5 (16) -> ReLU ->
  MaxPool -> Linear 120 -> ReLU -> Linear 84 -> ReLU -> Linear.
* :class:`AlexNet`: DC's small AlexNet, five convs (128, 192, 256, 192, 192)
  with ReLU, three max-pools, one Linear.
* :class:`VGG11` (instance norm, DC's default) and :class:`VGG11BN`
  (BatchNorm).
* :class:`ResNet18` (instance norm, DC's default) and :class:`ResNet18BN`
  (BatchNorm): the CIFAR ResNet-18 (3x3 stem, no max-pool, 4x4 average pool).

Grey input gets the extra first-layer padding DC gives it (LeNet 2, AlexNet 4,
VGG 3) so that 28x28 maps like 32x32; ResNet18 has none and still ends with a
4x4 map. Every classifier is sized from the actual input: for (1, 28, 28) and
(3, 32, 32) that is DC's hard-coded size, other sizes (which DC's fixed
classifiers reject) get the size their feature map has, and inputs too small for
the feature stack raise a ValueError. Each network has ``embed(x)``, the
flattened features fed to its last Linear.

The networks are held in one registry, shaped like torchvision's
(``torchvision.models``): :func:`register_model` adds a builder under a name
(the networks above are registered as ``"convnet"``, ``"mlp"``, ``"lenet"``,
``"alexnet"``, ``"vgg11"``, ``"vgg11bn"``, ``"resnet18"`` and
``"resnet18bn"``, in that order), :func:`list_models` lists the names,
:func:`get_model_builder` and :func:`get_model` look one up. :data:`MODELS`
is the tuple of registered names in registration order. :func:`build_model`
resolves the ``model`` parameter of the estimators: a registered name or a
factory ``factory(input_shape, n_classes) -> nn.Module``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = [
    "MODELS",
    "AlexNet",
    "ConvNet",
    "LeNet",
    "MLP",
    "ResNet18",
    "ResNet18BN",
    "VGG11",
    "VGG11BN",
    "build_model",
    "check_model",
    "check_network_fits",
    "conv_output_size",
    "get_model",
    "get_model_builder",
    "list_models",
    "register_model",
    "unregister_model",
]


# ---------------------------------------------------------------------------
# The registry of network names (torchvision.models' shape)
# ---------------------------------------------------------------------------

_B = TypeVar("_B", bound=Callable[..., nn.Module])

#: Name -> builder, in registration order (the order ``MODELS`` gives).
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

#: The registered network names in registration order: the built-in ones
#: (``"convnet"``, ``"mlp"``, ``"lenet"``, ``"alexnet"``, ``"vgg11"``,
#: ``"vgg11bn"``, ``"resnet18"``, ``"resnet18bn"``), then the user's. Rebuilt
#: from the registry by :func:`register_model` and :func:`unregister_model`;
#: ``gradmatch.networks.MODELS`` is current, a copy taken by ``from ... import``
#: is not.
MODELS: tuple[str, ...] = ()

#: Names that mean something else to the estimators' ``model`` parameter.
_RESERVED = frozenset({"auto"})


def _registry_changed() -> None:
    global MODELS
    MODELS = tuple(_REGISTRY)


def register_model(name: str | None = None) -> Callable[[_B], _B]:
    """Register a network builder under ``name`` (a decorator).

    The shape of ``torchvision.models.register_model``. Once registered, the
    name is a valid ``model`` for every estimator, :func:`build_model` and the
    evaluation functions, and it appears in :func:`list_models` and ``MODELS``.

    Parameters
    ----------
    name : str, optional
        The name to register under; the builder's ``__name__`` if None. Names
        are case-sensitive. ``"auto"`` is reserved (the estimators' choice
        between ConvNet and MLP).

    Returns
    -------
    decorator : callable
        Takes the builder, a class or function called as
        ``builder(input_shape, n_classes)`` that returns an ``nn.Module``
        (``input_shape`` a tuple of ints, ``n_classes`` an int), registers it
        and returns it unchanged.

    Raises
    ------
    ValueError
        If the name is already registered (or reserved); names are never
        silently replaced. :func:`unregister_model` frees a name registered
        by the user.
    TypeError
        If the name is not a non-empty string or the builder is not callable.

    See Also
    --------
    list_models, get_model_builder, unregister_model

    Examples
    --------
    >>> import math
    >>> from torch import nn
    >>> from gradmatch.networks import build_model, register_model, unregister_model
    >>> @register_model("tiny")
    ... def tiny(input_shape, n_classes):
    ...     return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_classes))
    >>> build_model("tiny", (1, 8, 8), 10)
    Sequential(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=64, out_features=10, bias=True)
    )

    A name is registered once:

    >>> register_model("tiny")(tiny)
    Traceback (most recent call last):
    ...
    ValueError: a network is already registered under the name 'tiny' (tiny); ...
    >>> unregister_model("tiny") is tiny
    True

    With the name registered, ``GradientMatchingCondenser(model="tiny")``
    condenses with this network.
    """
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"register_model needs a non-empty string name, got {name!r}")

    def wrapper(builder: _B) -> _B:
        if not callable(builder):
            raise TypeError(
                "register_model decorates a builder (input_shape, n_classes) -> nn.Module, "
                f"got {type(builder).__name__}"
            )
        key = name if name is not None else getattr(builder, "__name__", None)
        if not isinstance(key, str) or not key:
            raise TypeError(f"register_model cannot name {builder!r}: pass a name, register_model('name')")
        if key in _RESERVED:
            raise ValueError(f"{key!r} cannot be a network name: model={key!r} means the estimators' default choice")
        if key in _REGISTRY:
            existing = getattr(_REGISTRY[key], "__qualname__", repr(_REGISTRY[key]))
            raise ValueError(
                f"a network is already registered under the name {key!r} ({existing}); "
                "register yours under another name"
            )
        _REGISTRY[key] = builder
        _registry_changed()
        return builder

    return wrapper


def unregister_model(name: str) -> Callable[..., nn.Module]:
    """Remove a network that the user registered; returns its builder.

    The built-in networks cannot be removed.

    Parameters
    ----------
    name : str
        A name given to :func:`register_model`.

    Returns
    -------
    builder : callable
        The builder that was registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered or names a built-in network.
    """
    if name in _BUILTIN_NAMES:
        raise ValueError(f"{name!r} is a built-in network and cannot be unregistered")
    builder = get_model_builder(name)
    del _REGISTRY[name]
    _registry_changed()
    return builder


def list_models(include: str | Iterable[str] | None = None,
                exclude: str | Iterable[str] | None = None) -> list[str]:
    """The registered network names, sorted.

    As ``torchvision.models.list_models``: ``include`` and ``exclude`` are
    shell-style patterns (:mod:`fnmatch`); a name is listed when it matches
    one of ``include`` (every name if None) and none of ``exclude``.

    Parameters
    ----------
    include : str or iterable of str, optional
        Patterns of the names to list.
    exclude : str or iterable of str, optional
        Patterns of the names to leave out.

    Returns
    -------
    names : list of str
        Sorted. ``MODELS`` holds the same names in registration order.

    See Also
    --------
    register_model, get_model_builder

    Examples
    --------
    >>> from gradmatch.networks import list_models
    >>> list_models()
    ['alexnet', 'convnet', 'lenet', 'mlp', 'resnet18', 'resnet18bn', 'vgg11', 'vgg11bn']
    >>> list_models(include="resnet*", exclude="*bn")
    ['resnet18']
    """
    names = set(_REGISTRY)
    if include is not None:
        patterns = [include] if isinstance(include, str) else list(include)
        names = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    if exclude is not None:
        patterns = [exclude] if isinstance(exclude, str) else list(exclude)
        names = {n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    return sorted(names)


def _unknown_model_message(name) -> str:
    valid = ", ".join(repr(m) for m in _REGISTRY)
    return (
        f"unknown model {name!r}: valid values are {valid} or a factory "
        "(input_shape, n_classes) -> nn.Module"
    )


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name``.

    Parameters
    ----------
    name : str
        A registered name (case-sensitive).

    Returns
    -------
    builder : callable
        ``builder(input_shape, n_classes) -> nn.Module``.

    Raises
    ------
    ValueError
        If no network is registered under ``name``; the message lists the
        registered names.

    Examples
    --------
    >>> get_model_builder("convnet")
    <class 'gradmatch.networks.ConvNet'>
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ValueError(_unknown_model_message(name)) from None


def get_model(name: str, **config: Any) -> nn.Module:
    """Build the network registered under ``name`` from keyword arguments.

    ``get_model_builder(name)(**config)``, as ``torchvision.models.get_model``.
    :func:`build_model` is the estimators' entry point (it also accepts a
    factory and checks the result).

    Parameters
    ----------
    name : str
        A registered name.
    **config
        Keyword arguments of the builder: ``input_shape`` and ``n_classes``,
        and any the builder has besides (``width`` and ``depth`` of
        :class:`ConvNet`, say).

    Returns
    -------
    net : nn.Module

    Examples
    --------
    >>> get_model("convnet", input_shape=(1, 28, 28), n_classes=10, depth=2).classifier
    Linear(in_features=8192, out_features=10, bias=True)
    """
    return get_model_builder(name)(**config)




def conv_output_size(channels: int, size: int, depth: int = 3) -> int:
    """Spatial size after ConvNet's feature stack for a square-ish side ``size``."""
    for d in range(depth):
        padding = 3 if channels == 1 and d == 0 else 1
        size = size + 2 * padding - 2  # 3x3 conv
        size //= 2  # 2x2 average pooling
    return size


class _FeatureClassifier(nn.Module):
    """A network that is ``embed`` (features, flattened) followed by a Linear ``classifier``."""

    classifier: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@register_model("convnet")
class ConvNet(_FeatureClassifier):
    """DC's ConvNet.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``.
    n_classes : int
        Number of outputs.
    width : int, default=128
        Channels of every conv layer.
    depth : int, default=3
        Number of conv blocks.

    Examples
    --------
    >>> net = ConvNet((1, 28, 28), 10)
    >>> net.classifier
    Linear(in_features=2048, out_features=10, bias=True)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, width: int = 128, depth: int = 3):
        super().__init__()
        channels, height, width_px = (int(v) for v in input_shape)
        out_h = conv_output_size(channels, height, depth)
        out_w = conv_output_size(channels, width_px, depth)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"input of shape {tuple(input_shape)} is too small for a depth-{depth} ConvNet "
                "(each block halves the side); use model='mlp' or larger images"
            )
        layers: list[nn.Module] = []
        in_channels = channels
        for d in range(depth):
            padding = 3 if channels == 1 and d == 0 else 1
            layers += [
                nn.Conv2d(in_channels, width, kernel_size=3, padding=padding),
                nn.GroupNorm(width, width, affine=True),  # instance norm, as DC
                nn.ReLU(inplace=True),
                nn.AvgPool2d(kernel_size=2, stride=2),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * out_h * out_w, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened features fed to the classifier."""
        return self.features(x).flatten(1)


@register_model("mlp")
class MLP(nn.Module):
    """DC's MLP: two hidden layers of 128 ReLU units.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample; flattened.
    n_classes : int
        Number of outputs.
    hidden : int, default=128
        Units of each hidden layer.

    Examples
    --------
    >>> MLP((1, 8, 8), 10)(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, hidden: int = 128):
        super().__init__()
        n_in = 1
        for v in input_shape:
            n_in *= int(v)
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x.flatten(1)))
        return torch.relu(self.fc2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.embed(x))


# ---------------------------------------------------------------------------
# The other networks of DC's cross-architecture study
# ---------------------------------------------------------------------------

#: Normalisation layers of VGG11 / ResNet18: DC's 'instancenorm' (its default)
#: and 'batchnorm'.
NORMS = ("instancenorm", "batchnorm")


def _image_shape(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} needs image input of shape (C, H, W), got input_shape {shape}")
    return shape


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        valid = ", ".join(repr(n) for n in NORMS)
        raise ValueError(f"unknown norm {norm!r}: valid values are {valid}")


def _norm_layer(norm: str, channels: int) -> nn.Module:
    _check_norm(norm)
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)  # one group per channel
    return nn.BatchNorm2d(channels)


def _side_after(size: int, ops) -> int:
    """Side of a feature map after ``ops``; 0 as soon as one step leaves nothing.

    ``ops`` holds ``("conv", kernel, padding, stride)`` and ``("pool", kernel)``
    steps (pooling with stride = kernel, floor mode, as PyTorch's default).
    """
    for op in ops:
        if op[0] == "conv":
            _, kernel, padding, stride = op
            size = (size + 2 * padding - kernel) // stride + 1
        else:
            size //= op[1]
        if size < 1:
            return 0
    return size


def _feature_sides(input_shape, ops, name: str) -> tuple[int, int]:
    """Output (H, W) of a feature stack; a ValueError where it would be empty."""
    out_h, out_w = _side_after(input_shape[1], ops), _side_after(input_shape[2], ops)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"input of shape {tuple(input_shape)} is too small for {name} "
            "(DC uses it on 28x28 grey and 32x32 colour images)"
        )
    return out_h, out_w


@register_model("lenet")
class LeNet(nn.Module):
    """DC's LeNet.

    Conv 5x5 (6 channels; padding 2 for grey input, none for colour) -> ReLU ->
    MaxPool 2 -> Conv 5x5 (16) -> ReLU -> MaxPool 2 -> Linear 120 -> ReLU ->
    Linear 84 -> ReLU -> Linear. Both 28x28 grey and 32x32 colour input end
    with a 16 x 5 x 5 feature map.

    ``embed`` returns the 84 activations fed to the last Linear (as
    :class:`MLP` does).

    Examples
    --------
    >>> net = LeNet((1, 28, 28), 10)
    >>> net.fc1
    Linear(in_features=400, out_features=120, bias=True)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int):
        super().__init__()
        shape = _image_shape(input_shape, "LeNet")
        channels = shape[0]
        padding = 2 if channels == 1 else 0
        out_h, out_w = _feature_sides(
            shape, [("conv", 5, padding, 1), ("pool", 2), ("conv", 5, 0, 1), ("pool", 2)], "LeNet"
        )
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.fc1 = nn.Linear(16 * out_h * out_w, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 84 activations fed to the last Linear."""
        x = torch.relu(self.fc1(self.features(x).flatten(1)))
        return torch.relu(self.fc2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.embed(x))


@register_model("alexnet")
class AlexNet(_FeatureClassifier):
    """DC's small AlexNet (no normalisation, one Linear).

    Conv 5x5 (128; padding 4 for grey input, 2 for colour) -> ReLU -> MaxPool 2
    -> Conv 5x5 (192, padding 2) -> ReLU -> MaxPool 2 -> Conv 3x3 (256) -> ReLU
    -> Conv 3x3 (192) -> ReLU -> Conv 3x3 (192) -> ReLU -> MaxPool 2 -> Linear.
    28x28 grey and 32x32 colour input both end with a 192 x 4 x 4 map.

    Examples
    --------
    >>> AlexNet((3, 32, 32), 10).classifier
    Linear(in_features=3072, out_features=10, bias=True)
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int):
        super().__init__()
        shape = _image_shape(input_shape, "AlexNet")
        channels = shape[0]
        padding = 4 if channels == 1 else 2
        ops = [("conv", 5, padding, 1), ("pool", 2), ("conv", 5, 2, 1), ("pool", 2)]
        ops += [("conv", 3, 1, 1)] * 3 + [("pool", 2)]
        out_h, out_w = _feature_sides(shape, ops, "AlexNet")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, kernel_size=5, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(128, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(192, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Linear(192 * out_h * out_w, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened features fed to the classifier."""
        return self.features(x).flatten(1)


#: VGG-11's conv widths, "M" marking a 2x2 max-pool.
VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@register_model("vgg11")
class VGG11(_FeatureClassifier):
    """DC's VGG-11, with instance norm by default.

    Every conv is 3x3 (padding 3 in the first for grey input, so 28x28 maps
    like 32x32; padding 1 otherwise) -> norm -> ReLU; five max-pools bring 32x32
    to 1x1, and DC's final AvgPool 1x1 (a no-op, kept) precedes the flatten and
    the Linear(512, n_classes) classifier.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``.
    n_classes : int
        Number of outputs.
    norm : {"instancenorm", "batchnorm"}, default="instancenorm"
        GroupNorm with one group per channel (affine), DC's default for VGG11,
        or BatchNorm2d (:class:`VGG11BN`).

    Examples
    --------
    >>> VGG11((1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, norm: str = "instancenorm"):
        super().__init__()
        name = type(self).__name__
        shape = _image_shape(input_shape, name)
        channels = shape[0]
        _check_norm(norm)
        ops = []
        layers: list[nn.Module] = []
        in_channels = channels
        for i, v in enumerate(VGG11_CFG):
            if v == "M":
                ops.append(("pool", 2))
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                padding = 3 if channels == 1 and i == 0 else 1
                ops.append(("conv", 3, padding, 1))
                layers += [
                    nn.Conv2d(in_channels, v, kernel_size=3, padding=padding),
                    _norm_layer(norm, v),
                    nn.ReLU(inplace=True),
                ]
                in_channels = v
        out_h, out_w = _feature_sides(shape, ops, name)
        layers.append(nn.AvgPool2d(kernel_size=1, stride=1))  # as DC: a no-op
        self.norm = norm
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels * out_h * out_w, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened features fed to the classifier."""
        return self.features(x).flatten(1)


@register_model("vgg11bn")
class VGG11BN(VGG11):
    """DC's VGG11BN: :class:`VGG11` with BatchNorm2d."""

    def __init__(self, input_shape: Sequence[int], n_classes: int):
        super().__init__(input_shape, n_classes, norm="batchnorm")


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs (no bias) with norms, plus a shortcut.

    The first conv has stride ``stride``; where it changes the shape the
    shortcut is a strided 1x1 conv (no bias) -> norm, else the identity.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, norm: str = "instancenorm"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm_layer(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = _norm_layer(norm, planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                _norm_layer(norm, planes),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@register_model("resnet18")
class ResNet18(_FeatureClassifier):
    """DC's ResNet-18 (the CIFAR variant), with instance norm by default.

    Conv 3x3 (64, stride 1, no bias; ``C`` input channels) -> norm -> ReLU ->
    four stages of two :class:`BasicBlock` (64, 128, 256, 512 channels; the
    last three start with stride 2) -> AvgPool 4x4 -> Linear(512, n_classes).
    No max-pool and no extra padding for grey input: 32 -> 32, 16, 8, 4 and
    28 -> 28, 14, 7, 4, so both DC inputs end with a 512 x 4 x 4 map pooled to
    512 x 1 x 1.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``.
    n_classes : int
        Number of outputs.
    norm : {"instancenorm", "batchnorm"}, default="instancenorm"
        GroupNorm with one group per channel (affine), DC's default for
        ResNet18, or BatchNorm2d (:class:`ResNet18BN`).

    Examples
    --------
    >>> ResNet18((1, 28, 28), 10).classifier
    Linear(in_features=512, out_features=10, bias=True)
    """

    def __init__(self, input_shape: Sequence[int], n_classes: int, norm: str = "instancenorm"):
        super().__init__()
        name = type(self).__name__
        shape = _image_shape(input_shape, name)
        _check_norm(norm)
        ops = [("conv", 3, 1, 1)] + [("conv", 3, 1, 2)] * 3 + [("pool", 4)]
        out_h, out_w = _feature_sides(shape, ops, name)
        self.norm = norm
        self.conv1 = nn.Conv2d(shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = _norm_layer(norm, 64)
        in_planes = 64
        stages = []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride, norm),
                                        BasicBlock(planes, planes, 1, norm)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AvgPool2d(kernel_size=4)
        self.classifier = nn.Linear(512 * out_h * out_w, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened (pooled) features fed to the classifier."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.pool(out).flatten(1)


@register_model("resnet18bn")
class ResNet18BN(ResNet18):
    """DC's ResNet18BN: :class:`ResNet18` with BatchNorm2d."""

    def __init__(self, input_shape: Sequence[int], n_classes: int):
        super().__init__(input_shape, n_classes, norm="batchnorm")


#: The networks gradmatch registers itself (they cannot be unregistered).
_BUILTIN_NAMES = frozenset(_REGISTRY)
#: The names every process has, before any :func:`register_model` call.
BUILTIN_MODELS = _BUILTIN_NAMES


def check_model(model) -> None:
    """Validate a ``model`` parameter value without building it.

    Accepts a registered name (see :func:`list_models`) or any callable
    factory ``(input_shape, n_classes) -> nn.Module``.

    Raises
    ------
    ValueError
        For a string that is not a registered name; the message lists them.
    TypeError
        For anything else that is not callable.
    """
    if isinstance(model, str):
        if model not in _REGISTRY:
            raise ValueError(_unknown_model_message(model))
    elif not callable(model):
        raise TypeError(
            "model must be a registered network name (gradmatch.networks.list_models()) or a factory "
            f"(input_shape, n_classes) -> nn.Module, got {type(model).__name__}"
        )


def build_model(model, input_shape: Sequence[int], n_classes: int) -> nn.Module:
    """Instantiate the network named or made by ``model`` (random initialisation).

    ``model`` is a registered name or a factory; either is called as
    ``builder(input_shape, n_classes)`` with a tuple of ints and an int.
    """
    check_model(model)
    factory = get_model_builder(model) if isinstance(model, str) else model
    net = factory(tuple(int(v) for v in input_shape), int(n_classes))
    if not isinstance(net, nn.Module):
        raise TypeError(f"model factory returned {type(net).__name__}, expected a torch.nn.Module")
    return net


def check_network_fits(net: nn.Module, sample: torch.Tensor, n_classes: int) -> None:
    """Run ``sample`` through ``net`` and check it gives ``(len(sample), n_classes)`` logits.

    Raises a ValueError naming the shapes when the network does not accept the
    input or has the wrong number of outputs.
    """
    try:
        with torch.no_grad():
            out = net(sample)
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        raise ValueError(
            f"the network ({type(net).__name__}) does not accept inputs of shape "
            f"{tuple(sample.shape[1:])}: {err}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (sample.shape[0], n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the network ({type(net).__name__}) gave output of shape {shape} for {sample.shape[0]} samples; "
            f"expected ({sample.shape[0]}, {n_classes}) logits, one per class"
        )
