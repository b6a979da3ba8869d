"""Segmentations under the patient access policy (as `security.clinical` for predictions):
each function finds the record's patient, decides (a refusal is audited and committed),
then calls `store.segmentations`. None commits."""

from __future__ import annotations

from clinsight.security.access import require_patient_access
from clinsight.store import segmentations, studies
from clinsight.store.actors import PatientAccess
from clinsight.store.repositories import StoreContext
from clinsight.store.segmentations import SegmentationDraft, SegmentationRecord

__all__ = [
    "get_dicom_seg",
    "get_mask_png",
    "get_segmentation",
    "list_patient_segmentations",
    "list_segmentations",
    "record_segmentation",
    "review_segmentation",
]


def _glass(ctx: StoreContext, patient_id: str, action: str) -> bool:
    access = require_patient_access(ctx.session, ctx.actor, patient_id, action)
    return access is PatientAccess.BREAK_GLASS


def record_segmentation(
    ctx: StoreContext, study_id: str, draft: SegmentationDraft
) -> SegmentationRecord:
    """Store a segmentation of a study, made by the actor.

    Raises:
        RecordNotFoundError: no study has this id.
        PermissionDeniedError: the actor may not open its patient.
    """
    glass = _glass(ctx, studies.study_patient_id(ctx, study_id), "segmentation.create")
    return segmentations.insert_segmentation(ctx, study_id, draft, break_glass=glass)


def get_segmentation(
    ctx: StoreContext, segmentation_id: str, what: str = "record"
) -> SegmentationRecord:
    """One segmentation (audited as a view of `what`).

    Raises:
        RecordNotFoundError: no segmentation has this id.
        PermissionDeniedError: the actor may not open its patient.
    """
    patient_id = segmentations.segmentation_patient_id(ctx, segmentation_id)
    glass = _glass(ctx, patient_id, "segmentation.view")
    return segmentations.read_segmentation(ctx, segmentation_id, break_glass=glass, what=what)


def list_segmentations(ctx: StoreContext, study_id: str) -> list[SegmentationRecord]:
    """A study's segmentations, newest first.

    Raises:
        RecordNotFoundError: no study has this id.
        PermissionDeniedError: the actor may not open its patient.
    """
    glass = _glass(ctx, studies.study_patient_id(ctx, study_id), "segmentation.view")
    return segmentations.read_segmentations(ctx, study_id, break_glass=glass)


def list_patient_segmentations(ctx: StoreContext, patient_id: str) -> list[SegmentationRecord]:
    """Every segmentation of a patient's studies, newest first.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
    """
    glass = _glass(ctx, patient_id, "segmentation.view")
    return segmentations.read_patient_segmentations(ctx, patient_id, break_glass=glass)


def get_mask_png(
    ctx: StoreContext, segmentation_id: str
) -> tuple[SegmentationRecord, bytes | None]:
    """A segmentation and its decrypted mask PNG (audited as a view of the mask).

    Raises:
        As `get_segmentation`; DecryptionError: the stored mask was altered.
    """
    record = get_segmentation(ctx, segmentation_id, "mask")
    return record, segmentations.read_mask_png(ctx, segmentation_id)


def get_dicom_seg(
    ctx: StoreContext, segmentation_id: str
) -> tuple[SegmentationRecord, bytes | None]:
    """A segmentation and its decrypted DICOM SEG (audited as a view of the SEG).

    Raises:
        As `get_segmentation`; DecryptionError: the stored SEG was altered.
    """
    record = get_segmentation(ctx, segmentation_id, "dicom-seg")
    return record, segmentations.read_dicom_seg(ctx, segmentation_id)


def review_segmentation(ctx: StoreContext, segmentation_id: str, review: str) -> SegmentationRecord:
    """Record the actor's review of a segmentation.

    Raises:
        RecordNotFoundError: no segmentation has this id.
        PermissionDeniedError: the actor may not open its patient.
        DataError: an unknown review, or a refused image.
    """
    patient_id = segmentations.segmentation_patient_id(ctx, segmentation_id)
    glass = _glass(ctx, patient_id, "segmentation.review")
    return segmentations.review_segmentation(ctx, segmentation_id, review, break_glass=glass)
