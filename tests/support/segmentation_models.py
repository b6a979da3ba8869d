"""Tiny segmentation data and models for tests: synthetic colour frames with one blob each,
a plain images/ + masks/ folder, and a registered tiny U-Net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clinsight.data.segmentation import ImageSplit
from clinsight.imaging.segmentation_networks import (
    SegmentationNetworkConfig,
    build_segmentation_network,
)
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.registry.segmentation import SegmentationModelVersion, register_segmentation_model

__all__ = ["blob_frame", "register_tiny_segmenter", "write_blob_folder"]


def blob_frame(
    seed: int, height: int = 40, width: int = 48
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """A reddish textured RGB frame (H, W, 3) with a bright yellow disc, and its 0/255 mask."""
    rng = np.random.default_rng(seed)
    frame = np.empty((height, width, 3), dtype=np.float64)
    frame[..., 0] = 0.6 + 0.1 * rng.random((height, width))
    frame[..., 1] = 0.25 + 0.1 * rng.random((height, width))
    frame[..., 2] = 0.2 + 0.1 * rng.random((height, width))
    rows, cols = np.mgrid[:height, :width]
    cy, cx = rng.integers(12, height - 12), rng.integers(12, width - 12)
    radius = rng.integers(6, 10)
    disc = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
    frame[disc] = (0.95, 0.85, 0.3)
    mask = np.where(disc, 255, 0).astype(np.uint8)
    return np.asarray(np.rint(frame * 255), dtype=np.uint8), mask


def write_blob_folder(root: Path, count: int, *, start: int = 0) -> Path:
    """`root`/images/*.png and `root`/masks/*.png with `count` blob frames."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        frame, mask = blob_frame(i)
        Image.fromarray(frame).save(root / "images" / f"case{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"case{i:03d}.png")
    return root


def register_tiny_segmenter(registry: Path, name: str = "tiny-seg") -> SegmentationModelVersion:
    """An untrained tiny U-Net (colour, 2 labels, 32 x 32) registered without a gate."""
    config = SegmentationNetworkConfig("unet", 3, 2, width=4, depth=2)
    network = build_segmentation_network(config).eval()
    return register_segmentation_model(
        registry, name=name, network=network, network_config=config,
        preprocess=PreprocessSpec(32, 3), labels=("background", "polyp"),
        split=ImageSplit(("a", "b"), ("c",), seed=0), metrics={"validation": {}},
        training={"data_sha256": "0" * 64}, intended_use="Tests only.",
    )  # fmt: skip
