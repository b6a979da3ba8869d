"""Studies (uploaded images, encrypted on disk) and what came of them: predictions, feedback.

Like `store.repositories`, every function encrypts or decrypts with the key ring and
appends an audit entry; the access checks run first in `security.clinical` (or, for the
grouped uploads, through the `UploadPolicy` the recorder is given), and the caller commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from clinsight.errors import DataError, DecryptionError, PermissionDeniedError, RecordNotFoundError
from clinsight.evaluation.ood import OUTSIDE_INTENDED_USE, IntendedUse
from clinsight.evaluation.thresholds import INDETERMINATE
from clinsight.store import audit
from clinsight.store.actors import PatientAccess, Principal
from clinsight.store.audit import AuditEvent
from clinsight.store.crypto import KeyRing, read_encrypted_file, write_encrypted_file
from clinsight.store.db import flush_unique
from clinsight.store.repositories import StoreContext
from clinsight.store.tables import Feedback, Prediction, Study, Verdict, new_id, utcnow

__all__ = [
    "FeedbackRecord",
    "LabelLookup",
    "PredictionDraft",
    "PredictionFeedback",
    "PredictionRecord",
    "StagedUpload",
    "StoredUpload",
    "StudyRecord",
    "UploadPolicy",
    "discard_study_file",
    "insert_feedback",
    "insert_prediction",
    "insert_study",
    "prediction_patient_id",
    "prediction_record",
    "read_feedback",
    "read_prediction",
    "read_predictions",
    "read_studies",
    "read_study",
    "record_uploads",
    "stage_upload",
    "study_patient_id",
]

_INSERT_STUDY = insert(Study.__table__)  # type: ignore[arg-type]
_INSERT_PREDICTION = insert(Prediction.__table__)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StudyRecord:
    """An uploaded image's metadata (its content is read with `read_study`)."""

    id: str
    patient_id: str
    sha256: str
    size_bytes: int
    modality: str
    created_at: datetime
    # The fields where the DICOM header contradicted the chart, confirmed by the uploader.
    patient_mismatch: tuple[str, ...] = ()


@dataclass(frozen=True)
class PredictionDraft:
    """What a model said about a study and how, before it is stored."""

    model_name: str
    model_version: str
    artifact_sha256: str
    input_sha256: str
    preprocessing: dict[str, Any]
    label: str
    probability: float
    calibrated_confidence: float | None
    latency_ms: float
    warnings: tuple[str, ...] = ()
    # The finding of a binary model's decision band (a label or "indeterminate") and the band
    # behind it; None for argmax predictions (models registered without thresholds).
    decision: str | None = None
    decision_thresholds: dict[str, Any] | None = None
    # The input image's mean pixel value in [0, 1] (drift monitoring).
    input_mean_intensity: float | None = None
    # The intended-use gate's verdict ("ok", "warned", "refused"; None for rows made before
    # gates) and its reasons. A refused prediction is no finding: `label` and `probability`
    # keep what the model computed, for audit only.
    intended_use: str | None = None
    intended_use_reasons: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        """Whether the image was outside the model's intended use (no finding given)."""
        return self.intended_use == IntendedUse.REFUSED

    @property
    def predicted_label(self) -> str:
        """The finding: "outside intended use" when refused, else the band's decision, else
        the most probable label."""
        if self.refused:
            return OUTSIDE_INTENDED_USE
        return self.decision or self.label

    @property
    def positive_probability(self) -> float | None:
        """The calibrated probability of the model's positive class (`calibrated_confidence`);
        None when refused."""
        return None if self.refused else self.calibrated_confidence

    @property
    def label_probability(self) -> float | None:
        """The calibrated probability of `predicted_label`; None when indeterminate or refused.

        A decision other than `label` in a binary band is the other class: 1 - probability.
        """
        if self.decision == INDETERMINATE or self.refused:
            return None
        if self.decision is None or self.decision == self.label:
            return self.probability
        return 1.0 - self.probability

    def check(self) -> None:
        """Raises DataError when a probability or confidence lies outside [0, 1]."""
        for value in (self.probability, self.calibrated_confidence):
            if value is not None and not 0.0 <= value <= 1.0:
                raise DataError(f"probabilities must lie in [0, 1], got {value}")


