"""Preprocessing replayed at inference, and seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinsight.errors import UnsupportedImageError
from clinsight.imaging.specs import AugmentSpec
from clinsight.imaging.transforms import (
    Preprocess,
    PreprocessSpec,
    build_augmentation,
    to_channels_first,
)


def test_grey_and_colour_conversions() -> None:
    rgb = np.zeros((4, 5, 3), dtype=np.float32)
    rgb[..., 0] = 1.0
    grey = to_channels_first(rgb, 1)
    assert grey.shape == (1, 4, 5)
    np.testing.assert_allclose(grey, 0.299, rtol=1e-6)
    assert to_channels_first(np.ones((4, 5)), 3).shape == (3, 4, 5)
    rgba = np.ones((4, 5, 4), dtype=np.float32)
    assert to_channels_first(rgba, 3).shape == (3, 4, 5)


def test_non_image_arrays_are_rejected() -> None:
    with pytest.raises(UnsupportedImageError, match=r"got \(2, 3, 4, 5\)"):
        to_channels_first(np.zeros((2, 3, 4, 5)), 1)


def test_preprocess_crops_the_centre_square_and_resizes_by_area() -> None:
    image = np.zeros((40, 60), dtype=np.float32)
    image[:, 10:50] = 1.0  # the centre 40x40 square is all ones
    out = Preprocess(PreprocessSpec(image_size=20, channels=1, mean=0.5, std=0.25))(image)
    assert out.shape == (1, 20, 20)
    np.testing.assert_allclose(out, (1.0 - 0.5) / 0.25)


def test_batch_path_equals_the_single_image_path() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    preprocess = Preprocess(PreprocessSpec(28, 1))
    single = np.stack([preprocess(img.astype(np.float32) / 255.0) for img in images])
    np.testing.assert_allclose(preprocess.batch(images), single, atol=1e-6)
    colour = rng.integers(0, 256, size=(3, 28, 28, 3), dtype=np.uint8)
    assert Preprocess(PreprocessSpec(14, 3)).batch(colour).shape == (3, 3, 14, 14)


def test_spec_round_trips() -> None:
    spec = PreprocessSpec(64, 3, 0.4, 0.2)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


def test_augmentation_is_reproducible_and_changes_the_image() -> None:
    image = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    first = build_augmentation(AugmentSpec(), 28)
    second = build_augmentation(AugmentSpec(), 28)
    first.set_random_state(seed=7)
    second.set_random_state(seed=7)
    a = torch.as_tensor(first(image))
    b = torch.as_tensor(second(image))
    assert torch.equal(a, b)
    assert a.shape == image.shape
    assert not torch.equal(a, image)


@pytest.mark.parametrize("shape", [(512, 512), (300, 300, 3), (61, 47)])
def test_serving_resize_equals_monai_area_resize(shape: tuple[int, ...]) -> None:
    from monai.transforms import Resize

    spec = PreprocessSpec(image_size=28, channels=3 if len(shape) == 3 else 1, mean=0.5, std=0.25)
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    arr = to_channels_first(image, spec.channels)
    side = min(arr.shape[1:])
    top, left = (arr.shape[1] - side) // 2, (arr.shape[2] - side) // 2
    square = arr[:, top : top + side, left : left + side]
    expected = np.asarray(Resize(spatial_size=(28, 28), mode="area")(square))
    np.testing.assert_array_equal(Preprocess(spec).geometry(image), expected)


def test_serving_normalisation_equals_monai_normalize_intensity() -> None:
    from monai.transforms import NormalizeIntensity

    spec = PreprocessSpec(image_size=28, channels=1, mean=0.4, std=0.3)
    arr = np.random.default_rng(2).random((1, 28, 28), dtype=np.float32)
    expected = np.asarray(NormalizeIntensity(subtrahend=spec.mean, divisor=spec.std)(arr))
    np.testing.assert_allclose(Preprocess(spec).normalize(arr), expected, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(
        Preprocess(spec).normalize(torch.from_numpy(arr)), Preprocess(spec).normalize(arr)
    )
