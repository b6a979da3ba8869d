"""A chest classifier's heat map against the lungs of a tiny lung model trained here: the
share inside them (on the centred square the classifier read), the flag for a map mostly
outside them, the lung model's own gate, and which classifier and model take part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

from clinsight.data.source import SourceImage
from clinsight.evaluation.ood import NOT_FITTED_REASON, ExpectedHeaders, IntendedUseGate
from clinsight.inference.cache import model_cache
from clinsight.registry.image import get_model
from clinsight.registry.segmentation import REGISTRY
from clinsight.registry.stages import Stage
from clinsight.services.explanation_lungs import LungModels, lung_segmenter, lung_share
from tests.support.image_models import TRAINING, register_tiny
from tests.support.segmentation_models import (
    chest_frame,
    register_lung_model,
    register_tiny_segmenter,
    train_tiny_lung_network,
)


@pytest.fixture(scope="module")
def lung_network() -> nn.Module:
    """The tiny lung U-Net, trained once for the module (a few seconds)."""
    return train_tiny_lung_network()


def _wide_chest(seed: int = 40) -> tuple[SourceImage, np.ndarray]:
    """A 64 x 80 chest frame (8 columns of body added each side) and its lung mask; the
    classifier reads the centred 64 x 64 square, which is the frame itself."""
    frame, lungs = chest_frame(seed)
    wide = np.pad(frame, ((0, 0), (8, 8)), constant_values=0.75)
    return SourceImage(wide, "png", {}), lungs


def _lungs(tmp_path: Path, network: nn.Module, gate: IntendedUseGate | None = None) -> LungModels:
    registry = tmp_path / "registry"
    register_lung_model(registry, network, gate=gate)
    REGISTRY.promote(registry, "tiny-lungs", 1, Stage.PRODUCTION)
    return LungModels(registry, model_cache(registry).segmentation)


def _resized(heat: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(heat).resize((size, size), Image.Resampling.BILINEAR))


def test_the_share_is_the_heat_mass_inside_the_outlined_lungs(
    tmp_path: Path, lung_network: nn.Module
) -> None:
    models = _lungs(tmp_path, lung_network)
    segmenter = models.segmenter("tiny-lungs")
    image, truth = _wide_chest()
    outlined = segmenter.mask_of(image.pixels)[:, 8:72] == 1
    dice = 2 * (outlined & (truth == 1)).sum() / (outlined.sum() + truth.sum())
    assert dice > 0.9  # the trained lung model finds the lungs of an unseen frame
    on_lungs = np.asarray(Image.fromarray(truth * 255).resize((28, 28)), dtype=np.float32) / 255
    below = np.zeros((28, 28), dtype=np.float32)
    below[24:, :] = 1.0  # under the lung fields, as "below the diaphragm"
    for heat in (on_lungs, below):
        found = lung_share(segmenter, image, heat)
        values = _resized(heat, 64)
        expected = values[outlined].sum() / values.sum()
        assert found.overlap is not None
        assert found.overlap.share_inside is not None
        assert found.overlap.share_inside == pytest.approx(expected, rel=1e-5)
        assert found.overlap.mask_area_share == pytest.approx(outlined.mean())
        assert (found.model_name, found.model_version, found.intended_use) == (
            "tiny-lungs", 1, "warned")  # fmt: skip
        assert found.reasons == (NOT_FITTED_REASON,)  # a lung model without a gate
    kept = lung_share(segmenter, image, on_lungs)
    flagged = lung_share(segmenter, image, below)
    assert kept.overlap is not None
    assert kept.overlap.share_inside is not None
    assert kept.overlap.share_inside > 0.8
    assert not kept.mostly_outside
    assert "mostly outside" not in kept.sentence()
    assert kept.sentence().endswith("The lung model warns: " + NOT_FITTED_REASON)
    assert flagged.overlap is not None
    assert flagged.overlap.share_inside is not None
    assert flagged.overlap.share_inside < 0.1
    assert flagged.mostly_outside
    assert "lies mostly outside the lungs" in flagged.sentence()
    assert flagged.to_dict()["mostly_outside"] is True


def test_the_lung_models_own_gate_applies(tmp_path: Path, lung_network: nn.Module) -> None:
    gate = IntendedUseGate("adult chest radiograph", ExpectedHeaders(modality=("CR", "DX")))
    segmenter = _lungs(tmp_path, lung_network, gate).segmenter("tiny-lungs")
    image, _ = _wide_chest()
    endoscopy = SourceImage(image.pixels, "dicom", {"modality": "ES"})
    refused = lung_share(segmenter, endoscopy, np.ones((28, 28), dtype=np.float32))
    assert refused.intended_use == "refused"
    assert refused.overlap is None
    assert refused.reasons
    assert "ES" in refused.reasons[0]
    assert refused.sentence().startswith(
        "Share of the heat map inside the lungs (tiny-lungs v1): not available."
    )
    assert not refused.mostly_outside
    warned = lung_share(segmenter, endoscopy, np.ones((28, 28), dtype=np.float32),
                        warn_only=True)  # fmt: skip
    assert warned.intended_use == "warned"
    assert warned.overlap is not None
    assert "The lung model warns: " in warned.sentence()


def test_only_a_chest_classifier_with_a_lung_model_in_production_is_checked(
    tmp_path: Path, lung_network: nn.Module
) -> None:
    registry = tmp_path / "registry"
    chest, _ = register_tiny(registry, name="chest")  # trained on PneumoniaMNIST
    breast, _ = register_tiny(registry, name="breast",
                              training={**TRAINING, "dataset": "breastmnist"})  # fmt: skip
    models = LungModels(registry, model_cache(registry).segmentation)
    assert lung_segmenter(models, chest) is None  # no segmentation model at all
    register_tiny_segmenter(registry, "polyps")
    REGISTRY.promote(registry, "polyps", 1, Stage.PRODUCTION)
    assert lung_segmenter(models, chest) is None  # no lung label
    register_lung_model(registry, lung_network)
    assert lung_segmenter(models, chest) is None  # a candidate only
    REGISTRY.promote(registry, "tiny-lungs", 1, Stage.PRODUCTION)
    found = lung_segmenter(models, chest)
    assert found is not None
    assert found.model.name == "tiny-lungs"
    assert lung_segmenter(models, breast) is None
    assert lung_segmenter(models, get_model(registry, "chest", 1)) is not None
    REGISTRY.promote(registry, "tiny-lungs", 1, Stage.ARCHIVED)
    assert lung_segmenter(models, chest) is None  # read again on each call, never cached
