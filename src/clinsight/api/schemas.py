"""Request and response bodies of the REST API (pydantic), documented in the OpenAPI schema."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clinsight.registry.ner import NerModelVersion
from clinsight.registry.versions import ModelKind
from clinsight.store.roles import Role
from clinsight.store.tables import Verdict

__all__ = [
    "AuditEntryOut",
    "AuditVerificationOut",
    "BreakGlassIn",
    "BreakGlassOut",
    "CareTeamIn",
    "DecisionThresholdsOut",
    "F1Out",
    "FeedbackIn",
    "FeedbackOut",
    "LoginIn",
    "ModelOut",
    "PatientIn",
    "PatientLookupOut",
    "PatientOut",
    "PredictionDetailOut",
    "PredictionOut",
    "RefreshIn",
    "RollbackIn",
    "StageChangeIn",
    "StudyOut",
    "TimelineOut",
    "TimelineStudyOut",
    "TokenOut",
    "UserIn",
    "UserOut",
    "ner_test_f1",
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LoginIn(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(BaseModel):
    """A refresh token from a login or an earlier refresh (usable once)."""

    refresh_token: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    """An access token (bearer, short-lived) and its rotating refresh token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the scheme name)
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


class UserIn(BaseModel):
    """A new account."""

    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=12, max_length=256)
    role: Role


class UserOut(_Out):
    """An account (never its password hash)."""

    id: str
    username: str
    role: Role
    active: bool


class PatientIn(BaseModel):
    """A new patient's identifiers and demographics (stored encrypted)."""

    mrn: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    birth_date: date
    sex: Literal["female", "male", "other", "unknown"]


class PatientOut(_Out):
    """A patient's decrypted record."""

    id: str
    mrn: str
    name: str
    birth_date: date
    sex: str
    created_at: datetime


class PatientLookupOut(BaseModel):
    """The id of the patient with an MRN, or null."""

    id: str | None


class CareTeamIn(BaseModel):
    """A clinician to add to the patient's care team."""

    user_id: str = Field(min_length=1, max_length=36)


class BreakGlassIn(BaseModel):
    """Why emergency access to a patient outside the care team is needed."""

    reason: str = Field(min_length=10, max_length=1000)
    minutes: int | None = Field(
        default=None, ge=1, description="How long (default and most: the server's setting)."
    )


class BreakGlassOut(_Out):
    """A break-glass grant and when it expires."""

    id: str
    patient_id: str
    expires_at: datetime


class StudyOut(_Out):
    """An uploaded image's metadata."""

    id: str
    patient_id: str
    sha256: str
    size_bytes: int
    modality: str
    created_at: datetime
    patient_mismatch: list[str] = Field(
        default_factory=list,
        description="Fields (name, patient_id, birth_date, sex) where the DICOM header "
        "contradicted the chart and the uploader confirmed the study belongs to this patient.",
    )


class DecisionThresholdsOut(BaseModel):
    """A binary model's decision band on the calibrated positive-class probability p, chosen
    on the validation split: positive when p >= `high`, negative when p < min(`low`, `high`),
    indeterminate in between."""

    low: float
    high: float
    sensitivity: float = Field(description="Share of validation positives with p >= low.")
    specificity: float = Field(description="Share of validation negatives with p < high.")
    sensitivity_target: float
    specificity_target: float
    indeterminate_fraction: float = Field(description="Share of validation cases in the band.")
    n_positive: int
    n_negative: int
    split: str


class PredictionOut(_Out):
    """A prediction with its full provenance.

    The finding is `predicted_label` with `label_probability`; `label` and `probability` are
    the most probable class, which the finding may not be for a binary model with a band.
    An image outside the model's intended use (`intended_use` "refused") gets no finding:
    `predicted_label` is "outside intended use" and every probability and `label` are null.
    """

    id: str
    study_id: str
    model_name: str
    model_version: str
    artifact_sha256: str
    input_sha256: str
    preprocessing: dict[str, Any]
    predicted_label: str = Field(
        description='The finding: a label, "indeterminate" inside the model\'s band, or '
        '"outside intended use" when the image was refused (no finding).'
    )
    label_probability: float | None = Field(
        description="Calibrated probability of `predicted_label`; null when indeterminate "
        "or refused."
    )
    positive_probability: float | None = Field(
        description="Calibrated probability of the model's positive class; null when refused."
    )
    decision_thresholds: DecisionThresholdsOut | None = Field(
        description="The band behind the finding; null for a model registered without one "
        "(the finding is then the most probable class)."
    )
    label: str | None = Field(description="The most probable class; null when refused.")
    probability: float | None = Field(
        description="Calibrated probability of `label`; null when refused."
    )
    calibrated_confidence: float | None = Field(
        deprecated=True,
        description="Deprecated: the calibrated probability of the model's positive class "
        "(not of the finding); use `positive_probability`, which has the same value.",
    )
    user_id: str | None
    latency_ms: float
    created_at: datetime
    warnings: list[str] = Field(
        default_factory=list, description="Reasons to doubt that the model fits this image."
    )
    intended_use: Literal["ok", "warned", "refused"] | None = Field(
        default=None,
        description='The intended-use check: "ok", "warned" (a finding, with reasons to doubt '
        'it, or a model without a fitted gate), "refused" (no finding); null for predictions '
        "made before the check existed.",
    )
    intended_use_reasons: list[str] = Field(
        default_factory=list, description="Why the image was warned about or refused, in words."
    )

    @model_validator(mode="after")
    def _no_finding_when_refused(self) -> PredictionOut:
        if self.intended_use == "refused":
            self.label = self.probability = self.calibrated_confidence = None
        return self


