"""Segment one image with a registered model: decode, gate, mask, areas, outline picture.

`segment_content` is the use case the command line calls (`clinsight segment predict`) and
that the API route and web result page will call: it decodes the bytes once (PNG, JPEG or
DICOM), takes the pixel spacing from a DICOM header (areas in mm²), runs the intended-use
gate and the model, and returns the result with what a page needs (`outline_png`: the
outline over the image; `plain_png`: the image alone).

For a DICOM input, `dicom_seg_bytes` builds the SEG object referencing the source image
(`interop.dicom_seg.build_seg`). `segment_study` / `segment_upload` record the result in
`segmentations` (mask PNG and SEG encrypted, audited `segmentation.create`); the view,
mask, SEG and review use cases audit `segmentation.view` / `segmentation.review`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from clinsight.config import Settings
from clinsight.data.images import read_image
from clinsight.data.segmentation import dicom_pixel_spacing
from clinsight.data.source import SourceImage, sniff_image_format
from clinsight.errors import RecordNotFoundError, UnsupportedImageError
from clinsight.inference.segmentation import SegmentationPredictor, SegmentationResult
from clinsight.interop.dicom_seg import build_seg
from clinsight.registry.segmentation import REGISTRY as SEGMENTATION_REGISTRY
from clinsight.security.clinical import read_study
from clinsight.security.segmentations import (
    get_dicom_seg,
    get_mask_png,
    get_segmentation,
    list_segmentations,
    record_segmentation,
    review_segmentation,
)
from clinsight.services.predictions import upload_study
from clinsight.store.repositories import StoreContext
from clinsight.store.segmentations import SegmentationDraft, SegmentationRecord

__all__ = [
    "OUTLINE_COLOURS",
    "SegmentationPictures",
    "SegmentedImage",
    "dicom_seg_bytes",
    "mask_png",
    "outline_png",
    "plain_png",
    "production_segmenters",
    "read_mask_png",
    "review",
    "segment_content",
    "segment_study",
    "segment_upload",
    "segmentation_dicom_seg",
    "segmentation_draft",
    "segmentation_mask",
    "segmentation_pictures",
    "segmentation_view",
    "study_segmentations",
]

OUTLINE_COLOURS = ((255, 0, 255), (0, 200, 255), (255, 200, 0))
"""Outline colour of label 1, 2, 3 (magenta, cyan, amber: visible on grey and on red)."""


@dataclass(frozen=True)
class SegmentedImage:
    """The decoded image and the model's result (mask None when the gate refused it)."""

    image: SourceImage
    result: SegmentationResult
    is_dicom: bool


def segment_content(
    predictor: SegmentationPredictor, content: bytes, settings: Settings | None = None
) -> SegmentedImage:
    """Decode `content`, check it against the model's intended use, and segment it.

    Raises:
        UnsupportedImageError: the bytes are not a usable PNG, JPEG or DICOM image.
        DataError: the pixels are not finite.
        ModelError: the model cannot run.
    """
    image = read_image(content)
    is_dicom = sniff_image_format(content) == "dicom"
    spacing = dicom_pixel_spacing(content) if is_dicom else None
    warn_only = settings is not None and predictor.model.name in settings.intended_use_warn_only
    result = predictor.predict(
        image.pixels, source=image.metadata, spacing_mm=spacing, warn_only=warn_only
    )
    return SegmentedImage(image, result, is_dicom)


def _rgb(pixels: NDArray[np.float32]) -> NDArray[np.uint8]:
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    return np.asarray(np.rint(np.clip(rgb[..., :3], 0, 1) * 255), dtype=np.uint8)


