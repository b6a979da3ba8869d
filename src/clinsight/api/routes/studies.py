"""Studies (image uploads), predictions on them, Grad-CAM heat maps and clinician feedback."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from clinsight.api.deps import Clinician, State, StoreCtx
from clinsight.api.schemas import (
    FeedbackIn,
    FeedbackOut,
    HeatInLungsOut,
    PredictionDetailOut,
    PredictionOut,
    StudyOut,
)
from clinsight.api.uploads import ConfirmMismatch, read_upload
from clinsight.data.source import ACCEPTED_FORMATS
from clinsight.services.predictions import (
    give_feedback,
    heat_in_lungs,
    heatmap_png,
    patient_studies,
    predict_study,
    prediction_detail,
    prediction_feedback,
    prediction_observation,
    stage_diagnosis,
    study_predictions,
    upload_study,
)
from clinsight.store.studies import StoredUpload

__all__ = ["router"]

router = APIRouter(tags=["studies"])
PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "Grad-CAM overlay (PNG)."}
}


@router.post("/patients/{patient_id}/studies", response_model=StudyOut, status_code=201)
def upload(
    patient_id: str,
    user: Clinician,
    ctx: StoreCtx,
    state: State,
    file: Annotated[UploadFile, File(description=f"The image: {ACCEPTED_FORMATS}.")],
    confirm_patient_mismatch: ConfirmMismatch = False,
) -> StudyOut:
    """Upload an image for a patient; it is decoded within the limits, checked against the
    chart (DICOM), then stored encrypted."""
    del user
    content = read_upload(file, state.settings.upload_max_bytes)
    study = upload_study(
        ctx, patient_id, content, state.settings, confirm_patient_mismatch=confirm_patient_mismatch
    )  # committed
    return StudyOut.model_validate(study)


@router.post("/patients/{patient_id}/predictions", response_model=PredictionOut, status_code=201)
async def upload_and_predict(
    patient_id: str,
    user: Clinician,
    ctx: StoreCtx,
    state: State,
    file: Annotated[UploadFile, File(description=f"The image: {ACCEPTED_FORMATS}.")],
    model: Annotated[
        str | None, Query(max_length=64, description="Model name (default: the service's).")
    ] = None,
    confirm_patient_mismatch: ConfirmMismatch = False,
) -> PredictionOut:
    """Upload an image and diagnose it in one call: the study and its prediction are stored
    together (encrypted, with provenance, audited) or not at all. A patient outside the
    model's intended population gets a warning."""
    del user

    def stage_and_submit() -> Future[StoredUpload]:
        content = read_upload(file, state.settings.upload_max_bytes)
        predictor = state.predictor(model)
        staged = stage_diagnosis(ctx, state.uploads, predictor, patient_id, content,
                                 state.settings,
                                 confirm_patient_mismatch=confirm_patient_mismatch)  # fmt: skip
        # Submitted in the same thread as the file was written: a request cancelled
        # meanwhile (shutdown, a client gone) still has its file recorded or removed.
        return state.uploads.record(staged)

    # Decoding and inference run in a worker thread; the rows wait for the store's next
    # group commit without holding one.
    committed = await run_in_threadpool(stage_and_submit)
    _, record = await asyncio.wrap_future(committed)
    state.metrics.predictions.labels(record.model_name, record.model_version).inc()
    return PredictionOut.model_validate(record)


@router.get("/patients/{patient_id}/studies", response_model=list[StudyOut])
def studies(patient_id: str, user: Clinician, ctx: StoreCtx) -> list[StudyOut]:
    """A patient's studies, newest first."""
    del user
    records = patient_studies(ctx, patient_id)
    return [StudyOut.model_validate(r) for r in records]


@router.post("/studies/{study_id}/predictions", response_model=PredictionOut, status_code=201)
def predict(
    study_id: str,
    user: Clinician,
    ctx: StoreCtx,
    state: State,
    model: Annotated[
        str | None, Query(max_length=64, description="Model name (default: the service's).")
    ] = None,
) -> PredictionOut:
    """Diagnose a study with the production model; stored with provenance and audited."""
    del user
    predictor = state.predictor(model)
    record = predict_study(ctx, predictor, study_id, state.settings)
    state.metrics.predictions.labels(record.model_name, record.model_version).inc()
    return PredictionOut.model_validate(record)


@router.get("/studies/{study_id}/predictions", response_model=list[PredictionOut])
def predictions(study_id: str, user: Clinician, ctx: StoreCtx) -> list[PredictionOut]:
    """A study's predictions, newest first."""
    del user
    records = study_predictions(ctx, study_id)
    return [PredictionOut.model_validate(r) for r in records]


@router.get("/predictions/{prediction_id}/heatmap", response_class=Response, responses=PNG)
def heatmap(prediction_id: str, user: Clinician, ctx: StoreCtx, state: State) -> Response:
    """The Grad-CAM overlay of a prediction, computed on request with the model that made it."""
    del user
    png = heatmap_png(ctx, state.predictor, prediction_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/predictions/{prediction_id}", response_model=PredictionDetailOut)
def prediction(
    prediction_id: str, user: Clinician, ctx: StoreCtx, state: State
) -> PredictionDetailOut:
    """A prediction with its provenance and each clinician's current verdict on it; for a
    chest classifier while a lung segmentation model is in production, the share of its
    heat map inside the lungs, flagged when the map lies mostly outside them."""
    del user
    detail = prediction_detail(ctx, prediction_id)
    share = heat_in_lungs(ctx, state.predictor, state.lungs, detail.prediction)
    return PredictionDetailOut.model_validate(
        {
            **PredictionOut.model_validate(detail.prediction).model_dump(),
            "feedback": [FeedbackOut.model_validate(r) for r in detail.feedback.current],
            "heatmap_in_lungs": None if share is None else HeatInLungsOut(**share.to_dict()),
        }
    )


@router.get("/predictions/{prediction_id}/fhir")
def prediction_fhir(
    prediction_id: str, user: Clinician, ctx: StoreCtx, state: State
) -> dict[str, Any]:
    """The prediction as a FHIR R4 Observation: the finding as its value, or, for an image
    outside the model's intended use, no value, a data-absent reason and the reasons; a
    chest classifier's heat-map share inside the lungs as a note (see the prediction)."""
    del user
    return prediction_observation(ctx, prediction_id, predictors=state.predictor, lungs=state.lungs)


@router.get("/predictions/{prediction_id}/feedback", response_model=list[FeedbackOut])
def feedback_history(prediction_id: str, user: Clinician, ctx: StoreCtx) -> list[FeedbackOut]:
    """Every version of every clinician's verdict on a prediction, oldest first; a replaced
    version has `superseded_at` set."""
    del user
    found = prediction_feedback(ctx, prediction_id)
    return [FeedbackOut.model_validate(r) for r in found.versions]


@router.post("/predictions/{prediction_id}/feedback", response_model=FeedbackOut, status_code=201)
def feedback(
    prediction_id: str, body: FeedbackIn, user: Clinician, ctx: StoreCtx, state: State
) -> FeedbackOut:
    """Agree, disagree, or override with one of the model's labels and a reason. A second
    verdict of the same clinician becomes their current one (a new version; the earlier
    one is kept as history)."""
    del user
    record = give_feedback(
        ctx, state.settings.resolved_registry_dir, prediction_id, body.verdict,
        reason=body.reason, override_label=body.override_label,
    )  # fmt: skip
    return FeedbackOut.model_validate(record)
