"""Diagnosis of real files: DICOM radiographs, PNG, a Grad-CAM overlay, clear rejections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clinsight.data.images import read_image
from clinsight.errors import UnsupportedImageError
from clinsight.imaging.explain import grad_cam, save_overlay
from clinsight.imaging.networks import Ensemble, NetworkConfig
from clinsight.inference.predictors import ImagePredictor, load_torch_model
from clinsight.services.diagnosis import centre_square, diagnose_image
from clinsight.services.training import ImageTrainingOutcome
from tests.support.image_models import register_tiny


@pytest.fixture
def predictor(trained: ImageTrainingOutcome) -> ImagePredictor:
    assert trained.model is not None
    return ImagePredictor(trained.model)


def test_a_chest_radiograph_is_outside_the_breast_models_intended_use(
    predictor: ImagePredictor, data_dir: Path, tmp_path: Path
) -> None:
    source = data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm"
    result = diagnose_image(predictor, source, heatmap_path=tmp_path / "cam.png")
    assert result.refused
    assert result.heatmap is None
    assert result.warnings == ()
    assert result.intended_use is not None
    assert result.intended_use.reasons[:2] == (
        "The DICOM header gives modality CR, but the model is meant for breast ultrasound "
        "images with modality US.",
        "The DICOM header gives body part CHEST, but the model is meant for breast ultrasound "
        "images with body part BREAST.",
    )
    assert result.intended_use.reasons[-1] == "No finding is given."
    assert result.to_dict()["prediction"] is None


def test_dicom_radiograph_gets_a_calibrated_finding_and_heat_map_when_the_gate_warns(
    predictor: ImagePredictor, data_dir: Path, tmp_path: Path
) -> None:
    source = data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm"
    result = diagnose_image(predictor, source, heatmap_path=tmp_path / "cam.png", warn_only=True)
    prediction = result.prediction
    assert set(prediction.probabilities) == {"malignant", "normal, benign"}
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.model_version == 1
    assert result.source["modality"] == "CR"
    assert result.source["body_part"] == "CHEST"
    assert result.intended_use is not None
    assert str(result.intended_use.status) == "warned"
    assert "modality CR" in result.intended_use.reasons[0]
    assert result.heatmap is not None
    with Image.open(result.heatmap) as overlay:
        assert overlay.mode == "RGB"
        assert overlay.size[0] == overlay.size[1] > 1000


def test_png_bytes_predict_like_the_same_pixels(predictor: ImagePredictor, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 80), dtype=np.uint8)
    path = tmp_path / "scan.png"
    Image.fromarray(pixels).save(path)
    from_file = diagnose_image(predictor, path).prediction
    direct = predictor.predict(pixels.astype(np.float32) / 255.0)
    assert from_file.probabilities == pytest.approx(direct.probabilities, abs=1e-6)
    assert from_file.input_sha256 == direct.input_sha256
    assert diagnose_image(predictor, path).warnings == ()


def test_non_image_dicom_is_rejected(predictor: ImagePredictor, data_dir: Path) -> None:
    with pytest.raises(UnsupportedImageError, match="Clinsight needs an image"):
        diagnose_image(predictor, data_dir / "dicom" / "pydicom_data" / "liver.dcm")


def test_centre_square_keeps_the_middle() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(centre_square(image), image[:, 0:3])


def test_a_registered_ensemble_gets_its_averaged_heat_map(tmp_path: Path) -> None:
    config = NetworkConfig("resnet10", 1, 2, width=4, members=2)
    model, _ = register_tiny(tmp_path / "reg", config=config)
    pixels = np.random.default_rng(1).integers(0, 256, size=(40, 60), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "scan.png")
    predictor = ImagePredictor(model)
    result = diagnose_image(predictor, tmp_path / "scan.png", heatmap_path=tmp_path / "cam.png")
    assert result.heatmap == tmp_path / "cam.png"

    network = load_torch_model(model)
    assert isinstance(network, Ensemble)
    image = read_image(tmp_path / "scan.png")
    network_input = torch.from_numpy(predictor.preprocess(image.pixels))[None]
    cam = grad_cam(network, config.cam_layer, network_input)
    assert cam.max() == pytest.approx(1.0)
    expected = save_overlay(centre_square(image.pixels), cam, tmp_path / "expected.png")
    with Image.open(result.heatmap) as overlay, Image.open(expected) as reference:
        assert overlay.size == (40, 40)
        assert np.array_equal(np.asarray(overlay), np.asarray(reference))
