"""Use cases of the clinical service: accept an uploaded image, diagnose a study, explain it.

Routes and pages call these; these call `security.clinical` (access checks, then the
store's encryption and audit) and the imaging side, and commit. Feedback is one current
verdict per clinician and prediction, its earlier versions kept as history. Decoding and inference
never run inside a database transaction: on SQLite every transaction holds the store's
write lock.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from clinsight.config import Settings
from clinsight.data.dicom_patient import DicomPatient, compare_with_chart, read_dicom_patient
from clinsight.data.images import read_image
from clinsight.data.source import SourceImage, sniff_image_format
from clinsight.errors import ModelNotFoundError, PatientMismatchError, RecordNotFoundError
from clinsight.imaging.explain import save_overlay
from clinsight.inference.predictors import ImagePredictor
from clinsight.interop.fhir_images import image_observation, image_observation_json
from clinsight.registry.image import ModelVersion, get_model
from clinsight.security import records
from clinsight.security.access import require_patient_access
from clinsight.security.clinical import (
    add_study,
    get_prediction,
    list_feedback,
    list_predictions,
    list_studies,
    read_study,
    record_feedback,
    record_prediction,
)
from clinsight.services.diagnosis import (
    Diagnosis,
    centre_square,
    diagnose_image,
    explain_prediction,
)
from clinsight.services.explanation_lungs import (
    LungModels,
    LungShare,
    image_lung_share,
    lung_segmenter,
)
from clinsight.store.held_uploads import drop_held_upload, hold_upload, read_held_upload
from clinsight.store.repositories import StoreContext
from clinsight.store.studies import (
    FeedbackRecord,
    LabelLookup,
    PredictionDraft,
    PredictionFeedback,
    PredictionRecord,
    StagedUpload,
    StoredUpload,
    StudyRecord,
    discard_study_file,
    prediction_patient_id,
    prediction_record,
    stage_upload,
)
from clinsight.store.tables import Prediction, Verdict
from clinsight.store.uploads import UploadRecorder

__all__ = [
    "ChartCheck",
    "ExplainedPrediction",
    "PredictionDetail",
    "PredictionView",
    "PredictorLookup",
    "cancel_held_upload",
    "check_against_chart",
    "check_image",
    "confirm_held_upload",
    "diagnose_upload",
    "explained_prediction",
    "give_feedback",
    "heat_in_lungs",
    "heatmap_png",
    "hold_mismatched_upload",
    "model_labels",
    "patient_studies",
    "predict_study",
    "prediction_detail",
    "prediction_feedback",
    "prediction_observation",
    "stage_diagnosis",
    "study_predictions",
    "upload_study",
    "warns_only",
]

PredictorLookup = Callable[[str, int], ImagePredictor]


@dataclass(frozen=True)
class PredictionDetail:
    """A stored prediction with the verdicts on it."""

    prediction: PredictionRecord
    feedback: PredictionFeedback


@dataclass(frozen=True)
class PredictionView:
    """A stored prediction with the study it was made on."""

    prediction: PredictionRecord
    study: StudyRecord


def check_image(content: bytes, settings: Settings) -> SourceImage:
    """Decode an upload within the size and pixel limits, before anything is stored.

    Raises:
        UnsupportedImageError: not PNG, JPEG or DICOM, too large, truncated or corrupt.
    """
    sniff_image_format(content[:132])
    return read_image(
        content, max_pixels=settings.upload_max_pixels, max_bytes=settings.upload_max_bytes
    )


def _modality(image: SourceImage) -> str:
    return (image.metadata.get("modality") or image.format.upper())[:16]


@dataclass(frozen=True)
class ChartCheck:
    """An upload against the chart: the mismatching fields the clinician confirmed, and the
    patient's birth date and the study date for the intended-population check."""

    patient_mismatch: tuple[str, ...] = ()
    birth_date: date | None = None
    study_date: date | None = None


