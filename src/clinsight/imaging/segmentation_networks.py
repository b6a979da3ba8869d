"""Segmentation networks from MONAI and the dictionary transforms that move image and mask
together.

Every network maps (N, C, S, S) float input to (N, K, S, S) logits (K = background + the
labels); none loads pretrained weights. The transforms act on ``{"image": (C, S, S),
"label": (1, S, S)}``: geometry (resize, flips, rotation, scaling, translation) on both,
with nearest-neighbour interpolation for the mask; intensity on the image only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from monai.networks.nets import AttentionUnet, BasicUNetPlusPlus, SegResNet, UNet
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Resized,
)
from torch import nn

from clinsight.errors import ModelError
from clinsight.imaging.specs import AugmentSpec

__all__ = [
    "PAIR_KEYS",
    "SEGMENTATION_ARCHITECTURES",
    "SegmentationNetworkConfig",
    "build_segmentation_network",
    "resize_pair",
    "segmentation_augmentation",
]

SEGMENTATION_ARCHITECTURES = ("unet", "attention_unet", "segresnet", "unetplusplus")
PAIR_KEYS = ("image", "label")


@dataclass(frozen=True)
class SegmentationNetworkConfig:
    """Everything needed to rebuild a segmentation network before loading its weights.

    `width` is the first stage's channel count (doubling at each of `depth` down-steps).
    """

    architecture: str
    in_channels: int
    num_classes: int
    width: int = 16
    depth: int = 4
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored with every registered model."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationNetworkConfig:
        """Inverse of `to_dict`."""
        return cls(**data)

    @property
    def divisor(self) -> int:
        """The input side must be a multiple of this (one halving per down-step)."""
        return int(2 ** (3 if self.architecture == "segresnet" else self.depth))


class _FirstOutput(nn.Module):
    """Return the first tensor of a network that returns a list (BasicUNetPlusPlus)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        first: torch.Tensor = out[0] if isinstance(out, list | tuple) else out
        return first


def build_segmentation_network(config: SegmentationNetworkConfig) -> nn.Module:
    """A freshly initialised MONAI network for `config` (no pretrained weights).

    Raises:
        ModelError: unknown architecture or sizes it cannot build.
    """
    w, depth = config.width, config.depth
    if config.architecture not in SEGMENTATION_ARCHITECTURES:
        raise ModelError(
            f"Unknown segmentation network {config.architecture!r}; use one of "
            f"{', '.join(SEGMENTATION_ARCHITECTURES)}."
        )
    if w < 2 or not 2 <= depth <= 5 or config.num_classes < 2:
        raise ModelError(
            f"A segmentation network needs width >= 2, depth 2-5 and 2+ classes; got width "
            f"{w}, depth {depth}, {config.num_classes} classes."
        )
    channels = tuple(w * 2**i for i in range(depth + 1))
    args = {"spatial_dims": 2, "in_channels": config.in_channels,
            "out_channels": config.num_classes}  # fmt: skip
    network: nn.Module
    if config.architecture == "unet":
        network = UNet(**args, channels=channels, strides=(2,) * depth, num_res_units=2,
                    norm="batch", dropout=config.dropout)  # fmt: skip
    elif config.architecture == "attention_unet":
        network = AttentionUnet(**args, channels=channels, strides=(2,) * depth,
                             dropout=config.dropout)  # fmt: skip
    elif config.architecture == "segresnet":
        network = SegResNet(**args, init_filters=w, dropout_prob=config.dropout or None,
                         norm="batch")  # fmt: skip
    else:
        features = (w, w, 2 * w, 4 * w, 8 * w, w)
        network = _FirstOutput(BasicUNetPlusPlus(**args, features=features, dropout=config.dropout))
    return network


def resize_pair(size: int) -> Resized:
    """Resize image (area) and mask (nearest) to `size` x `size` together."""
    return Resized(keys=PAIR_KEYS, spatial_size=(size, size), mode=("area", "nearest"))


def segmentation_augmentation(spec: AugmentSpec, size: int) -> Compose:
    """Random flips, rotation, scaling and translation of image and mask together, then
    contrast, intensity and noise on the image (each off at strength 0)."""
    geometric: list[Any] = []
    if spec.flip_prob > 0:
        geometric += [RandFlipd(PAIR_KEYS, prob=spec.flip_prob, spatial_axis=axis)
                      for axis in (0, 1)]  # fmt: skip
    if spec.rotate_degrees > 0 or spec.scale > 0 or spec.translate > 0:
        geometric.append(
            RandAffined(
                PAIR_KEYS, prob=0.7, rotate_range=math.radians(spec.rotate_degrees),
                scale_range=(spec.scale, spec.scale),
                translate_range=(spec.translate * size, spec.translate * size),
                mode=("bilinear", "nearest"), padding_mode="zeros",
            )
        )  # fmt: skip
    intensity: list[Any] = []
    if spec.contrast_gamma > 0:
        gamma = (max(0.1, 1 - spec.contrast_gamma), 1 + spec.contrast_gamma)
        intensity.append(RandAdjustContrastd("image", prob=0.3, gamma=gamma))
    if spec.intensity > 0:
        intensity += [RandScaleIntensityd("image", factors=spec.intensity, prob=0.5),
                      RandShiftIntensityd("image", offsets=spec.intensity, prob=0.5)]  # fmt: skip
    if spec.noise_std > 0:
        intensity.append(RandGaussianNoised("image", prob=0.2, std=spec.noise_std))
    return Compose([*geometric, *intensity])