@dataclass(frozen=True, kw_only=True)
class PredictionRecord(PredictionDraft):
    """A stored prediction with its full provenance: the draft, who made it, when, on what."""

    id: str
    study_id: str
    user_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class FeedbackRecord:
    """A version of a clinician's verdict on a prediction, with the decrypted reason."""

    id: str
    prediction_id: str
    user_id: str
    verdict: Verdict
    reason: str | None
    override_label: str | None
    created_at: datetime
    superseded_at: datetime | None = None

    @property
    def current(self) -> bool:
        """Whether this is the clinician's current verdict (not replaced by a later one)."""
        return self.superseded_at is None


@dataclass(frozen=True)
class PredictionFeedback:
    """The verdicts on one prediction: every version, oldest first."""

    versions: tuple[FeedbackRecord, ...] = ()

    @property
    def current(self) -> list[FeedbackRecord]:
        """Each clinician's current verdict, oldest first."""
        return [record for record in self.versions if record.current]

    def current_of(self, user_id: str | None) -> FeedbackRecord | None:
        """The current verdict of one clinician, if they gave one."""
        return next((r for r in self.current if r.user_id == user_id), None)

    def history_of(self, user_id: str | None) -> list[FeedbackRecord]:
        """The verdicts of one clinician that later ones replaced, newest first."""
        return [r for r in reversed(self.versions) if r.user_id == user_id and not r.current]

    @staticmethod
    def by_prediction(records: Sequence[FeedbackRecord]) -> dict[str, PredictionFeedback]:
        """Feedback versions (oldest first) grouped by their prediction's id."""
        grouped: dict[str, list[FeedbackRecord]] = {}
        for record in records:
            grouped.setdefault(record.prediction_id, []).append(record)
        return {key: PredictionFeedback(tuple(found)) for key, found in grouped.items()}


LabelLookup = Callable[[str, str], Sequence[str]]
"""The labels of a model, given its name and version (as a prediction records them)."""


def _study_record(row: Study) -> StudyRecord:
    return StudyRecord(
        row.id, row.patient_id, row.sha256, row.size_bytes, row.modality, row.created_at,
        tuple(row.patient_mismatch or ()),
    )  # fmt: skip


@dataclass(frozen=True)
class StagedUpload:
    """A diagnosed upload whose encrypted file is on disk (fsynced), not yet recorded."""

    actor: Principal
    patient_id: str
    study_id: str
    file: Path
    blob_key: str
    sha256: str
    size_bytes: int
    modality: str
    draft: PredictionDraft
    patient_mismatch: tuple[str, ...] = ()

    def discard(self) -> None:
        """Remove the file of an upload that will not be recorded."""
        self.file.unlink(missing_ok=True)


StoredUpload = tuple[StudyRecord, PredictionRecord]


@dataclass(frozen=True)
class UploadPolicy:
    """The access policy `record_uploads` applies inside its transaction, given from above
    (`security.access.UPLOAD_POLICY`): the store records decisions, it does not make them."""

    access: Callable[[Session, Principal, str], PatientAccess | None]
    denial: Callable[[Principal, str, str], tuple[AuditEvent, PermissionDeniedError]]


def _blob_key(study_id: str) -> str:
    return f"{study_id[:2]}/{study_id}.enc"


def _write_blob(keyring: KeyRing, files_dir: Path, content: bytes) -> tuple[str, str]:
    """Encrypt and fsync a new study's file; its id and blob key."""
    study_id = new_id()
    blob_key = _blob_key(study_id)
    write_encrypted_file(keyring, files_dir / blob_key, content, file_id=study_id, new=True)
    return study_id, blob_key


