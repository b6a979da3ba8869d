"""Image classification networks: a compact CNN, MONAI's CIFAR-style ResNets, and deep
ensembles of them.

Every network maps a (N, C, H, W) float tensor to (N, num_classes) logits and names
the layer Grad-CAM should look at in `NetworkConfig.cam_layer`. An `Ensemble` is one
module whose logits are the mean of its members', so calibration, ONNX export and
safetensors weights treat it like any single network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from monai.networks.nets import ResNet
from torch import nn

from clinsight.errors import ModelError

__all__ = [
    "ARCHITECTURES",
    "CompactCNN",
    "Ensemble",
    "NetworkConfig",
    "build_network",
    "count_macs",
]


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild a network before loading its weights.

    `members` > 1 describes a deep ensemble of that many networks of this architecture.
    """

    architecture: str
    in_channels: int
    num_classes: int
    width: int = 32
    dropout: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)
    members: int = 1

    @property
    def cam_layer(self) -> str:
        """Name of the module whose activations Grad-CAM uses (in an ensemble, the name
        within each member: `members.{i}.<cam_layer>`)."""
        return ARCHITECTURES[self.architecture][1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored with every registered model."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        """Inverse of `to_dict`; entries written before ensembles existed get `members=1`."""
        return cls(**data)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CompactCNN(nn.Module):
    """VGG-style CNN: double-conv stages of width w, 2w, 4w with pooling, GAP and a linear head."""

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 32, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(in_channels, width),
            nn.MaxPool2d(2),
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_block(2 * width, 4 * width),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images."""
        return self.head(self.pool(self.features(x)))  # type: ignore[no-any-return]


class Ensemble(nn.Module):
    """A deep ensemble: independently trained networks whose logits are averaged."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ModelError("An ensemble needs at least one member network.")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of the members' logits for a batch of images."""
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


def _monai_resnet(config: NetworkConfig, layers: list[int]) -> nn.Module:
    w = config.width
    network: nn.Module = ResNet(
        block="basic",
        layers=layers,
        block_inplanes=[w, 2 * w, 4 * w, 8 * w],
        spatial_dims=2,
        n_input_channels=config.in_channels,
        conv1_t_size=3,
        conv1_t_stride=1,
        no_max_pool=True,
        num_classes=config.num_classes,
    )
    return network


def _build_cnn(config: NetworkConfig) -> nn.Module:
    return CompactCNN(config.in_channels, config.num_classes, config.width, config.dropout)


ARCHITECTURES: dict[str, tuple[Any, str]] = {
    "cnn": (_build_cnn, "features"),
    "resnet18": (lambda c: _monai_resnet(c, [2, 2, 2, 2]), "layer4"),
    "resnet10": (lambda c: _monai_resnet(c, [1, 1, 1, 1]), "layer4"),
}


def build_network(config: NetworkConfig) -> nn.Module:
    """A freshly initialised network for `config`.

    Raises:
        ModelError: the architecture is unknown or the sizes are invalid.
    """
    if config.architecture not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(f"Unknown architecture {config.architecture!r}; choose one of: {known}.")
    if (
        config.in_channels not in (1, 3)
        or config.num_classes < 1
        or config.width < 1
        or config.members < 1
    ):
        raise ModelError(
            f"Invalid network sizes: in_channels={config.in_channels} (1 or 3), "
            f"num_classes={config.num_classes} (>=1), width={config.width} (>=1), "
            f"members={config.members} (>=1)."
        )
    builder = ARCHITECTURES[config.architecture][0]
    if config.members > 1:
        single = replace(config, members=1)
        return Ensemble([builder(single) for _ in range(config.members)])
    return builder(config)  # type: ignore[no-any-return]


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one image of `input_shape` (C, H, W).

    Counts convolutions and linear layers, which carry all but a negligible share of the work.
    """
    total = 0

    def conv_hook(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        total += out.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += out.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return total
