"""A lung model registered with a mask clean-up keeps only the two largest lung pieces in
every mask it predicts (the areas follow); one registered without it is left as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import label

from clinsight.imaging.mask_cleanup import keep_largest
from clinsight.inference.cache import model_cache
from tests.support.segmentation_models import (
    chest_frame,
    register_lung_model,
    train_tiny_lung_network,
)


def test_the_recorded_clean_up_drops_a_dark_speck_outside_the_lungs(tmp_path: Path) -> None:
    network = train_tiny_lung_network()
    registry = tmp_path / "reg"
    register_lung_model(registry, network, name="plain")
    register_lung_model(registry, network, name="clean", keep_largest=2)
    frame, _ = chest_frame(41)
    frame[54:61, 28:36] = 0.25  # a dark speck below the lung fields, read as lung
    cache = model_cache(registry)
    plain = cache.segmentation("plain", 1).mask_of(frame)
    clean = cache.segmentation("clean", 1).mask_of(frame)
    assert plain[54:61, 28:36].any()
    assert label(plain == 1)[1] >= 3
    assert not clean[54:61, 28:36].any()
    assert label(clean == 1)[1] == 2
    assert np.array_equal(clean, keep_largest(plain, 2))
    result = cache.segmentation("clean", 1).predict(frame)
    assert result.mask is not None
    assert np.array_equal(result.mask, clean)
    assert result.areas_px["lung"] == int((clean == 1).sum())
