"""Segmentations of studies: provenance, label areas, the intended-use verdict, the mask
PNG and (for a DICOM input) the DICOM SEG, both encrypted, and the clinician's review.

Like `store.studies`, every function audits; the access checks run first in
`security.segmentations`, and the caller commits.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from clinsight.errors import DataError, RecordNotFoundError
from clinsight.store.repositories import StoreContext
from clinsight.store.tables import Segmentation, Study, new_id, utcnow

__all__ = [
    "REVIEWS",
    "SegmentationDraft",
    "SegmentationRecord",
    "insert_segmentation",
    "read_dicom_seg",
    "read_mask_png",
    "read_patient_segmentations",
    "read_segmentation",
    "read_segmentations",
    "review_segmentation",
    "segmentation_patient_id",
]

REVIEWS = ("agree", "disagree")
_TABLE = Segmentation.__tablename__


@dataclass(frozen=True)
class SegmentationDraft:
    """What a segmentation model made of a study, before it is stored."""

    model_name: str
    model_version: str
    artifact_sha256: str
    input_sha256: str
    labels: tuple[str, ...]
    areas_px: dict[str, int]
    areas_mm2: dict[str, float | None]
    spacing_mm: tuple[float, float] | None
    intended_use: str
    intended_use_reasons: tuple[str, ...]
    latency_ms: float
    mask_png: bytes | None
    dicom_seg: bytes | None


@dataclass(frozen=True)
class SegmentationRecord:
    """A stored segmentation without its pictures (`read_mask_png`, `read_dicom_seg`)."""

    id: str
    study_id: str
    patient_id: str
    model_name: str
    model_version: str
    artifact_sha256: str
    input_sha256: str
    labels: tuple[str, ...]
    areas_px: dict[str, int]
    areas_mm2: dict[str, float | None]
    spacing_mm: tuple[float, float] | None
    intended_use: str
    intended_use_reasons: tuple[str, ...]
    latency_ms: float
    created_at: datetime
    has_mask: bool
    has_dicom_seg: bool
    review: str | None
    reviewer_id: str | None
    reviewed_at: datetime | None

    @property
    def refused(self) -> bool:
        """Whether the image was outside the model's intended use (no mask)."""
        return self.intended_use == "refused"


def _record(row: Segmentation, patient_id: str) -> SegmentationRecord:
    spacing = tuple(row.spacing_mm) if row.spacing_mm else None
    return SegmentationRecord(
        id=row.id, study_id=row.study_id, patient_id=patient_id, model_name=row.model_name,
        model_version=row.model_version, artifact_sha256=row.artifact_sha256,
        input_sha256=row.input_sha256, labels=tuple(row.labels), areas_px=dict(row.areas_px),
        areas_mm2=dict(row.areas_mm2),
        spacing_mm=(float(spacing[0]), float(spacing[1])) if spacing else None,
        intended_use=row.intended_use, intended_use_reasons=tuple(row.intended_use_reasons),
        latency_ms=row.latency_ms, created_at=row.created_at,
        has_mask=row.mask_png_ct is not None, has_dicom_seg=row.dicom_seg_ct is not None,
        review=row.review, reviewer_id=row.reviewer_id, reviewed_at=row.reviewed_at,
    )  # fmt: skip


def _load(ctx: StoreContext, segmentation_id: str) -> Segmentation:
    row = ctx.session.get(Segmentation, segmentation_id)
    if row is None:
        raise RecordNotFoundError(f"no segmentation with id {segmentation_id}; check the id")
    return row


def _study(ctx: StoreContext, study_id: str) -> Study:
    row = ctx.session.get(Study, study_id)
    if row is None:
        raise RecordNotFoundError(f"no study with id {study_id}")
    return row


def segmentation_patient_id(ctx: StoreContext, segmentation_id: str) -> str:
    """The id of the patient a segmentation belongs to (no PHI, not audited).

    Raises:
        RecordNotFoundError: no segmentation has this id.
    """
    return _study(ctx, _load(ctx, segmentation_id).study_id).patient_id


def _seal(ctx: StoreContext, data: bytes | None, column: str, row_id: str) -> str | None:
    if data is None:
        return None
    text = base64.b64encode(data).decode("ascii")
    return ctx.keyring.encrypt_field(text, table=_TABLE, column=column, row_id=row_id)


def _open(ctx: StoreContext, token: str | None, column: str, row_id: str) -> bytes | None:
    if token is None:
        return None
    text = ctx.keyring.decrypt_field(token, table=_TABLE, column=column, row_id=row_id)
    return base64.b64decode(text)


