"""Grad-CAM heat maps for single image predictions, and their overlay on the source image.

The map comes from MONAI's `GradCAM` (Selvaraju et al., 2017) on the layer a network names
in `NetworkConfig.cam_layer`; for a deep ensemble it is the mean of the members' maps, each
taken on that layer of one member (`members.{i}.<layer>`) for the ensemble's class score.
MONAI's wrapper registers hooks it never removes and may turn off `inplace` flags, so it runs
on a private copy of the model: the caller's model is left exactly as it was, however many
maps are drawn from it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from monai.visualize import GradCAM
from numpy.typing import NDArray
from PIL import Image
from torch import nn

from clinsight.errors import DataError, ModelError, UnsupportedImageError
from clinsight.imaging.networks import Ensemble

__all__ = ["grad_cam", "save_overlay"]


def _normalise(cam: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map to [0, 1]; a flat map (no evidence) becomes all zeros."""
    flat = cam.reshape(len(cam), -1)
    low = flat.min(dim=1).values.view(-1, *[1] * (cam.dim() - 1))
    span = (flat.max(dim=1).values - flat.min(dim=1).values).view_as(low)
    return torch.where(span > 0, (cam - low) / span.clamp_min(1e-12), torch.zeros_like(cam))


def grad_cam(
    model: nn.Module, layer: str, image: torch.Tensor, class_index: int | None = None
) -> NDArray[np.float32]:
    """Grad-CAM heat map (H, W) in [0, 1] of `class_index` (default: the predicted class).

    `image` is one preprocessed input (1, C, H, W) on the model's device; the map is upsampled
    bilinearly to H x W. Where no region raises the class score the map is all zeros. For an
    `Ensemble`, `layer` names the layer inside each member; the members' maps of the
    ensemble's class score are averaged with equal weight and rescaled to [0, 1].

    Raises:
        UnsupportedImageError: `image` is not a (1, C, H, W) floating-point tensor.
        ModelError: `layer` is not a module of `model` or `class_index` is out of range.
    """
    if image.dim() != 4 or image.shape[0] != 1 or not image.is_floating_point():
        raise UnsupportedImageError(
            f"Grad-CAM explains one image at a time: pass a float tensor of shape (1, C, H, W); "
            f"got {tuple(image.shape)} {image.dtype}."
        )
    layers = [layer]
    if isinstance(model, Ensemble):
        layers = [f"members.{i}.{layer}" for i in range(len(model.members))]
    modules = dict(model.named_modules())
    if not layer or any(name not in modules for name in layers):
        raise ModelError(
            f"{type(model).__name__} has no layer {layer!r}; use the network config's cam_layer."
        )
    with torch.inference_mode(False), torch.enable_grad():
        private = copy.deepcopy(model)
        # The input must require grad for the hooks on a first layer to see gradients.
        x = image.detach().clone().requires_grad_(True)
        if class_index is not None:
            with torch.no_grad():
                outputs = private.eval()(x).shape[1]
            if not 0 <= class_index < outputs:
                raise ModelError(
                    f"class_index {class_index} is out of range for a network with {outputs} "
                    "outputs."
                )
        maps = [
            GradCAM(nn_module=private, target_layers=name, postprocessing=_normalise)(
                x=x, class_idx=class_index
            )
            for name in layers
        ]
        heat = maps[0] if len(maps) == 1 else _normalise(torch.stack(maps).mean(dim=0))
    return np.asarray(heat.detach().cpu().numpy()[0, 0], dtype=np.float32)


def _as_rgb(pixels: NDArray[np.floating]) -> NDArray[np.float64]:
    values = np.asarray(pixels, dtype=np.float64)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=2)
    if values.ndim != 3 or values.shape[2] != 3:
        raise UnsupportedImageError(
            f"The source image must be (H, W) or (H, W, 3); got shape {np.shape(pixels)}."
        )
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise UnsupportedImageError("The source image must hold values in [0, 1]; rescale it.")
    return values


def save_overlay(
    source_pixels: NDArray[np.floating], cam: NDArray[np.floating], path: Path, alpha: float = 0.4
) -> Path:
    """Write a PNG of the heat map (jet colormap, resized to the source) blended over the image.

    Each pixel is (1 - alpha) * image + alpha * colour(cam).

    Raises:
        UnsupportedImageError: the image or the map has the wrong shape or values outside [0, 1].
        DataError: `alpha` is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"alpha must lie in [0, 1]; got {alpha}.")
    base = _as_rgb(source_pixels)
    heat = np.asarray(cam, dtype=np.float32)
    if heat.ndim != 2 or not np.all(np.isfinite(heat)) or heat.min() < 0 or heat.max() > 1:
        raise UnsupportedImageError(
            f"The heat map must be a 2-D array in [0, 1]; got shape {heat.shape}."
        )
    height, width = base.shape[:2]
    resized = Image.fromarray(heat).resize((width, height), Image.Resampling.BILINEAR)
    colour = colormaps["jet"](np.clip(np.asarray(resized), 0.0, 1.0))[..., :3]
    blended = (1.0 - alpha) * base + alpha * colour
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(blended * 255).astype(np.uint8)).save(path, format="PNG")
    return path
