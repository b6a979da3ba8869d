"""The intended-use gate fitted at training time: own validation images pass, foreign ones
get no finding; models registered before gates still predict."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clinsight.data.medmnist import Split, load_medmnist
from clinsight.evaluation.ood import NOT_FITTED_REASON, assess_intended_use
from clinsight.imaging.features import penultimate_features
from clinsight.inference.predictors import ImagePredictor, load_torch_model
from clinsight.services.diagnosis import diagnose_image
from clinsight.services.training import ImageTrainingOutcome
from tests.support.image_models import register_tiny


@pytest.fixture
def predictor(trained: ImageTrainingOutcome) -> ImagePredictor:
    assert trained.model is not None
    return ImagePredictor(trained.model)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_training_fits_the_gate_on_validation_and_stores_what_the_dataset_declares(
    predictor: ImagePredictor,
) -> None:
    gate = predictor.model.intended_use_gate
    assert gate is not None
    assert gate.features is not None
    assert (gate.noun, gate.headers.modality, gate.headers.body_part) == (
        "breast ultrasound image", ("US",), ("BREAST",),
    )  # fmt: skip
    assert gate.inputs is not None
    assert (gate.features.n_fit, gate.features.n_validation) == (546, 78)
    assert gate.features.validation_rejected <= gate.features.rejection_target == 0.01
    assert gate.inputs.validation_rejected <= gate.inputs.rejection_target == 0.01
    assert predictor.model.to_dict()["intended_use_gate"]["action"] == "refuse"


def test_own_validation_images_pass_with_the_onnx_features_scored_as_at_training(
    predictor: ImagePredictor, data_dir: Path
) -> None:
    gate = predictor.model.intended_use_gate
    assert gate is not None
    assert gate.features is not None
    images, _ = load_medmnist(data_dir, "breastmnist").split(Split.VAL)
    batch = predictor.preprocess.batch(images)
    scores, input_scores = predictor.ood_scores(batch), predictor.input_scores(batch)
    assert scores is not None
    assert input_scores is not None
    network = load_torch_model(predictor.model)
    at_training = gate.features.scores(penultimate_features(network, torch.from_numpy(batch)))
    np.testing.assert_allclose(scores, at_training, rtol=1e-4)
    refused = [
        assess_intended_use(gate, score=float(s), pixels=image, source={},
                            input_score=float(i)).refused
        for s, i, image in zip(scores, input_scores, images / 255.0, strict=True)
    ]  # fmt: skip
    assert sum(refused) <= 2  # each limit lets at most 1 % of the 78 fail


def test_a_colour_photo_and_a_noise_image_get_no_finding(predictor: ImagePredictor) -> None:
    rng = np.random.default_rng(0)
    photo = np.zeros((48, 64, 3), dtype=np.uint8)
    photo[..., 0], photo[..., 1] = 200, rng.integers(0, 120, (48, 64))
    colour = diagnose_image(predictor, _png(photo))
    assert colour.refused
    assert colour.intended_use is not None
    assert colour.intended_use.reasons[0].startswith("This is a colour picture")
    noise = diagnose_image(predictor, _png(rng.integers(0, 256, (64, 64), dtype=np.uint8)))
    assert noise.intended_use is not None
    assert noise.refused, noise.intended_use
    assert any(
        reason.startswith(
            "This image's brightness, contrast and texture are unlike the breast ultrasound "
            "images the model was trained on (input-statistics score "
        )
        for reason in noise.intended_use.reasons
    )


def test_a_model_registered_before_gates_still_predicts_and_says_it_was_not_checked(
    tmp_path: Path, data_dir: Path
) -> None:
    model, _ = register_tiny(tmp_path)  # trained on pneumoniamnist, no gate
    source = data_dir / "dicom" / "pydicom_data" / "MR2_UNCR.dcm"
    result = diagnose_image(ImagePredictor(model), source)
    assert result.prediction.ood_score is None
    assert not result.refused
    assert result.intended_use is not None
    assert (str(result.intended_use.status), result.intended_use.reasons) == (
        "warned", (NOT_FITTED_REASON,),
    )  # fmt: skip
    assert result.warnings[0].startswith("The image is modality MR, but tiny was trained on")
    assert result.to_dict()["prediction"]["label"] in ("class0", "class1")