def check_against_chart(
    ctx: StoreContext,
    patient_id: str,
    content: bytes,
    image: SourceImage,
    model: ModelVersion | None,
    *,
    confirm_patient_mismatch: bool,
) -> ChartCheck:
    """Compare a DICOM header's patient with the chart, and read the birth date when `model`
    has an intended population; the chart is read (audited, committed) only then.

    Raises:
        PatientMismatchError: the header contradicts the chart and the clinician has not
            confirmed it (nothing is stored).
        PermissionDeniedError: the actor may not open this patient.
    """
    is_dicom = image.format == "dicom"
    if not is_dicom and (model is None or model.intended_population is None):
        return ChartCheck()
    chart = records.get_patient(ctx, patient_id)
    ctx.session.commit()  # the read's audit entry; no lock held while the model runs
    header = read_dicom_patient(content) if is_dicom else DicomPatient()
    found = compare_with_chart(
        header, name=chart.name, mrn=chart.mrn, birth_date=chart.birth_date, sex=chart.sex
    )
    if found and not confirm_patient_mismatch:
        raise PatientMismatchError({m.field: m.message for m in found})
    return ChartCheck(tuple(m.field for m in found), chart.birth_date, header.study_date)


def upload_study(
    ctx: StoreContext,
    patient_id: str,
    content: bytes,
    settings: Settings,
    *,
    confirm_patient_mismatch: bool = False,
) -> StudyRecord:
    """Check an uploaded image and store it encrypted as a study of the patient; commits.

    The access check comes first, so a denied caller learns nothing about the file. A DICOM
    header naming another patient is refused unless `confirm_patient_mismatch`; a confirmed
    mismatch is recorded with the study and audited. If the rows cannot be committed, the
    file is removed again.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        UnsupportedImageError: the file is not a usable image (nothing is stored).
        PatientMismatchError: the header contradicts the chart, unconfirmed (nothing stored).
    """
    require_patient_access(ctx.session, ctx.actor, patient_id, "study.upload")
    ctx.session.commit()
    image = check_image(content, settings)
    check = check_against_chart(ctx, patient_id, content, image, None,
                                confirm_patient_mismatch=confirm_patient_mismatch)  # fmt: skip
    study = add_study(ctx, patient_id, content, modality=_modality(image),
                      patient_mismatch=check.patient_mismatch)  # fmt: skip
    try:
        ctx.session.commit()
    except BaseException:
        discard_study_file(ctx, study.id)
        raise
    return study


def _draft(predictor: ImagePredictor, diagnosis: Diagnosis) -> PredictionDraft:
    found, check = diagnosis.prediction, diagnosis.intended_use
    return PredictionDraft(
        model_name=found.model_name,
        model_version=str(found.model_version),
        artifact_sha256=found.artifact_sha256,
        input_sha256=found.input_sha256,
        preprocessing=predictor.model.preprocess.to_dict(),
        label=found.label,
        probability=found.probability,
        calibrated_confidence=found.positive_probability,
        latency_ms=found.latency_ms,
        warnings=diagnosis.warnings,
        decision=found.decision if found.thresholds else None,
        decision_thresholds=found.thresholds.to_dict() if found.thresholds else None,
        input_mean_intensity=diagnosis.mean_intensity,
        intended_use=str(check.status) if check else None,
        intended_use_reasons=check.reasons if check else (),
    )


def stage_diagnosis(
    ctx: StoreContext,
    uploads: UploadRecorder,
    predictor: ImagePredictor,
    patient_id: str,
    content: bytes,
    settings: Settings,
    *,
    confirm_patient_mismatch: bool = False,
) -> StagedUpload:
    """The work of a one-call diagnosis before anything is recorded: the access check, then
    decode once, check against the chart (`check_against_chart`), infer (with a warning for
    a patient outside the model's intended population), and write the encrypted file
    (`uploads.record` stores the rows, with any confirmed mismatch).

    Raises:
        PermissionDeniedError: the actor may not open this patient (checked first).
        UnsupportedImageError: the file is not a usable image (nothing is stored).
        PatientMismatchError: the header contradicts the chart, unconfirmed (nothing stored).
        ModelError: inference failed (nothing is stored).
    """
    actor = ctx.actor
    uploads.check_access(actor, patient_id)
    image = check_image(content, settings)
    check = check_against_chart(ctx, patient_id, content, image, predictor.model,
                                confirm_patient_mismatch=confirm_patient_mismatch)  # fmt: skip
    diagnosis = diagnose_image(
        predictor, image, birth_date=check.birth_date, study_date=check.study_date,
        warn_only=warns_only(predictor, settings),
    )  # fmt: skip
    return stage_upload(uploads.keyring, uploads.files_dir, actor, patient_id, content,
                        modality=_modality(image), draft=_draft(predictor, diagnosis),
                        patient_mismatch=check.patient_mismatch)  # fmt: skip