def stage_upload(
    keyring: KeyRing,
    files_dir: Path,
    actor: Principal,
    patient_id: str,
    content: bytes,
    *,
    modality: str,
    draft: PredictionDraft,
    patient_mismatch: tuple[str, ...] = (),
) -> StagedUpload:
    """Write an uploaded image's encrypted file before its rows are recorded (no lock held).
    `patient_mismatch` names the header fields the uploader confirmed despite the chart.

    Raises:
        DataError: a probability or confidence outside [0, 1] (nothing is written).
    """
    draft.check()
    study_id, blob_key = _write_blob(keyring, files_dir, content)
    sha256 = hashlib.sha256(content).hexdigest()
    return StagedUpload(
        actor, patient_id, study_id, files_dir / blob_key, blob_key, sha256, len(content),
        modality, draft, patient_mismatch,
    )  # fmt: skip


def _study_row(
    study_id: str, patient_id: str, blob_key: str, content: tuple[str, int], modality: str,
    actor: Principal, mismatch: tuple[str, ...] = (),
) -> dict[str, Any]:  # fmt: skip
    sha256, size_bytes = content
    return {"id": study_id, "patient_id": patient_id, "blob_key": blob_key, "sha256": sha256,
            "size_bytes": size_bytes, "modality": modality, "created_by": actor.user_id,
            "created_at": utcnow(), "patient_mismatch": list(mismatch) or None}  # fmt: skip


def _study_events(row: dict[str, Any], glass: bool) -> list[AuditEvent]:
    """The study's creation and, if the uploader confirmed a patient mismatch, that (the
    field names only: the values are PHI)."""
    events = [AuditEvent(
        "study.create", "study", actor_id=row["created_by"], resource_id=row["id"],
        patient_id=row["patient_id"],
        details={"modality": row["modality"], "bytes": row["size_bytes"]}, break_glass=glass,
    )]  # fmt: skip
    if row["patient_mismatch"]:
        events.append(AuditEvent(
            "study.patient_mismatch_confirmed", "study", actor_id=row["created_by"],
            resource_id=row["id"], patient_id=row["patient_id"],
            details={"fields": ",".join(row["patient_mismatch"])}, break_glass=glass,
        ))  # fmt: skip
    return events


def _prediction_row(study_id: str, draft: PredictionDraft, actor: Principal) -> dict[str, Any]:
    fields = {name: getattr(draft, name) for name in PredictionDraft.__dataclass_fields__}
    return {**fields, "id": new_id(), "study_id": study_id, "user_id": actor.user_id,
            "created_at": utcnow()}  # fmt: skip


def _prediction_event(row: dict[str, Any], patient_id: str, glass: bool) -> AuditEvent:
    return AuditEvent(
        "prediction.create",
        "prediction",
        actor_id=row["user_id"],
        resource_id=row["id"],
        patient_id=patient_id,
        details={"model": row["model_name"], "version": row["model_version"]},
        break_glass=glass,
    )


def _study_from(row: dict[str, Any]) -> StudyRecord:
    fields = {name: row[name] for name in StudyRecord.__dataclass_fields__}
    return StudyRecord(**{**fields, "patient_mismatch": tuple(row["patient_mismatch"] or ())})


def _prediction_from(row: dict[str, Any]) -> PredictionRecord:
    return PredictionRecord(**{name: row[name] for name in PredictionRecord.__dataclass_fields__})


def insert_study(
    ctx: StoreContext,
    patient_id: str,
    content: bytes,
    *,
    modality: str,
    break_glass: bool,
    patient_mismatch: tuple[str, ...] = (),
) -> StudyRecord:
    """Store an uploaded image encrypted on disk and record it for the patient (the caller
    commits, and calls `discard_study_file` if that fails); a confirmed `patient_mismatch`
    is recorded with it and audited.

    If the rows cannot be written, the file is removed again.
    """
    study_id, blob_key = _write_blob(ctx.keyring, ctx.files_dir, content)
    digest = (hashlib.sha256(content).hexdigest(), len(content))
    row = _study_row(study_id, patient_id, blob_key, digest, modality, ctx.actor,
                     patient_mismatch)  # fmt: skip
    try:
        # Core statements: the unit of work would cost more than the rest of the store's
        # part of a prediction request.
        ctx.session.execute(_INSERT_STUDY, row)
        audit.append_many(ctx.session, _study_events(row, break_glass))
    except BaseException:
        (ctx.files_dir / blob_key).unlink(missing_ok=True)
        raise
    return _study_from(row)