def insert_segmentation(
    ctx: StoreContext, study_id: str, draft: SegmentationDraft, *, break_glass: bool
) -> SegmentationRecord:
    """Store a segmentation of a study, made by the actor, its pictures encrypted (audited
    as `segmentation.create`).

    Raises:
        RecordNotFoundError: no study has this id.
    """
    study = _study(ctx, study_id)
    row_id = new_id()
    row = Segmentation(
        id=row_id, study_id=study_id, model_name=draft.model_name,
        model_version=draft.model_version, artifact_sha256=draft.artifact_sha256,
        input_sha256=draft.input_sha256, labels=list(draft.labels),
        areas_px=dict(draft.areas_px), areas_mm2=dict(draft.areas_mm2),
        spacing_mm=list(draft.spacing_mm) if draft.spacing_mm else None,
        intended_use=draft.intended_use, intended_use_reasons=list(draft.intended_use_reasons),
        latency_ms=draft.latency_ms, user_id=ctx.actor.user_id, created_at=utcnow(),
        mask_png_ct=_seal(ctx, draft.mask_png, "mask_png_ct", row_id),
        dicom_seg_ct=_seal(ctx, draft.dicom_seg, "dicom_seg_ct", row_id),
    )  # fmt: skip
    ctx.session.add(row)
    ctx.session.flush()
    details: dict[str, Any] = {"model": f"{draft.model_name}:{draft.model_version}",
                               "intended_use": draft.intended_use}  # fmt: skip
    ctx.audit("segmentation.create", "segmentation", resource_id=row_id,
              patient_id=study.patient_id, break_glass=break_glass, details=details)  # fmt: skip
    return _record(row, study.patient_id)


def read_segmentation(
    ctx: StoreContext, segmentation_id: str, *, break_glass: bool, what: str = "record"
) -> SegmentationRecord:
    """One segmentation (audited as `segmentation.view`, `what` saying which part).

    Raises:
        RecordNotFoundError: no segmentation has this id.
    """
    row = _load(ctx, segmentation_id)
    patient_id = _study(ctx, row.study_id).patient_id
    ctx.audit("segmentation.view", "segmentation", resource_id=row.id, patient_id=patient_id,
              break_glass=break_glass, details={"part": what})  # fmt: skip
    return _record(row, patient_id)


def read_segmentations(
    ctx: StoreContext, study_id: str, *, break_glass: bool
) -> list[SegmentationRecord]:
    """A study's segmentations, newest first (one `segmentation.view` entry for the list).

    Raises:
        RecordNotFoundError: no study has this id.
    """
    study = _study(ctx, study_id)
    rows = ctx.session.execute(
        select(Segmentation)
        .where(Segmentation.study_id == study_id)
        .order_by(Segmentation.created_at.desc())
    ).scalars()
    records = [_record(r, study.patient_id) for r in rows]
    ctx.audit("segmentation.view", "study", resource_id=study_id, patient_id=study.patient_id,
              break_glass=break_glass, details={"part": "list"})  # fmt: skip
    return records


def read_patient_segmentations(
    ctx: StoreContext, patient_id: str, *, break_glass: bool
) -> list[SegmentationRecord]:
    """Every segmentation of a patient's studies, newest first (one `segmentation.view`
    entry for the list)."""
    rows = ctx.session.execute(
        select(Segmentation)
        .join(Study, Study.id == Segmentation.study_id)
        .where(Study.patient_id == patient_id)
        .order_by(Segmentation.created_at.desc())
    ).scalars()
    records = [_record(r, patient_id) for r in rows]
    ctx.audit("segmentation.view", "patient", resource_id=patient_id, patient_id=patient_id,
              break_glass=break_glass, details={"part": "list"})  # fmt: skip
    return records


def read_mask_png(ctx: StoreContext, segmentation_id: str) -> bytes | None:
    """The decrypted mask PNG (None for a refused image); the caller audited the read.

    Raises:
        RecordNotFoundError: no segmentation has this id.
        DecryptionError: the stored value was altered or moved.
    """
    row = _load(ctx, segmentation_id)
    return _open(ctx, row.mask_png_ct, "mask_png_ct", row.id)


def read_dicom_seg(ctx: StoreContext, segmentation_id: str) -> bytes | None:
    """The decrypted DICOM SEG (None for a PNG/JPEG input or a refused image).

    Raises:
        RecordNotFoundError: no segmentation has this id.
        DecryptionError: the stored value was altered or moved.
    """
    row = _load(ctx, segmentation_id)
    return _open(ctx, row.dicom_seg_ct, "dicom_seg_ct", row.id)


def review_segmentation(
    ctx: StoreContext, segmentation_id: str, review: str, *, break_glass: bool
) -> SegmentationRecord:
    """Record the actor's review ("agree" or "disagree") of a segmentation, replacing an
    earlier one (audited as `segmentation.review` with the earlier verdict).

    Raises:
        RecordNotFoundError: no segmentation has this id.
        DataError: the review is not "agree" or "disagree", or the image was refused.
    """
    if review not in REVIEWS:
        raise DataError(f"review must be one of {', '.join(REVIEWS)}")
    row = _load(ctx, segmentation_id)
    if row.intended_use == "refused":
        raise DataError("this image was outside the model's intended use: there is no mask "
                        "to review")  # fmt: skip
    patient_id = _study(ctx, row.study_id).patient_id
    earlier = row.review
    row.review, row.reviewer_id, row.reviewed_at = review, ctx.actor.user_id, utcnow()
    ctx.session.flush()
    ctx.audit("segmentation.review", "segmentation", resource_id=row.id, patient_id=patient_id,
              break_glass=break_glass,
              details={"review": review, "earlier": earlier or ""})  # fmt: skip
    return _record(row, patient_id)