def warns_only(predictor: ImagePredictor, settings: Settings | None) -> bool:
    """Whether the model's intended-use gate only warns (`intended_use_warn_only`)."""
    return settings is not None and predictor.model.name in settings.intended_use_warn_only


def predict_study(
    ctx: StoreContext,
    predictor: ImagePredictor,
    study_id: str,
    settings: Settings | None = None,
) -> PredictionRecord:
    """Diagnose a stored study and record the prediction with its provenance; commits.

    Raises:
        RecordNotFoundError: no such study.
        PermissionDeniedError: the actor may not open its patient.
        UnsupportedImageError: the stored image cannot be decoded.
        ModelError: inference failed.
    """
    study, content = read_study(ctx, study_id)
    # The read (and its audit entry) is committed before inference, so the store is not
    # locked while the image is decoded and the model runs.
    ctx.session.commit()
    image = read_image(content)
    check = check_against_chart(
        ctx, study.patient_id, content, image, predictor.model, confirm_patient_mismatch=True
    )  # confirmed at the upload
    diagnosis = diagnose_image(
        predictor, image, birth_date=check.birth_date,
        study_date=check.study_date or study.created_at.date(),
        warn_only=warns_only(predictor, settings),
    )  # fmt: skip
    record = record_prediction(ctx, study_id, _draft(predictor, diagnosis))
    ctx.session.commit()
    return record


def _load(ctx: StoreContext, prediction_id: str) -> tuple[PredictionView, bytes]:
    row = ctx.session.get(Prediction, prediction_id)
    if row is None:
        raise RecordNotFoundError(f"no prediction with id {prediction_id}; check the id")
    study, content = read_study(ctx, row.study_id)
    return PredictionView(prediction_record(row), study), content


@dataclass(frozen=True)
class ExplainedPrediction:
    """A prediction with its pictures: the Grad-CAM `overlay` (the image alone when it was
    refused), the `plain` image the model read (the centred square) and the uploaded
    image's `source_size` (height, width); for a chest classifier with a production lung
    model, the map's share inside the lungs (`lungs`)."""

    view: PredictionView
    overlay: bytes
    plain: bytes | None
    source_size: tuple[int, int]
    lungs: LungShare | None = None

    @property
    def cropped(self) -> bool:
        """Whether the model read only the centred square of a non-square image."""
        return self.source_size[0] != self.source_size[1]


def explained_prediction(
    ctx: StoreContext,
    predictors: PredictorLookup,
    prediction_id: str,
    *,
    plain: bool = True,
    lungs: LungModels | None = None,
) -> ExplainedPrediction:
    """A prediction, its study, its Grad-CAM overlay and the plain image as PNG bytes,
    computed now with the model that made it; the study is read (decrypted, audited and
    committed) once. An image refused as outside the model's intended use has no finding to
    explain: its overlay is the image alone. With `plain` False (the API's heat map) the
    plain image is not rendered. With `lungs`, a chest classifier's map is checked against
    the production lung model (`services.explanation_lungs`).

    Raises:
        RecordNotFoundError: no such prediction.
        PermissionDeniedError: the actor may not open its patient.
        ModelNotFoundError: the model version that made it is no longer registered.
        ModelError: the explanation or the lung outline failed.
    """
    view, content = _load(ctx, prediction_id)
    ctx.session.commit()  # the read and its audit entry: no lock held during Grad-CAM
    record = view.prediction
    predictor = predictors(record.model_name, int(record.model_version))
    image = read_image(content)
    size = (int(image.pixels.shape[0]), int(image.pixels.shape[1]))
    with tempfile.TemporaryDirectory(prefix="clinsight-cam-") as folder:
        plain_png = None
        if plain or record.refused:
            square = centre_square(image.pixels)
            blank = np.zeros(square.shape[:2])
            plain_png = save_overlay(square, blank, Path(folder) / "image.png", 0.0).read_bytes()
        if record.refused:
            assert plain_png is not None
            return ExplainedPrediction(view, plain_png, plain_png if plain else None, size)
        label_index = predictor.model.labels.index(record.label)
        explained = explain_prediction(predictor, image, Path(folder) / "cam.png", label_index)
        overlay = explained.overlay.read_bytes()
    share = None if lungs is None else image_lung_share(
        lungs, predictor, image, heat=explained.heat)  # fmt: skip
    return ExplainedPrediction(view, overlay, plain_png, size, share)