def discard_study_file(ctx: StoreContext, study_id: str) -> None:
    """Remove the file of a study whose rows were not committed."""
    (ctx.files_dir / _blob_key(study_id)).unlink(missing_ok=True)


def record_uploads(
    session: Session, uploads: Sequence[StagedUpload], *, policy: UploadPolicy
) -> list[StoredUpload | PermissionDeniedError]:
    """Record staged uploads, each a study with its prediction, in the caller's transaction
    (the caller commits): one multi-row insert per table and one audit append for all.

    Each upload's actor is checked against its patient under `policy`, inside the transaction; a
    refused one gets a denial entry and its error in its place in the result (the caller
    discards its file).
    """
    studies: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    events: list[AuditEvent] = []
    results: list[StoredUpload | PermissionDeniedError] = []
    checked: dict[tuple[Principal, str], PatientAccess | None] = {}  # one query per pair
    for upload in uploads:
        pair = (upload.actor, upload.patient_id)
        if pair not in checked:
            checked[pair] = policy.access(session, upload.actor, upload.patient_id)
        access = checked[pair]
        if access is None:
            event, error = policy.denial(upload.actor, upload.patient_id, "prediction.create")
            events.append(event)
            results.append(error)
            continue
        glass = access is PatientAccess.BREAK_GLASS
        digest = (upload.sha256, upload.size_bytes)
        study = _study_row(upload.study_id, upload.patient_id, upload.blob_key, digest,
                           upload.modality, upload.actor, upload.patient_mismatch)  # fmt: skip
        prediction = _prediction_row(upload.study_id, upload.draft, upload.actor)
        studies.append(study)
        predictions.append(prediction)
        events += [
            *_study_events(study, glass),
            _prediction_event(prediction, upload.patient_id, glass),
        ]
        results.append((_study_from(study), _prediction_from(prediction)))
    if studies:
        session.execute(_INSERT_STUDY, studies)
        session.execute(_INSERT_PREDICTION, predictions)
    audit.append_many(session, events)
    return results


def _load_study(ctx: StoreContext, study_id: str) -> Study:
    row = ctx.session.get(Study, study_id)
    if row is None:
        raise RecordNotFoundError(f"no study with id {study_id}")
    return row


def _load_prediction(ctx: StoreContext, prediction_id: str) -> Prediction:
    row = ctx.session.get(Prediction, prediction_id)
    if row is None:
        raise RecordNotFoundError(f"no prediction with id {prediction_id}")
    return row


def study_patient_id(ctx: StoreContext, study_id: str) -> str:
    """The id of the patient a study belongs to (no PHI, not audited: the check comes next).

    Raises:
        RecordNotFoundError: no study has this id.
    """
    return _load_study(ctx, study_id).patient_id


def prediction_patient_id(ctx: StoreContext, prediction_id: str) -> str:
    """The id of the patient a prediction was made for (no PHI, not audited).

    Raises:
        RecordNotFoundError: no prediction has this id.
    """
    return study_patient_id(ctx, _load_prediction(ctx, prediction_id).study_id)


def read_study(ctx: StoreContext, study_id: str, *, break_glass: bool) -> tuple[StudyRecord, bytes]:
    """A study's metadata and decrypted content, checked against its sha256.

    Raises:
        RecordNotFoundError: no study has this id.
        DecryptionError: the file is missing or does not match its record.
    """
    row, glass = _load_study(ctx, study_id), break_glass
    content = read_encrypted_file(ctx.keyring, ctx.files_dir / row.blob_key, file_id=row.id)
    if hashlib.sha256(content).hexdigest() != row.sha256:
        raise DecryptionError(f"study {study_id} content does not match its recorded sha256")
    ctx.audit(
        "study.read", "study", resource_id=row.id, patient_id=row.patient_id, break_glass=glass
    )
    return _study_record(row), content


