"""Use case: diagnose one image file with a registered model, optionally with a Grad-CAM map.

Every image first passes the model's intended-use gate (`evaluation.ood`): an image
outside it gets no finding (or, for a model set to warn, a finding with the reasons).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from clinsight.data.images import read_image
from clinsight.data.intended_population import age_in_years
from clinsight.data.medmnist import dataset_info
from clinsight.data.source import SourceImage
from clinsight.errors import DataError
from clinsight.evaluation.ood import IntendedUseCheck, assess_intended_use
from clinsight.imaging.explain import grad_cam, save_overlay
from clinsight.inference.predictors import ImagePredictor, Prediction, load_torch_model
from clinsight.registry.image import ModelVersion

__all__ = [
    "Diagnosis",
    "Explanation",
    "centre_square",
    "diagnose_image",
    "explain_prediction",
    "population_warnings",
    "prediction_heat",
    "suitability_warnings",
]


@dataclass(frozen=True)
class Diagnosis:
    """A calibrated finding for one image, with the technical facts of its source, the
    intended-use check and (models without a gate) header reasons to doubt the fit.

    When `intended_use.refused`, the prediction is not a finding and must not be shown as one.
    """

    prediction: Prediction
    source: dict[str, str]
    heatmap: Path | None
    warnings: tuple[str, ...] = ()
    # The mean of the image's pixels in [0, 1], an input statistic for drift monitoring.
    mean_intensity: float | None = None
    intended_use: IntendedUseCheck | None = None
    heat: NDArray[np.float32] | None = None
    """The Grad-CAM map behind `heatmap` (None when no overlay was made)."""

    @property
    def refused(self) -> bool:
        """Whether the image is outside the model's intended use (no finding)."""
        return self.intended_use is not None and self.intended_use.refused

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a refused image's prediction is null)."""
        return {
            "prediction": None if self.refused else self.prediction.to_dict(),
            "source": self.source,
            "heatmap": str(self.heatmap) if self.heatmap else None,
            "warnings": list(self.warnings),
            "mean_intensity": self.mean_intensity,
            "intended_use": self.intended_use.to_dict() if self.intended_use else None,
        }


def suitability_warnings(model: ModelVersion, source: dict[str, str]) -> tuple[str, ...]:
    """Warnings when the DICOM header says the image is not what the model was trained on.

    Only DICOM carries modality and body part; PNG/JPEG inputs cannot be checked here.
    """
    try:
        info = dataset_info(str(model.training.get("dataset", "")))
    except DataError:
        return ()
    found: list[str] = []
    modality, body_part = source.get("modality", ""), source.get("body_part", "")
    if info.dicom_modalities and modality and modality not in info.dicom_modalities:
        found.append(
            f"The image is modality {modality}, but {model.name} was trained on "
            f"{info.modality} images ({'/'.join(info.dicom_modalities)}): the finding is "
            "unreliable for this image."
        )
    if info.body_parts and body_part and body_part not in info.body_parts:
        found.append(
            f"The image shows body part {body_part}, but {model.name} was trained on "
            f"{'/'.join(info.body_parts)} images: the finding is unreliable for this image."
        )
    return tuple(found)


def population_warnings(
    model: ModelVersion, birth_date: date | None, study_date: date
) -> tuple[str, ...]:
    """A warning when the patient's age at the study date lies outside the model card's
    intended population (none when either is unknown)."""
    population = model.intended_population
    if population is None or birth_date is None:
        return ()
    age = age_in_years(birth_date, study_date)
    if age < 0:
        return (
            f"The study date {study_date.isoformat()} precedes the patient's birth date "
            f"{birth_date.isoformat()}: check that the image belongs to this patient.",
        )
    if population.contains(age):
        return ()
    return (
        f"The patient was {age} years old at the study date ({study_date.isoformat()}), "
        f"outside the intended population of {model.name} v{model.version}: "
        f"{population.description} ({population.min_age_years}–{population.max_age_years} "
        "years). The finding is unreliable for this patient.",
    )


_Pixel = TypeVar("_Pixel", bound=np.generic)


def centre_square(pixels: NDArray[_Pixel]) -> NDArray[_Pixel]:
    """The centred square the preprocessing keeps, so a heat map lines up with the image."""
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return pixels[top : top + side, left : left + side]


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM map (the network's input grid, values in [0, 1], over the centred
    square of the image) and its overlay PNG."""

    heat: NDArray[np.float32]
    overlay: Path


def explain_prediction(
    predictor: ImagePredictor, image: SourceImage, out_path: Path, class_index: int | None = None
) -> Explanation:
    """Grad-CAM map of the predicted (or given) class, its overlay written as a PNG.

    Raises:
        IntegrityError: the model's weights no longer match the registry manifest.
        ModelError: the network cannot be rebuilt or explained.
    """
    cam = prediction_heat(predictor, image, class_index)
    return Explanation(cam, save_overlay(centre_square(image.pixels), cam, out_path))


def prediction_heat(
    predictor: ImagePredictor,
    image: SourceImage,
    class_index: int | None = None,
    *,
    network: nn.Module | None = None,
) -> NDArray[np.float32]:
    """The Grad-CAM map of the predicted (or given) class over the centred square the
    model read; `network` is the model's PyTorch network when already loaded.

    Raises:
        IntegrityError: the model's weights no longer match the registry manifest.
        ModelError: the network cannot be rebuilt or explained.
    """
    if network is None:
        network = load_torch_model(predictor.model)
    network_input = torch.from_numpy(predictor.preprocess(image.pixels))[None]
    return grad_cam(network, predictor.model.network_config.cam_layer, network_input, class_index)


def diagnose_image(
    predictor: ImagePredictor,
    source: Path | bytes | SourceImage,
    *,
    frame: int | None = None,
    heatmap_path: Path | None = None,
    birth_date: date | None = None,
    study_date: date | None = None,
    warn_only: bool = False,
) -> Diagnosis:
    """Read a PNG, JPEG or DICOM image (or take one already read), check it against the
    model's intended use, predict it, and optionally save a Grad-CAM overlay (never for a
    refused image). `warn_only` turns a refusal into a warning (`intended_use_warn_only`).
    With the patient's `birth_date`, their age at `study_date` (default: today) is checked
    against the model's intended population.

    Raises:
        UnsupportedImageError: the file is not an image Clinsight can read (reason given).
        DataNotFoundError: the path does not exist.
        ModelError: inference or the explanation failed.
        RegistryError: the model's stored intended-use gate cannot be read.
    """
    image = source if isinstance(source, SourceImage) else read_image(source, frame=frame)
    prediction = predictor.predict(image.pixels)
    source_facts = dict(image.metadata)
    on = study_date or datetime.now(UTC).date()
    gate = predictor.model.intended_use_gate
    check = assess_intended_use(
        gate, score=prediction.ood_score, pixels=image.pixels, source=source_facts,
        input_score=prediction.input_score, warn_only=warn_only,
    )  # fmt: skip
    explained = None
    if heatmap_path is not None and not check.refused:
        explained = explain_prediction(predictor, image, heatmap_path)
    return Diagnosis(
        prediction=prediction,
        source=source_facts,
        heatmap=None if explained is None else explained.overlay,
        warnings=(suitability_warnings(predictor.model, source_facts) if gate is None else ())
        + population_warnings(predictor.model, birth_date, on),
        mean_intensity=float(np.mean(image.pixels)),
        intended_use=check,
        heat=None if explained is None else explained.heat,
    )