def heat_in_lungs(
    ctx: StoreContext, predictors: PredictorLookup, lungs: LungModels, record: PredictionRecord
) -> LungShare | None:
    """The share of a prediction's heat map inside the lungs (see `explained_prediction`);
    None, without reading the image, for a refused image, a classifier that is not a chest
    model, a model version no longer registered, or no production lung model. `record` was
    read under the access policy by the caller; the image is read (audited) again here.

    Raises:
        PermissionDeniedError: the actor may not open its patient.
        ModelError: the explanation or the lung outline failed.
    """
    if record.refused:
        return None
    try:
        predictor = predictors(record.model_name, int(record.model_version))
    except ModelNotFoundError:
        return None
    if lung_segmenter(lungs, predictor.model) is None:
        return None
    return explained_prediction(ctx, predictors, record.id, plain=False, lungs=lungs).lungs


def heatmap_png(ctx: StoreContext, predictors: PredictorLookup, prediction_id: str) -> bytes:
    """The Grad-CAM overlay of a prediction as PNG bytes (see `explained_prediction`)."""
    return explained_prediction(ctx, predictors, prediction_id, plain=False).overlay


def diagnose_upload(
    ctx: StoreContext,
    uploads: UploadRecorder,
    predictor: ImagePredictor,
    patient_id: str,
    content: bytes,
    settings: Settings,
    *,
    confirm_patient_mismatch: bool = False,
) -> StoredUpload:
    """Diagnose an upload and record it with its prediction; waits for the commit.

    The request's own transaction is ended first: the rows are written by the store's
    group-commit writer, which on SQLite needs the write lock this session may hold.

    Raises:
        As `stage_diagnosis`; RuntimeError: the recorder was closed.
    """
    ctx.session.commit()
    staged = stage_diagnosis(ctx, uploads, predictor, patient_id, content, settings,
                             confirm_patient_mismatch=confirm_patient_mismatch)  # fmt: skip
    return uploads.record(staged).result()


def hold_mismatched_upload(ctx: StoreContext, patient_id: str, content: bytes) -> str:
    """Keep an upload refused for a patient mismatch, encrypted, while the clinician
    confirms or cancels it; the token naming it (`confirm_held_upload`).

    Raises:
        PermissionDeniedError: the actor may not open this patient.
    """
    require_patient_access(ctx.session, ctx.actor, patient_id, "study.upload")
    ctx.session.commit()
    return hold_upload(ctx.keyring, ctx.files_dir, ctx.actor, patient_id, content)


def confirm_held_upload(
    ctx: StoreContext,
    uploads: UploadRecorder,
    predictor: ImagePredictor,
    patient_id: str,
    token: str,
    settings: Settings,
) -> StoredUpload:
    """Diagnose and record a held upload, its patient mismatch confirmed by the clinician
    (recorded with the study and audited); the held file is then dropped.

    Raises:
        PermissionDeniedError: the actor may not open this patient (checked first).
        RecordNotFoundError: nothing is held under this token for the actor and patient.
        As `diagnose_upload`.
    """
    require_patient_access(ctx.session, ctx.actor, patient_id, "study.upload")
    ctx.session.commit()
    content = read_held_upload(ctx.keyring, ctx.files_dir, ctx.actor, patient_id, token)
    stored = diagnose_upload(ctx, uploads, predictor, patient_id, content, settings,
                             confirm_patient_mismatch=True)  # fmt: skip
    drop_held_upload(ctx.files_dir, token)
    return stored


def cancel_held_upload(ctx: StoreContext, patient_id: str, token: str) -> None:
    """Forget a held upload without storing it; committed.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        RecordNotFoundError: nothing is held under this token for the actor and patient.
    """
    require_patient_access(ctx.session, ctx.actor, patient_id, "study.upload")
    ctx.session.commit()
    read_held_upload(ctx.keyring, ctx.files_dir, ctx.actor, patient_id, token)
    drop_held_upload(ctx.files_dir, token)