def _png(array: NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def plain_png(pixels: NDArray[np.float32]) -> bytes:
    """The image alone as PNG (the page's toggle to the plain image)."""
    return _png(_rgb(pixels))


def outline_png(pixels: NDArray[np.float32], mask: NDArray[np.uint8]) -> bytes:
    """The image with each label's outline drawn in its colour, about 0.4 % of the image's
    shorter side thick (at least one pixel)."""
    canvas = _rgb(pixels).copy()
    thickness = max(1, round(min(mask.shape) / 250))
    for label in range(1, int(mask.max(initial=0)) + 1):
        region = mask == label
        edge = region & ~binary_erosion(region, iterations=1, border_value=0)
        if thickness > 1:
            edge = binary_dilation(edge, iterations=thickness - 1)
        canvas[edge] = OUTLINE_COLOURS[(label - 1) % len(OUTLINE_COLOURS)]
    return _png(canvas)


def dicom_seg_bytes(content: bytes, segmented: SegmentedImage) -> bytes | None:
    """The DICOM SEG object of a DICOM input's mask, referencing the source image (None for
    PNG/JPEG, a refused image, or a mask that marks no label: a SEG segment must mark a
    pixel). Labels the mask does not contain are left out of the SEG.

    Raises:
        UnsupportedImageError: the source cannot carry a SEG (multi-frame, no UIDs).
        DataError: the SEG cannot be built from this source (see `interop.dicom_seg`).
    """
    mask = segmented.result.mask
    if not segmented.is_dicom or mask is None:
        return None
    names = segmented.result.labels[1:]
    present = [k for k in range(1, len(names) + 1) if bool(np.any(mask == k))]
    if not present:
        return None
    remapped = np.zeros_like(mask)
    for new, old in enumerate(present, start=1):
        remapped[mask == old] = new
    source = pydicom.dcmread(io.BytesIO(content))
    return build_seg(
        source, remapped, [names[k - 1] for k in present],
        algorithm_name=segmented.result.model_name[:64],
        algorithm_version=str(segmented.result.model_version),
    )  # fmt: skip


def mask_png(mask: NDArray[np.uint8]) -> bytes:
    """The label mask as an 8-bit greyscale PNG: each pixel's value is its label index."""
    return _png(np.asarray(mask, dtype=np.uint8))


def read_mask_png(data: bytes) -> NDArray[np.uint8]:
    """The label mask back from `mask_png`."""
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture, dtype=np.uint8)


def _seg_or_none(content: bytes, segmented: SegmentedImage) -> bytes | None:
    """The DICOM SEG, or None where the source cannot carry one (a multi-frame object, no
    study/series UIDs): the mask and areas are still recorded."""
    try:
        return dicom_seg_bytes(content, segmented)
    except UnsupportedImageError:
        return None


def segmentation_draft(content: bytes, segmented: SegmentedImage) -> SegmentationDraft:
    """What to store of a segmented image: provenance, areas, verdict, mask and SEG."""
    result = segmented.result
    return SegmentationDraft(
        model_name=result.model_name, model_version=str(result.model_version),
        artifact_sha256=result.artifact_sha256, input_sha256=result.input_sha256,
        labels=tuple(result.labels), areas_px=dict(result.areas_px),
        areas_mm2=dict(result.areas_mm2), spacing_mm=result.spacing_mm,
        intended_use=str(result.intended_use.status),
        intended_use_reasons=tuple(result.intended_use.reasons), latency_ms=result.latency_ms,
        mask_png=None if result.mask is None else mask_png(result.mask),
        dicom_seg=_seg_or_none(content, segmented),
    )  # fmt: skip


def segment_study(
    ctx: StoreContext,
    predictor: SegmentationPredictor,
    study_id: str,
    settings: Settings | None = None,
) -> SegmentationRecord:
    """Segment a stored study and record the result (mask, areas, the intended-use verdict
    and its reasons, for a DICOM input the DICOM SEG); commits. An image outside the
    model's intended use is recorded as refused, with the reasons and no mask.

    Raises:
        RecordNotFoundError: no such study.
        PermissionDeniedError: the actor may not open its patient (the denial is committed).
        UnsupportedImageError: the stored image cannot be decoded.
        ModelError: the model cannot run.
    """
    _, content = read_study(ctx, study_id)
    ctx.session.commit()  # the read's audit entry; no lock held while the model runs
    segmented = segment_content(predictor, content, settings)
    record = record_segmentation(ctx, study_id, segmentation_draft(content, segmented))
    ctx.session.commit()
    return record


