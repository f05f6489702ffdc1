"""The networks of DC's public implementation (DESIGN.md section 2).

* :class:`ConvNet`: ``depth`` x [Conv 3x3 (width 128) -> instance norm
  (GroupNorm with one group per channel, affine) -> ReLU -> AvgPool 2x2]
  -> Linear. Grey (1-channel) input gets padding 3 in the first conv, as DC
  does for MNIST, so 28x28 becomes 32x32 before pooling. The classifier is
  sized from the actual input.
* :class:`MLP`: Linear(d, 128) -> ReLU -> Linear(128, 128) -> ReLU ->
  Linear(128, C).

:func:`build_model` resolves the ``model`` parameter of the estimators: one of
:data:`MODELS` or a factory ``factory(input_shape, n_classes) -> nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["MODELS", "ConvNet", "MLP", "build_model", "check_model", "conv_output_size"]

#: Valid string values of the ``model`` parameter.
MODELS = ("convnet", "mlp")


def conv_output_size(channels: int, size: int, depth: int = 3) -> int:
    """Spatial size after ConvNet's feature stack for a square-ish side ``size``."""
    for d in range(depth):
        padding = 3 if channels == 1 and d == 0 else 1
        size = size + 2 * padding - 2  # 3x3 conv
        size //= 2  # 2x2 average pooling
    return size


class ConvNet(nn.Module):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class MLP(nn.Module):
    """DC's MLP: two hidden layers of 128 ReLU units.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample; flattened.
    n_classes : int
        Number of outputs.

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


_BUILTIN: dict[str, Callable[[Sequence[int], int], nn.Module]] = {"convnet": ConvNet, "mlp": MLP}


def check_model(model) -> None:
    """Validate a ``model`` parameter value without building it."""
    if isinstance(model, str):
        if model not in _BUILTIN:
            valid = ", ".join(repr(m) for m in MODELS)
            raise ValueError(
                f"unknown model {model!r}: valid values are {valid} or a factory "
                "(input_shape, n_classes) -> nn.Module"
            )
    elif not callable(model):
        raise TypeError(
            "model must be 'convnet', 'mlp' or a factory (input_shape, n_classes) -> nn.Module, "
            f"got {type(model).__name__}"
        )


def build_model(model, input_shape: Sequence[int], n_classes: int) -> nn.Module:
    """Instantiate the network named or made by ``model`` (random initialisation)."""
    check_model(model)
    factory = _BUILTIN[model] if isinstance(model, str) else model
    net = factory(tuple(int(v) for v in input_shape), int(n_classes))
    if not isinstance(net, nn.Module):
        raise TypeError(f"model factory returned {type(net).__name__}, expected a torch.nn.Module")
    return net
