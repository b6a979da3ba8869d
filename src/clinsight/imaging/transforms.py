"""Preprocessing (stored with each model, replayed at inference) and training augmentation.

The contract: a *source image* is a float32 array in [0, 1], shaped (H, W) or (H, W, C)
as the image readers return it. `Preprocess` turns it into the network input
(C, S, S): channel conversion, centre square crop, area resize, normalisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    CenterSpatialCrop,
    Compose,
    RandAdjustContrast,
    RandAffine,
    RandFlip,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandScaleIntensity,
    RandShiftIntensity,
)
from numpy.typing import NDArray

from clinsight.errors import UnsupportedImageError
from clinsight.imaging.specs import AugmentSpec

__all__ = ["Preprocess", "PreprocessSpec", "build_augmentation", "to_channels_first"]


@dataclass(frozen=True)
class PreprocessSpec:
    """How a source image becomes network input; saved as JSON beside every model."""

    image_size: int
    channels: int
    mean: float = 0.5
    std: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        """Inverse of `to_dict`."""
        return cls(**data)


def to_channels_first(image: NDArray[Any], channels: int) -> NDArray[np.float32]:
    """A (H, W) or (H, W, C) image as (channels, H, W) float32, converting grey <-> RGB.

    Raises:
        UnsupportedImageError: the array is not a 2D grey or colour image.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = np.moveaxis(arr[..., :3] if arr.shape[-1] == 4 else arr, -1, 0)
    else:
        raise UnsupportedImageError(
            f"Expected a 2D image shaped (H, W) or (H, W, C) with C in 1/3/4, got {arr.shape}."
        )
    if arr.shape[0] == channels:
        return np.ascontiguousarray(arr)
    if channels == 1:  # ITU-R BT.601 luma
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None, None]
        return np.ascontiguousarray((arr * weights).sum(axis=0, keepdims=True))
    return np.ascontiguousarray(np.repeat(arr, channels, axis=0))


class Preprocess:
    """Source image in [0, 1] → normalised (C, S, S) float32 network input."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec = spec

    def geometry(self, image: NDArray[Any]) -> NDArray[np.float32]:
        """Channel conversion, centre square crop and resize, before normalisation."""
        arr = to_channels_first(image, self.spec.channels)
        side = min(arr.shape[1:])
        if arr.shape[1] != arr.shape[2]:
            arr = np.asarray(CenterSpatialCrop(roi_size=(side, side))(arr))
        if side != self.spec.image_size:
            # Area resampling, as MONAI's Resize(mode="area") does, without its metadata
            # tracking (which costs three times the resize itself at serving time).
            size = (self.spec.image_size, self.spec.image_size)
            batch = torch.from_numpy(np.ascontiguousarray(arr))[None]
            arr = torch.nn.functional.interpolate(batch, size, mode="area")[0].numpy()
        return arr.astype(np.float32, copy=False)

    def normalize(self, arr: NDArray[np.float32] | torch.Tensor) -> NDArray[np.float32]:
        """Intensity normalisation with the spec's mean and std (MONAI NormalizeIntensity with
        a fixed subtrahend and divisor, done in NumPy: its tensor wrapping costs more than
        the arithmetic)."""
        values = arr.numpy() if isinstance(arr, torch.Tensor) else arr
        return np.asarray((values - self.spec.mean) / self.spec.std, dtype=np.float32)

    def __call__(self, image: NDArray[Any]) -> NDArray[np.float32]:
        return self.normalize(self.geometry(image))

    def geometry_batch(self, images: NDArray[np.uint8]) -> NDArray[np.float32]:
        """uint8 images (N, H, W[, C]) → (N, C, S, S) in [0, 1], before normalisation."""
        scaled = images.astype(np.float32) / 255.0
        size, channels = self.spec.image_size, self.spec.channels
        if scaled.shape[1:3] == (size, size) and (scaled.ndim == 3) == (channels == 1):
            arr = scaled[:, None] if scaled.ndim == 3 else np.moveaxis(scaled, -1, 1)
            return np.ascontiguousarray(arr)
        return np.stack([self.geometry(image) for image in scaled])

    def batch(self, images: NDArray[np.uint8]) -> NDArray[np.float32]:
        """uint8 images (N, H, W[, C]) → normalised network input (N, C, S, S)."""
        return (self.geometry_batch(images) - self.spec.mean) / self.spec.std


def build_augmentation(spec: AugmentSpec, image_size: int) -> Compose:
    """MONAI pipeline applied to (C, S, S) tensors in [0, 1] before normalisation."""
    shift = spec.translate * image_size
    return Compose(
        [
            RandFlip(prob=spec.flip_prob, spatial_axis=1),
            RandAffine(
                prob=0.8,
                rotate_range=np.deg2rad(spec.rotate_degrees),
                scale_range=(spec.scale, spec.scale),
                translate_range=(shift, shift),
                padding_mode="border",
            ),
            RandAdjustContrast(prob=0.5, gamma=(1 - spec.contrast_gamma, 1 + spec.contrast_gamma)),
            RandScaleIntensity(factors=spec.intensity, prob=0.5),
            RandShiftIntensity(offsets=spec.intensity, prob=0.5),
            RandGaussianSmooth(sigma_x=(0.25, 0.8), sigma_y=(0.25, 0.8), prob=spec.blur_prob),
            RandGaussianNoise(prob=0.3, std=spec.noise_std),
        ]
    )