def segment_upload(
    ctx: StoreContext,
    predictor: SegmentationPredictor,
    patient_id: str,
    content: bytes,
    settings: Settings,
    *,
    confirm_patient_mismatch: bool = False,
) -> SegmentationRecord:
    """Store an uploaded image as a study of the patient, then segment it; commits.

    Raises:
        As `services.predictions.upload_study` and `segment_study`.
    """
    study = upload_study(ctx, patient_id, content, settings,
                         confirm_patient_mismatch=confirm_patient_mismatch)  # fmt: skip
    return segment_study(ctx, predictor, study.id, settings)


def segmentation_view(ctx: StoreContext, segmentation_id: str) -> SegmentationRecord:
    """A stored segmentation (audited as `segmentation.view`); commits the audit entry.

    Raises:
        RecordNotFoundError: no such segmentation.
        PermissionDeniedError: the actor may not open its patient.
    """
    record = get_segmentation(ctx, segmentation_id)
    ctx.session.commit()
    return record


def study_segmentations(ctx: StoreContext, study_id: str) -> list[SegmentationRecord]:
    """A study's segmentations, newest first; commits the audit entry.

    Raises:
        RecordNotFoundError: no such study.
        PermissionDeniedError: the actor may not open its patient.
    """
    records = list_segmentations(ctx, study_id)
    ctx.session.commit()
    return records


def segmentation_mask(ctx: StoreContext, segmentation_id: str) -> bytes:
    """The stored label mask PNG; commits the audit entry.

    Raises:
        RecordNotFoundError: no such segmentation, or no mask (a refused image).
        PermissionDeniedError: the actor may not open its patient.
    """
    _, data = get_mask_png(ctx, segmentation_id)
    ctx.session.commit()
    if data is None:
        raise RecordNotFoundError(
            "this image was outside the model's intended use: no mask was made"
        )
    return data


def segmentation_dicom_seg(ctx: StoreContext, segmentation_id: str) -> bytes:
    """The stored DICOM SEG; commits the audit entry.

    Raises:
        RecordNotFoundError: no such segmentation, or no SEG (a PNG/JPEG input, a refused
            image, or a mask that marks nothing).
        PermissionDeniedError: the actor may not open its patient.
    """
    _, data = get_dicom_seg(ctx, segmentation_id)
    ctx.session.commit()
    if data is None:
        raise RecordNotFoundError(
            "this segmentation has no DICOM SEG: only a DICOM input with a non-empty mask gets one"
        )
    return data


@dataclass(frozen=True)
class SegmentationPictures:
    """A stored segmentation with its outline over the image and the plain image (PNG)."""

    record: SegmentationRecord
    outline: bytes
    plain: bytes


def segmentation_pictures(ctx: StoreContext, segmentation_id: str) -> SegmentationPictures:
    """A segmentation and its pictures for the result page; commits the audit entries.

    Raises:
        RecordNotFoundError: no such segmentation.
        PermissionDeniedError: the actor may not open its patient.
        UnsupportedImageError: the stored image cannot be decoded.
    """
    record, data = get_mask_png(ctx, segmentation_id)
    _, content = read_study(ctx, record.study_id)
    ctx.session.commit()
    pixels = read_image(content).pixels
    plain = plain_png(pixels)
    outline = plain if data is None else outline_png(pixels, read_mask_png(data))
    return SegmentationPictures(record, outline, plain)


def review(ctx: StoreContext, segmentation_id: str, verdict: str) -> SegmentationRecord:
    """Record the actor's review ("agree" or "disagree"); commits.

    Raises:
        RecordNotFoundError: no such segmentation.
        PermissionDeniedError: the actor may not open its patient.
        DataError: an unknown verdict, or a refused image (nothing to review).
    """
    record = review_segmentation(ctx, segmentation_id, verdict)
    ctx.session.commit()
    return record


def production_segmenters(registry_dir: Path) -> list[str]:
    """The names of the segmentation models with a version in production (the study
    page's "Segment" action offers these)."""
    return SEGMENTATION_REGISTRY.in_production(registry_dir)