def read_studies(ctx: StoreContext, patient_id: str, *, break_glass: bool) -> list[StudyRecord]:
    """A patient's studies, newest first."""
    rows = ctx.session.execute(
        select(Study).where(Study.patient_id == patient_id).order_by(Study.created_at.desc())
    ).scalars()
    records = [_study_record(row) for row in rows]
    ctx.audit(
        "study.list",
        "patient",
        resource_id=patient_id,
        patient_id=patient_id,
        break_glass=break_glass,
    )
    return records


def prediction_record(row: Prediction) -> PredictionRecord:
    """A stored prediction row as a record (warnings as a tuple, as in its draft)."""
    fields = {name: getattr(row, name) for name in PredictionRecord.__dataclass_fields__}
    reasons = tuple(row.intended_use_reasons or ())
    return PredictionRecord(
        **{**fields, "warnings": tuple(row.warnings or ()), "intended_use_reasons": reasons}
    )


def _insert_prediction(
    ctx: StoreContext, study_id: str, patient_id: str, draft: PredictionDraft, glass: bool
) -> PredictionRecord:
    row = _prediction_row(study_id, draft, ctx.actor)
    ctx.session.execute(_INSERT_PREDICTION, row)
    audit.append_many(ctx.session, [_prediction_event(row, patient_id, glass)])
    return _prediction_from(row)


def insert_prediction(
    ctx: StoreContext, study_id: str, draft: PredictionDraft, *, break_glass: bool
) -> PredictionRecord:
    """Store a prediction on a study with its provenance, made by the actor.

    Raises:
        RecordNotFoundError: no study has this id.
        DataError: a probability or confidence outside [0, 1].
    """
    row = _load_study(ctx, study_id)
    draft.check()
    return _insert_prediction(ctx, study_id, row.patient_id, draft, break_glass)


def read_prediction(
    ctx: StoreContext, prediction_id: str, *, break_glass: bool
) -> PredictionRecord:
    """One prediction with its provenance (audited as a read).

    Raises:
        RecordNotFoundError: no prediction has this id.
    """
    row = _load_prediction(ctx, prediction_id)
    patient_id = study_patient_id(ctx, row.study_id)
    ctx.audit(
        "prediction.read",
        "prediction",
        resource_id=row.id,
        patient_id=patient_id,
        break_glass=break_glass,
    )
    return prediction_record(row)


def read_predictions(
    ctx: StoreContext, study_id: str, *, break_glass: bool
) -> list[PredictionRecord]:
    """A study's predictions, newest first.

    Raises:
        RecordNotFoundError: no study has this id.
    """
    row, glass = _load_study(ctx, study_id), break_glass
    rows = ctx.session.execute(
        select(Prediction)
        .where(Prediction.study_id == study_id)
        .order_by(Prediction.created_at.desc())
    ).scalars()
    records = [prediction_record(p) for p in rows]
    ctx.audit(
        "prediction.list",
        "study",
        resource_id=study_id,
        patient_id=row.patient_id,
        break_glass=glass,
    )
    return records


def _check_feedback(
    prediction: Prediction,
    verdict: Verdict,
    reason: str | None,
    override_label: str | None,
    labels: LabelLookup,
) -> None:
    if verdict is Verdict.OVERRIDE and (not override_label or reason is None):
        raise DataError("an override needs the corrected label and a reason")
    if verdict is not Verdict.OVERRIDE and override_label is not None:
        raise DataError("only an override carries a label; use verdict 'override'")
    if override_label is None:
        return
    known = labels(prediction.model_name, prediction.model_version)
    if override_label not in known:
        choices = ", ".join(repr(label) for label in known)
        raise DataError(
            f"{override_label!r} is not a label of {prediction.model_name} "
            f"v{prediction.model_version}; choose one of: {choices}"
        )