def patient_studies(ctx: StoreContext, patient_id: str) -> list[StudyRecord]:
    """A patient's studies, newest first; the read's audit entry is committed.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
    """
    records = list_studies(ctx, patient_id)
    ctx.session.commit()
    return records


def study_predictions(ctx: StoreContext, study_id: str) -> list[PredictionRecord]:
    """A study's predictions, newest first; the read's audit entry is committed.

    Raises:
        RecordNotFoundError: no such study.
        PermissionDeniedError: the actor may not open its patient.
    """
    records = list_predictions(ctx, study_id)
    ctx.session.commit()
    return records


def model_labels(registry_dir: Path) -> LabelLookup:
    """The label lookup of the image models registered in `registry_dir`: a model
    version's labels, read from its registered record."""

    def labels(name: str, version: str) -> tuple[str, ...]:
        return get_model(registry_dir, name, int(version), verify=False).labels

    return labels


def give_feedback(
    ctx: StoreContext,
    registry_dir: Path,
    prediction_id: str,
    verdict: Verdict,
    *,
    reason: str | None = None,
    override_label: str | None = None,
) -> FeedbackRecord:
    """Record the clinician's verdict on a prediction as their current one; a verdict they
    gave before is kept as history and the change audited as an update. An override needs a
    reason and one of the labels of the model version (in `registry_dir`) that made the
    prediction. Committed.

    Raises:
        RecordNotFoundError: no such prediction.
        PermissionDeniedError: the actor may not open its patient.
        DataError: an override without label or reason, a label on a non-override, or a
            label the model does not have (nothing is stored).
        ModelNotFoundError: an override on a prediction whose model version is gone.
    """
    record = record_feedback(
        ctx, prediction_id, verdict, labels=model_labels(registry_dir), reason=reason,
        override_label=override_label,
    )  # fmt: skip
    ctx.session.commit()
    return record


def prediction_feedback(ctx: StoreContext, prediction_id: str) -> PredictionFeedback:
    """Every version of every clinician's verdict on a prediction, oldest first; the read's
    audit entry is committed.

    Raises:
        RecordNotFoundError: no such prediction.
        PermissionDeniedError: the actor may not open its patient.
    """
    patient_id = prediction_patient_id(ctx, prediction_id)
    records = list_feedback(ctx, patient_id, [prediction_id])
    ctx.session.commit()
    return PredictionFeedback(tuple(records))


def prediction_observation(
    ctx: StoreContext,
    prediction_id: str,
    *,
    predictors: PredictorLookup | None = None,
    lungs: LungModels | None = None,
) -> dict[str, Any]:
    """A prediction as a FHIR R4 `Observation` (JSON; no value for a refused image); the
    read's audit entry is committed. With `predictors` and `lungs`, a chest classifier's
    heat-map share inside the lungs is added as a note (`heat_in_lungs`).

    Raises:
        RecordNotFoundError: no such prediction.
        PermissionDeniedError: the actor may not open its patient.
        ModelError: the explanation or the lung outline failed.
    """
    record = get_prediction(ctx, prediction_id)
    patient_id = prediction_patient_id(ctx, prediction_id)
    ctx.session.commit()
    share = None
    if predictors is not None and lungs is not None:
        share = heat_in_lungs(ctx, predictors, lungs, record)
    notes = () if share is None else (f"Explanation check: {share.sentence()}",)
    return image_observation_json(image_observation(record, f"Patient/{patient_id}", notes))


def prediction_detail(ctx: StoreContext, prediction_id: str) -> PredictionDetail:
    """A prediction with its provenance and the verdicts on it; the reads' audit entries
    are committed.

    Raises:
        RecordNotFoundError: no such prediction.
        PermissionDeniedError: the actor may not open its patient.
    """
    record = get_prediction(ctx, prediction_id)
    patient_id = prediction_patient_id(ctx, prediction_id)
    found = list_feedback(ctx, patient_id, [prediction_id])
    ctx.session.commit()
    return PredictionDetail(record, PredictionFeedback(tuple(found)))
