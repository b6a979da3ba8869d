"""Tiny segmentation data and models for tests: synthetic colour frames with one blob each,
a plain images/ + masks/ folder, a registered tiny U-Net, and a tiny lung model trained
on synthetic chest frames (two dark lung fields)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from torch import nn

from clinsight.data.segmentation import ImageSplit, SegmentationSample
from clinsight.evaluation.ood import IntendedUseGate
from clinsight.imaging.segmentation import prepare_pairs, train_segmentation_model
from clinsight.imaging.segmentation_networks import (
    SegmentationNetworkConfig,
    build_segmentation_network,
)
from clinsight.imaging.specs import AugmentSpec, TrainConfig
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.registry.segmentation import SegmentationModelVersion, register_segmentation_model

__all__ = [
    "LUNG_NETWORK", "LUNG_SPEC", "blob_frame", "chest_frame", "register_lung_model",
    "register_tiny_segmenter", "train_tiny_lung_network", "write_blob_folder",
]  # fmt: skip

LUNG_NETWORK = SegmentationNetworkConfig("unet", 1, 2, width=4, depth=2)
LUNG_SPEC = PreprocessSpec(32, 1)


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


def chest_frame(seed: int, size: int = 64) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """A grey frame (H, W) in [0, 1]: a bright body with two dark, slightly jittered lung
    fields in its upper two thirds; and the 0/1 lung mask."""
    rng = np.random.default_rng(seed)
    frame = 0.75 + 0.05 * rng.random((size, size))
    rows, cols = np.mgrid[:size, :size] / size
    lungs = np.zeros((size, size), dtype=bool)
    for centre in (0.3, 0.7):
        cy, cx = 0.4 + rng.uniform(-0.04, 0.04), centre + rng.uniform(-0.03, 0.03)
        lungs |= ((rows - cy) / 0.25) ** 2 + ((cols - cx) / 0.13) ** 2 <= 1.0
    frame[lungs] = 0.25 + 0.05 * rng.random(int(lungs.sum()))
    return frame.astype(np.float32), lungs.astype(np.uint8)


def train_tiny_lung_network(count: int = 12) -> nn.Module:
    """A tiny U-Net trained (seeded, a few seconds) to outline the lungs of `chest_frame`s."""
    samples = [SegmentationSample(f"c{i}", *chest_frame(i)) for i in range(count)]
    train, val = prepare_pairs(samples[2:], LUNG_SPEC), prepare_pairs(samples[:2], LUNG_SPEC)
    config = TrainConfig(
        architecture="unet", width=4, epochs=30, batch_size=4, learning_rate=1e-2,
        weight_decay=0.0, dropout=0.0, min_epochs=30, seed=0, threads=1,
        augment=AugmentSpec(0, 0, 0, 0, 0, 0, 0, 0),
    )  # fmt: skip
    return train_segmentation_model(train, val, config, LUNG_NETWORK, LUNG_SPEC).network


def register_lung_model(
    registry: Path,
    network: nn.Module,
    name: str = "tiny-lungs",
    gate: IntendedUseGate | None = None,
    keep_largest: int = 0,
) -> SegmentationModelVersion:
    """Register a trained lung network (labels background, lung), with `gate` if given and
    the mask clean-up `keep_largest` recorded."""
    return register_segmentation_model(
        registry, name=name, network=network, network_config=LUNG_NETWORK,
        preprocess=LUNG_SPEC, labels=("background", "lung"),
        split=ImageSplit(("c2", "c3"), ("c0", "c1"), seed=0), metrics={"validation": {}},
        training={"data_sha256": "1" * 64, "keep_largest": keep_largest},
        intended_use="Tests only: synthetic chest frames.",
        intended_use_gate=gate,
    )  # fmt: skip
