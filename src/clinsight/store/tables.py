"""The relational schema (SQLAlchemy 2 typed declarative); created only by the migrations.

PHI lives only in `*_ct` columns (AES-256-GCM ciphertext, see `store.crypto`), marked
with `info={"encrypted": True}` so key rotation can find every one. Primary keys are
UUID strings made by the application, so a ciphertext can be bound to its row before
the row is inserted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from clinsight.errors import StoreError

__all__ = [
    "Assessment",
    "AuditHead",
    "AuditRow",
    "AuthSession",
    "Base",
    "BreakGlassGrant",
    "CareTeam",
    "Feedback",
    "Note",
    "Patient",
    "Prediction",
    "RecommendationFeedback",
    "RefreshToken",
    "Segmentation",
    "SignedReport",
    "Study",
    "UTCDateTime",
    "User",
    "Verdict",
    "encrypted_columns",
    "new_id",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ID = String(36)
SHA256 = String(64)
ENCRYPTED = {"encrypted": True}


class Verdict(StrEnum):
    """A clinician's judgement of a prediction."""

    AGREE = "agree"
    DISAGREE = "disagree"
    OVERRIDE = "override"


def new_id() -> str:
    """A fresh random UUID string for a primary key."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; SQLite gets a naive UTC value.

        Raises:
            StoreError: the datetime is naive, so its instant is ambiguous.
        """
        if value is None:
            return None
        if value.tzinfo is None:
            raise StoreError("naive datetime given to the store; pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what the database returns."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention the migrations rely on."""

    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """An account: a role, an Argon2id hash and the login throttling state."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'clinician', 'auditor')", name="role"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    failure_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Patient(Base):
    """A patient: identifiers and demographics encrypted, the MRN findable by a keyed HMAC."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    mrn_index: Mapped[str] = mapped_column(SHA256, unique=True)
    mrn_ct: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    name_ct: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    birth_date_ct: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    sex_ct: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    created_by: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CareTeam(Base):
    """A clinician assigned to a patient's care."""

    __tablename__ = "care_team"

    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(
        ID, ForeignKey("patients.id"), primary_key=True, index=True
    )
    assigned_by: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Study(Base):
    """An uploaded image, stored as an encrypted file named by `blob_key` (no PHI in it)."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id"), index=True)
    blob_key: Mapped[str] = mapped_column(String(255), unique=True)
    sha256: Mapped[str] = mapped_column(SHA256)
    size_bytes: Mapped[int] = mapped_column(Integer)
    modality: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The fields (e.g. ["name", "birth_date"]) where the DICOM header contradicted the chart
    # and the uploader confirmed the study belongs to this patient; null when none did.
    patient_mismatch: Mapped[list[str] | None] = mapped_column(JSON)


class Note(Base):
    """A clinical note about a patient; the text is encrypted."""

    __tablename__ = "notes"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id"), index=True)
    text_ct: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    chars: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Prediction(Base):
    """A model output with full provenance: which model, on which input, for whom, how fast."""

    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ID, ForeignKey("studies.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    artifact_sha256: Mapped[str] = mapped_column(SHA256)
    input_sha256: Mapped[str] = mapped_column(SHA256)
    preprocessing: Mapped[dict[str, Any]] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(128))
    probability: Mapped[float] = mapped_column(Float)
    calibrated_confidence: Mapped[float | None] = mapped_column(Float)
    user_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Reasons to doubt that the model fits the image (e.g. a DICOM of another body part).
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The finding of a binary model's decision band (a label or "indeterminate") and the band
    # (thresholds, validation sensitivity/specificity); null for argmax predictions.
    decision: Mapped[str | None] = mapped_column(String(128))
    decision_thresholds: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The mean of the input image's pixels in [0, 1], for drift monitoring; null for old rows.
    input_mean_intensity: Mapped[float | None] = mapped_column(Float)
    # The intended-use gate's verdict ("ok", "warned", "refused"; null for rows made before
    # gates) and its reasons in plain words; a refused row is no finding.
    intended_use: Mapped[str | None] = mapped_column(String(16))
    intended_use_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)


class Feedback(Base):
    """A version of a clinician's verdict on a prediction; the free-text reason is encrypted.

    Each clinician has at most one current verdict per prediction (`superseded_at` null);
    a new submission supersedes it, so earlier versions stay as the history.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("verdict IN ('agree', 'disagree', 'override')", name="verdict"),
        Index(
            "uq_feedback_current",
            "prediction_id",
            "user_id",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    prediction_id: Mapped[str] = mapped_column(ID, ForeignKey("predictions.id"), index=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(16))
    reason_ct: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    override_label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Assessment(Base):
    """A risk or survival assessment of a stored patient: the model, the inputs' sha256 and
    a summary of the result (probability, level or risks by horizon; no PHI)."""

    __tablename__ = "assessments"
    __table_args__ = (CheckConstraint("kind IN ('risk', 'survival', 'progression')", name="kind"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    input_sha256: Mapped[str] = mapped_column(SHA256)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    user_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignedReport(Base):
    """A finding's report as signed: the PDF's sha256, the reviewing clinician, their
    verdict at signing, and when (the PDF itself is not kept: it is made again on demand)."""

    __tablename__ = "signed_reports"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    prediction_id: Mapped[str] = mapped_column(ID, ForeignKey("predictions.id"), index=True)
    reviewer_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(SHA256)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecommendationFeedback(Base):
    """A clinician's accept or reject of a treatment suggestion for an OMOP person; the
    free-text reason is encrypted."""

    __tablename__ = "recommendation_feedback"
    __table_args__ = (CheckConstraint("decision IN ('accept', 'reject')", name="decision"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str | None] = mapped_column(ID, index=True)
    """The Clinsight patient it was decided on (None: through the API by OMOP person)."""
    drug: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    reason_ct: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    model: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditRow(Base):
    """One link of the append-only, hash-chained audit log (no PHI in `details`)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[str | None] = mapped_column(ID)
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(ID, index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    break_glass: Mapped[bool] = mapped_column(Boolean)
    prev_hash: Mapped[str] = mapped_column(SHA256)
    hash: Mapped[str] = mapped_column(SHA256)


class AuditHead(Base):
    """The single row holding the chain head; locking it serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(SHA256)


class BreakGlassGrant(Base):
    """Emergency access of a clinician to a patient outside their care team, with expiry."""

    __tablename__ = "break_glass_grants"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ID, ForeignKey("patients.id"))
    reason_ct: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuthSession(Base):
    """A login session (a refresh-token family) with idle and absolute limits."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """An opaque refresh token, stored as its sha256; used once, then replaced."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ID, ForeignKey("auth_sessions.id"), index=True)
    token_hash: Mapped[str] = mapped_column(SHA256, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def encrypted_columns() -> dict[str, list[str]]:
    """Every table name mapped to its ciphertext columns, for key rotation."""
    found: dict[str, list[str]] = {}
    for table in Base.metadata.sorted_tables:
        columns = [c.name for c in table.columns if c.info.get("encrypted")]
        if columns:
            found[table.name] = columns
    return found


class Segmentation(Base):
    """A segmentation model's mask of a study with provenance, areas and the intended-use
    verdict; the mask PNG and (DICOM input) the DICOM SEG are encrypted (base64 in the
    field), so key rotation rewrites them like any other ciphertext."""

    __tablename__ = "segmentations"
    __table_args__ = (CheckConstraint("review IN ('agree', 'disagree')", name="review"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ID, ForeignKey("studies.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    artifact_sha256: Mapped[str] = mapped_column(SHA256)
    input_sha256: Mapped[str] = mapped_column(SHA256)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    areas_px: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    areas_mm2: Mapped[dict[str, float | None]] = mapped_column(JSON, default=dict)
    spacing_mm: Mapped[list[float] | None] = mapped_column(JSON)
    intended_use: Mapped[str] = mapped_column(String(16))
    intended_use_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    mask_png_ct: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    dicom_seg_ct: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    latency_ms: Mapped[float] = mapped_column(Float)
    user_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    review: Mapped[str | None] = mapped_column(String(16))
    reviewer_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
