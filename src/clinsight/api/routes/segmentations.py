"""Segmentations of studies: run a segmentation model on a study (or on an upload, stored
as a study first), read the areas and verdict, download the mask PNG and (DICOM input)
the DICOM SEG, review the outline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from clinsight.api.deps import Clinician, State, StoreCtx
from clinsight.api.uploads import ConfirmMismatch, read_upload
from clinsight.data.source import ACCEPTED_FORMATS
from clinsight.services.segmentation import (
    review,
    segment_study,
    segment_upload,
    segmentation_dicom_seg,
    segmentation_mask,
    segmentation_view,
)
from clinsight.store.segmentations import SegmentationRecord

__all__ = ["router"]

router = APIRouter(tags=["segmentations"])
PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "Label mask (PNG, value = label index)."}
}
DICOM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/dicom": {}}, "description": "DICOM Segmentation object."}
}
NO_STORE = {"Cache-Control": "no-store"}


class SegmentationOut(BaseModel):
    """A stored segmentation: provenance, label areas, the intended-use verdict, review."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    study_id: str
    model_name: str
    model_version: str
    artifact_sha256: str
    input_sha256: str
    labels: list[str]
    areas_px: dict[str, int] = Field(description="Foreground label -> area in pixels.")
    areas_mm2: dict[str, float | None] = Field(
        description="Foreground label -> area in mm² (null without a pixel spacing)."
    )
    spacing_mm: list[float] | None
    intended_use: str = Field(description='"ok", "warned" or "refused" (no mask).')
    intended_use_reasons: list[str]
    latency_ms: float
    created_at: datetime
    has_mask: bool
    has_dicom_seg: bool
    review: str | None
    reviewer_id: str | None
    reviewed_at: datetime | None


class ReviewIn(BaseModel):
    """A clinician's review of a segmentation's outline."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["agree", "disagree"]


def _out(record: SegmentationRecord) -> SegmentationOut:
    return SegmentationOut.model_validate(
        {
            **record.__dict__,
            "labels": list(record.labels),
            "spacing_mm": list(record.spacing_mm) if record.spacing_mm else None,
            "intended_use_reasons": list(record.intended_use_reasons),
        }
    )


@router.post("/studies/{study_id}/segmentations", response_model=SegmentationOut, status_code=201)
def segment(
    study_id: str,
    user: Clinician,
    ctx: StoreCtx,
    state: State,
    model: Annotated[str, Query(max_length=64, description="Segmentation model name.")],
) -> SegmentationOut:
    """Segment a study with the production version of a segmentation model; stored with
    provenance and audited. An image outside the model's intended use is recorded as
    refused, with the reasons and no mask."""
    del user
    predictor = state.models.segmentation(model)
    return _out(segment_study(ctx, predictor, study_id, state.settings))


@router.post(
    "/patients/{patient_id}/segmentations", response_model=SegmentationOut, status_code=201
)
def upload_and_segment(
    patient_id: str,
    user: Clinician,
    ctx: StoreCtx,
    state: State,
    model: Annotated[str, Query(max_length=64, description="Segmentation model name.")],
    file: Annotated[UploadFile, File(description=f"The image: {ACCEPTED_FORMATS}.")],
    confirm_patient_mismatch: ConfirmMismatch = False,
) -> SegmentationOut:
    """Upload an image and segment it in one call: the image is stored as a study of the
    patient (checked against the chart, as any upload), then segmented with the production
    version of `model` and the result stored and audited. An unknown model is refused
    before anything is stored; an image outside the model's intended use is recorded as
    refused, with the reasons and no mask."""
    del user
    predictor = state.models.segmentation(model)
    content = read_upload(file, state.settings.upload_max_bytes)
    return _out(segment_upload(ctx, predictor, patient_id, content, state.settings,
                               confirm_patient_mismatch=confirm_patient_mismatch))  # fmt: skip


@router.get("/segmentations/{segmentation_id}", response_model=SegmentationOut)
def segmentation(segmentation_id: str, user: Clinician, ctx: StoreCtx) -> SegmentationOut:
    """A segmentation's labels, areas and intended-use verdict."""
    del user
    return _out(segmentation_view(ctx, segmentation_id))


@router.get("/segmentations/{segmentation_id}/mask.png", response_class=Response, responses=PNG)
def mask(segmentation_id: str, user: Clinician, ctx: StoreCtx) -> Response:
    """The label mask as PNG (404 for a refused image)."""
    del user
    return Response(segmentation_mask(ctx, segmentation_id), media_type="image/png",
                    headers=NO_STORE)  # fmt: skip


@router.get("/segmentations/{segmentation_id}/dicom-seg", response_class=Response, responses=DICOM)
def dicom_seg(segmentation_id: str, user: Clinician, ctx: StoreCtx) -> Response:
    """The DICOM SEG referencing the source image (404 for a PNG/JPEG input or a refused
    image)."""
    del user
    headers = {
        **NO_STORE,
        "Content-Disposition": f'attachment; filename="seg-{segmentation_id[:8]}.dcm"',
    }
    return Response(segmentation_dicom_seg(ctx, segmentation_id), media_type="application/dicom",
                    headers=headers)  # fmt: skip


@router.post(
    "/segmentations/{segmentation_id}/review", response_model=SegmentationOut, status_code=200
)
def review_route(
    segmentation_id: str, body: ReviewIn, user: Clinician, ctx: StoreCtx
) -> SegmentationOut:
    """Agree or disagree with the outline; a later review replaces the earlier one
    (both audited)."""
    del user
    return _out(review(ctx, segmentation_id, body.verdict))
