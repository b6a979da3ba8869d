"""Where a chest classifier's explanation lies: the share of its Grad-CAM map inside the
lungs, as a production lung segmentation model outlines them.

A chest classifier (an image model trained on a chest dataset) gets this check only while
a segmentation model with a lung label is in production; the lung model's own
intended-use gate applies (an image it refuses gets no share, with its reasons). The lungs
are outlined on the whole image and the centred square the classifier read is kept, so map
and mask cover the same region (`evaluation.explanation_overlap`). Nothing is stored or
cached: the share is computed with the current production lung model on each request, so
a promotion or rollback applies at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from clinsight.config import Settings
from clinsight.data.medmnist import dataset_info
from clinsight.data.source import SourceImage
from clinsight.errors import DataError
from clinsight.evaluation.explanation_overlap import MaskOverlap, heat_share_inside
from clinsight.inference.predictors import ImagePredictor
from clinsight.inference.segmentation import SegmentationPredictor
from clinsight.registry.image import ModelVersion
from clinsight.registry.segmentation import REGISTRY as SEGMENTATION_REGISTRY
from clinsight.services.diagnosis import centre_square, prediction_heat

__all__ = [
    "LUNG_LABELS",
    "LungModels",
    "LungShare",
    "image_lung_share",
    "is_chest_classifier",
    "lung_segmenter",
    "lung_share",
]

LUNG_LABELS = frozenset({"lung", "lungs", "left lung", "right lung"})
"""Segmentation labels that mark lung (case, '_' and '-' ignored)."""

SegmenterLookup = Callable[[str], SegmentationPredictor]


def _is_lung(label: str) -> bool:
    return label.lower().replace("_", " ").replace("-", " ").strip() in LUNG_LABELS


@dataclass(frozen=True)
class LungModels:
    """Where the production lung models are: the registry, the model cache's lookup of a
    segmentation model's production predictor, and the models whose gate only warns."""

    registry_dir: Path
    segmenter: SegmenterLookup
    warn_only: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: Settings, segmenter: SegmenterLookup) -> LungModels:
        """The lung models of a running service."""
        return cls(settings.resolved_registry_dir, segmenter,
                   frozenset(settings.intended_use_warn_only))  # fmt: skip


@dataclass(frozen=True)
class LungShare:
    """The heat map's share inside the lungs, or why there is none."""

    model_name: str
    model_version: int
    intended_use: str
    """The lung model's gate on this image: "ok", "warned" or "refused" (no share)."""
    reasons: tuple[str, ...]
    overlap: MaskOverlap | None
    """None when the lung model refused the image or outlined no lung in the square read."""

    @property
    def mostly_outside(self) -> bool:
        """Whether the explanation lies mostly outside the lungs (flagged)."""
        return self.overlap is not None and self.overlap.mostly_outside

    def sentence(self) -> str:
        """What a clinician reads about the explanation."""
        model = f"{self.model_name} v{self.model_version}"
        found = self.overlap
        if found is None or found.share_inside is None:
            why = " ".join(self.reasons) or "no share could be computed."
            return f"Share of the heat map inside the lungs ({model}): not available. {why}"
        text = (
            f"{found.share_inside:.0%} of the heat map lies inside the lungs outlined by "
            f"{model} (a map spread evenly would score {found.mask_area_share:.0%})."
        )
        if found.mostly_outside:
            text += (" The explanation lies mostly outside the lungs: the score may rest on "
                     "something that is not a lung finding; read the image yourself.")  # fmt: skip
        if self.intended_use == "warned" and self.reasons:
            text += " The lung model warns: " + " ".join(self.reasons)
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        found = self.overlap
        return {
            "model_name": self.model_name, "model_version": self.model_version,
            "intended_use": self.intended_use, "reasons": list(self.reasons),
            "share_inside": None if found is None else found.share_inside,
            "mask_area_share": None if found is None else found.mask_area_share,
            "mostly_outside": self.mostly_outside, "text": self.sentence(),
        }  # fmt: skip


def is_chest_classifier(model: ModelVersion) -> bool:
    """Whether an image model was trained on chest images (its dataset's body part)."""
    try:
        info = dataset_info(str(model.training.get("dataset", "")))
    except DataError:
        return False
    return "CHEST" in info.body_parts


def lung_segmenter(models: LungModels, classifier: ModelVersion) -> SegmentationPredictor | None:
    """The production lung model for a chest classifier's explanation (the first by name
    with a lung label); None for another classifier or without such a model."""
    if not is_chest_classifier(classifier):
        return None
    for name in SEGMENTATION_REGISTRY.in_production(models.registry_dir):
        predictor = models.segmenter(name)
        if any(_is_lung(label) for label in predictor.model.labels[1:]):
            return predictor
    return None


def lung_share(
    segmenter: SegmentationPredictor,
    image: SourceImage,
    heat: NDArray[np.floating[Any]],
    *,
    warn_only: bool = False,
) -> LungShare:
    """The share of `heat` (over the centred square of `image`) inside the lungs that
    `segmenter` outlines on the whole image, after its intended-use gate.

    Raises:
        DataError: the map holds negative or non-finite values, or the image non-finite ones.
        ModelError: the lung model cannot run.
    """
    model = segmenter.model
    result = segmenter.predict(image.pixels, source=image.metadata, warn_only=warn_only)
    check = result.intended_use
    facts = (model.name, model.version, str(check.status))
    if result.mask is None:
        return LungShare(*facts, check.reasons, None)
    labels = [i for i, label in enumerate(model.labels) if i and _is_lung(label)]
    lungs = np.isin(centre_square(result.mask), labels)
    if not lungs.any():
        why = "The lung model outlined no lung in the part of the image the classifier read."
        return LungShare(*facts, (*check.reasons, why), None)
    return LungShare(*facts, check.reasons, heat_share_inside(heat, lungs))


def image_lung_share(
    models: LungModels,
    predictor: ImagePredictor,
    image: SourceImage,
    *,
    heat: NDArray[np.floating[Any]] | None = None,
    class_index: int | None = None,
    network: nn.Module | None = None,
) -> LungShare | None:
    """The lung share of a diagnosed (not refused) image's explanation, as `lung_share`
    with the production lung model; None for a classifier that is not a chest model or
    without such a model. The map is `heat` when already made, else Grad-CAM of the
    predicted (or given) class (with the classifier's `network` when already loaded).

    Raises:
        DataError: the image holds non-finite values.
        ModelError: the classifier cannot be explained or the lung model cannot run.
    """
    segmenter = lung_segmenter(models, predictor.model)
    if segmenter is None:
        return None
    if heat is None:
        heat = prediction_heat(predictor, image, class_index, network=network)
    warn = segmenter.model.name in models.warn_only
    return lung_share(segmenter, image, heat, warn_only=warn)
