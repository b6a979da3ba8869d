"""Segmentation training: networks, paired transforms, seeded and resumable runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from clinsight.data.segmentation import SegmentationSample
from clinsight.errors import ModelError
from clinsight.imaging.segmentation import (
    PairArrays,
    predict_mask,
    prepare_pairs,
    train_segmentation_model,
)
from clinsight.imaging.segmentation_networks import (
    SEGMENTATION_ARCHITECTURES,
    SegmentationNetworkConfig,
    build_segmentation_network,
    segmentation_augmentation,
)
from clinsight.imaging.specs import AugmentSpec, TrainConfig
from clinsight.imaging.transforms import PreprocessSpec
from tests.support.segmentation_models import blob_frame

SPEC = PreprocessSpec(32, 3)
NET = SegmentationNetworkConfig("unet", 3, 2, width=4, depth=2)
CONFIG = TrainConfig(architecture="unet", epochs=2, batch_size=4, seed=3, threads=1,
                     min_epochs=1, augment=AugmentSpec(noise_std=0.0))  # fmt: skip


def _pairs(start: int, count: int) -> PairArrays:
    samples = []
    for i in range(start, start + count):
        frame, mask = blob_frame(i)
        pixels = (frame / 255).astype(np.float32)
        samples.append(SegmentationSample(f"c{i}", pixels, (mask > 0).astype(np.uint8)))
    return prepare_pairs(samples, SPEC)


@pytest.mark.parametrize("architecture", SEGMENTATION_ARCHITECTURES)
def test_every_network_maps_images_to_per_pixel_logits(architecture: str) -> None:
    config = SegmentationNetworkConfig(architecture, 3, 3, width=4, depth=2)
    out = build_segmentation_network(config).eval()(torch.zeros(1, 3, 32, 32))
    assert tuple(out.shape) == (1, 3, 32, 32)


def test_unknown_network_is_refused() -> None:
    with pytest.raises(ModelError, match="Unknown segmentation network 'vnet'"):
        build_segmentation_network(replace(NET, architecture="vnet"))


def test_augmentation_moves_image_and_mask_together() -> None:
    augment = segmentation_augmentation(
        AugmentSpec(contrast_gamma=0, intensity=0, noise_std=0), 32)  # fmt: skip
    augment.set_random_state(seed=1)
    mask = torch.zeros(1, 32, 32)
    mask[0, 5:15, 8:20] = 1
    for _ in range(5):
        out = augment({"image": mask.repeat(3, 1, 1), "label": mask.clone()})
        image, label = torch.as_tensor(out["image"]), torch.as_tensor(out["label"])
        assert set(torch.unique(label).tolist()) <= {0.0, 1.0}
        agree = ((image[0] > 0.5) == (label[0] > 0.5)).float().mean()
        assert agree > 0.97


def test_prepare_pairs_resizes_both_to_the_network_size() -> None:
    pairs = _pairs(0, 2)
    assert pairs.images.shape == (2, 3, 32, 32)
    assert pairs.masks.shape == (2, 1, 32, 32)
    assert set(np.unique(pairs.masks)) == {0, 1}


def test_training_is_seeded_and_resumes(tmp_path: Path) -> None:
    train, val = _pairs(0, 8), _pairs(8, 2)
    first = train_segmentation_model(train, val, CONFIG, NET, SPEC)
    again = train_segmentation_model(train, val, CONFIG, NET, SPEC)
    assert [e.train_loss for e in first.history] == [e.train_loss for e in again.history]
    assert first.epochs_run == 2
    assert 0.0 <= first.best_val_dice <= 1.0

    class StopTrainingError(Exception):
        pass

    def stop(record: object, planned: int) -> None:
        raise StopTrainingError

    with pytest.raises(StopTrainingError):  # stopped after the first epoch's checkpoint
        train_segmentation_model(train, val, CONFIG, NET, SPEC, checkpoint_dir=tmp_path / "ck",
                                 progress=stop)  # fmt: skip
    resumed = train_segmentation_model(train, val, CONFIG, NET, SPEC,
                                       checkpoint_dir=tmp_path / "ck")  # fmt: skip
    assert resumed.epochs_run == 2
    assert [e.train_loss for e in resumed.history] == [e.train_loss for e in first.history]
    mask = predict_mask(resumed.network, (blob_frame(0)[0] / 255).astype(np.float32), SPEC)
    assert mask.shape == (40, 48)
    assert mask.dtype == np.uint8


def test_image_size_must_suit_the_depth() -> None:
    with pytest.raises(ModelError, match="multiple of 4"):
        train_segmentation_model(_pairs(0, 2), _pairs(2, 1), CONFIG, NET, PreprocessSpec(30, 3))