class FeedbackIn(BaseModel):
    """A clinician's verdict; an override needs the corrected label and a reason."""

    verdict: Verdict
    reason: str | None = Field(default=None, max_length=2000)
    override_label: str | None = Field(default=None, min_length=1, max_length=128)


class FeedbackOut(_Out):
    """A version of a clinician's verdict; `superseded_at` is null while it is current."""

    id: str
    prediction_id: str
    user_id: str
    verdict: Verdict
    reason: str | None
    override_label: str | None
    created_at: datetime
    superseded_at: datetime | None = None


class HeatInLungsOut(BaseModel):
    """The share of a chest classifier's Grad-CAM map inside the lungs that the production
    lung model outlines, computed on request (never stored)."""

    model_name: str = Field(description="The lung segmentation model.")
    model_version: int
    intended_use: str = Field(description='The lung model\'s gate: "ok", "warned", "refused".')
    reasons: list[str]
    share_inside: float | None = Field(description="Heat-map mass inside the lungs / total.")
    mask_area_share: float | None = Field(description="The lungs' share of the square read.")
    mostly_outside: bool = Field(description="Flag: under half of the map lies in the lungs.")
    text: str


class PredictionDetailOut(PredictionOut):
    """A prediction with each clinician's current verdict on it (history: `/feedback`), and
    for a chest classifier with a production lung model the heat map's share inside the
    lungs (null otherwise)."""

    feedback: list[FeedbackOut]
    heatmap_in_lungs: HeatInLungsOut | None = None


class TimelineStudyOut(BaseModel):
    """A study with its predictions and each clinician's current verdict on them."""

    study: StudyOut
    predictions: list[PredictionOut]
    feedback: list[FeedbackOut] = Field(default_factory=list)


class TimelineOut(BaseModel):
    """A patient with every study and prediction, newest first."""

    patient: PatientOut
    studies: list[TimelineStudyOut]


class F1Out(BaseModel):
    """A strict entity-level F1 with its 95 % bootstrap interval over sentences."""

    value: float
    low: float
    high: float


def ner_test_f1(model: NerModelVersion) -> dict[str, F1Out]:
    """The test-split F1 (with interval) of each label of an NER version, then ``ALL``."""
    test: dict[str, Any] = model.metrics.get("test", {})
    ordered = sorted(test.items(), key=lambda item: item[0] == "ALL")
    return {label: F1Out(**scores["f1"]) for label, scores in ordered if "f1" in scores}


class ModelOut(BaseModel):
    """A registered model version of any kind, with the fields of its kind: `task` (image
    and risk), `thresholds` (risk), `backend`, `corpus` and `test_f1` per label (NER)."""

    kind: ModelKind
    name: str
    version: int
    stage: str
    created: str
    labels: list[str]
    artifact_sha256: str
    metrics: dict[str, Any]
    task: str | None = None
    thresholds: dict[str, float] | None = None
    backend: str | None = None
    corpus: str | None = None
    test_f1: dict[str, F1Out] | None = None
    card_markdown: str | None = None


class StageChangeIn(BaseModel):
    """Why a version is promoted or archived (kept in the model's stage history)."""

    note: str = Field(default="", max_length=500)


class RollbackIn(BaseModel):
    """The version to put back into production (default: the previous one)."""

    version: int | None = Field(default=None, ge=1)
    note: str = Field(default="rollback", max_length=500)


class AuditEntryOut(_Out):
    """One audit-log entry (no PHI: ids and codes only)."""

    seq: int
    at: datetime
    actor_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    outcome: str
    details: dict[str, str | int | float | bool | None]
    break_glass: bool
    prev_hash: str
    hash: str


class AuditVerificationOut(_Out):
    """The result of recomputing the whole audit chain."""

    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None