def _feedback_record(row: Feedback, reason: str | None) -> FeedbackRecord:
    return FeedbackRecord(
        row.id, row.prediction_id, row.user_id, Verdict(row.verdict), reason,
        row.override_label, row.created_at, row.superseded_at,
    )  # fmt: skip


def insert_feedback(
    ctx: StoreContext,
    prediction_id: str,
    verdict: Verdict,
    *,
    labels: LabelLookup,
    reason: str | None = None,
    override_label: str | None = None,
    break_glass: bool,
) -> FeedbackRecord:
    """Store the actor's verdict on a prediction as their current one; an earlier verdict of
    theirs is superseded (kept as history) and the change is audited as an update. An
    override needs a reason (kept encrypted) and one of the model's labels, which `labels`
    gives for the prediction's model name and version.

    Raises:
        RecordNotFoundError: no prediction has this id.
        DataError: an override without label or reason, a label on a non-override, or a
            label the model does not have (nothing is stored).
    """
    prediction, glass = _load_prediction(ctx, prediction_id), break_glass
    patient_id = study_patient_id(ctx, prediction.study_id)
    reason = reason.strip() if reason and reason.strip() else None
    _check_feedback(prediction, verdict, reason, override_label, labels)
    previous = ctx.session.execute(
        select(Feedback)
        .where(
            Feedback.prediction_id == prediction_id,
            Feedback.user_id == ctx.actor.user_id,
            Feedback.superseded_at.is_(None),
        )
        .with_for_update()
    ).scalar_one_or_none()
    now = utcnow()
    if previous is not None:
        previous.superseded_at = now
        ctx.session.flush()  # the current-verdict index admits the new row only after this
    row = Feedback(
        id=new_id(),
        prediction_id=prediction_id,
        user_id=ctx.actor.user_id,
        verdict=str(verdict),
        override_label=override_label,
        created_at=now,
    )
    if reason is not None:
        row.reason_ct = ctx.keyring.encrypt_field(
            reason, table="feedback", column="reason_ct", row_id=row.id
        )
    ctx.session.add(row)
    flush_unique(
        ctx.session,
        "another verdict on this prediction was saved by you at the same moment; "
        "reload the result and submit again",
    )
    details: dict[str, Any] = {"verdict": str(verdict)}
    if previous is not None:
        details |= {"previous_id": previous.id, "previous_verdict": previous.verdict}
    ctx.audit(
        "feedback.update" if previous is not None else "feedback.create",
        "feedback",
        resource_id=row.id,
        patient_id=patient_id,
        details=details,
        break_glass=glass,
    )
    return _feedback_record(row, reason)


def read_feedback(
    ctx: StoreContext, patient_id: str, prediction_ids: Sequence[str], *, break_glass: bool
) -> list[FeedbackRecord]:
    """Every version of every clinician's verdict on the patient's predictions among
    `prediction_ids`, oldest first, reasons decrypted; one audit entry for the read.

    Raises:
        DecryptionError: a stored reason was altered or moved.
    """
    rows = ctx.session.execute(
        select(Feedback)
        .join(Prediction, Prediction.id == Feedback.prediction_id)
        .join(Study, Study.id == Prediction.study_id)
        .where(Study.patient_id == patient_id, Feedback.prediction_id.in_(list(prediction_ids)))
        .order_by(Feedback.created_at, Feedback.id)
    ).scalars()
    records = [
        _feedback_record(
            row,
            None
            if row.reason_ct is None
            else ctx.keyring.decrypt_field(
                row.reason_ct, table="feedback", column="reason_ct", row_id=row.id
            ),
        )
        for row in rows
    ]
    ctx.audit(
        "feedback.list",
        "patient",
        resource_id=patient_id,
        patient_id=patient_id,
        details={"predictions": len(prediction_ids), "versions": len(records)},
        break_glass=break_glass,
    )
    return records
