"""Use case: the patient record — the header every patient-scoped page shows, one timeline
of everything known about the patient, newest first, and the record as a FHIR Bundle.

The timeline is assembled from `TIMELINE_SOURCES`, one function per kind of record
(studies with findings and review status, segmentations with their areas and review
status, notes with their problem list, risk, survival and progression assessments, and the
treatment suggestions a clinician accepted or rejected). A new capability adds its entries
by appending a source: a function of the
store context and the patient id returning `TimelineEntry` items. Each source reads under
the access policy and commits its reads; the note NLP runs with no transaction open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from clinsight.interop.fhir_patient import patient_bundle
from clinsight.security import records
from clinsight.security.clinical import list_notes
from clinsight.security.segmentations import list_patient_segmentations
from clinsight.security.workspace import (
    care_team_names,
    list_assessments,
    list_recommendation_decisions,
)
from clinsight.services.break_glass import emergency_access
from clinsight.services.notes import note_problems
from clinsight.services.patients import studies_with_findings
from clinsight.store.accounts import GrantRecord, usernames
from clinsight.store.assessments import AssessmentRecord
from clinsight.store.repositories import PatientRecord, StoreContext
from clinsight.store.segmentations import SegmentationRecord
from clinsight.store.studies import FeedbackRecord, PredictionRecord

__all__ = [
    "TIMELINE_SOURCES",
    "PatientHeader",
    "PatientRecordView",
    "TimelineEntry",
    "TimelineItem",
    "TimelineSource",
    "age_in_years",
    "assessment_entries",
    "finding_text",
    "note_entries",
    "patient_fhir_bundle",
    "patient_header",
    "patient_record",
    "review_text",
    "segmentation_entries",
    "segmentation_review_text",
    "study_entries",
    "treatment_entries",
]

MAX_NOTES_READ = 20  # notes whose problem list the timeline shows (the newest)


@dataclass(frozen=True)
class PatientHeader:
    """What every patient-scoped page shows on top: who the patient is, their care team,
    and the live break-glass grant that opens the record (None under the care team)."""

    patient: PatientRecord
    age: int
    care_team: tuple[str, ...]
    emergency: GrantRecord | None = None


@dataclass(frozen=True)
class TimelineItem:
    """A line under a timeline entry: a finding with its review status, a problem."""

    text: str
    href: str | None = None
    status: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One thing known about the patient, at a time, linking to its page; `warning` is
    shown beside it (e.g. a DICOM header that contradicted the chart)."""

    at: datetime
    kind: str
    title: str
    href: str | None
    items: tuple[TimelineItem, ...] = ()
    warning: str | None = None
    study_id: str | None = None
    """The study an entry of kind ``study`` is about (for actions on it, e.g. segment)."""


TimelineSource = Callable[[StoreContext, str], list[TimelineEntry]]


@dataclass(frozen=True)
class PatientRecordView:
    """The header and the timeline, newest first."""

    header: PatientHeader
    entries: list[TimelineEntry]


def age_in_years(born: date, today: date) -> int:
    """Completed years between `born` and `today`."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def patient_header(ctx: StoreContext, patient_id: str) -> PatientHeader:
    """The header of the patient's pages (the reads audited and committed).

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        RecordNotFoundError: no such patient.
    """
    patient = records.get_patient(ctx, patient_id)
    team = tuple(care_team_names(ctx, patient_id))
    emergency = emergency_access(ctx, patient_id)
    ctx.session.commit()
    return PatientHeader(patient, age_in_years(patient.birth_date, date.today()), team, emergency)


def finding_text(record: PredictionRecord) -> str:
    """A finding in a few words, as the worklist and the timeline show it."""
    if record.refused:
        return "No finding (outside intended use)"
    if record.label_probability is None:
        share = (record.positive_probability or 0.0) * 100
        return f"Indeterminate (P(positive) {share:.1f}%)"
    return f"{record.predicted_label} ({record.label_probability * 100:.1f}%)"


def review_text(current: Sequence[FeedbackRecord], names: dict[str, str], me: str) -> str:
    """The review status of a finding: "not reviewed", or each clinician's current verdict
    ("you: agreed; bob: overridden → benign")."""
    if not current:
        return "not reviewed"
    verdicts = []
    for record in current:
        what = {"agree": "agreed", "disagree": "disagreed"}.get(str(record.verdict))
        what = what or f"overridden → {record.override_label}"
        who = "you" if record.user_id == me else names.get(record.user_id, "a clinician")
        verdicts.append(f"{who}: {what}")
    return "; ".join(verdicts)


def study_entries(ctx: StoreContext, patient_id: str) -> list[TimelineEntry]:
    """Each study with its findings and their review status."""
    studies = studies_with_findings(ctx, patient_id)
    reviewers = {r.user_id for s in studies for f in s.feedback.values() for r in f.current}
    names = usernames(ctx.session, reviewers)
    ctx.session.commit()
    entries = []
    for entry in studies:
        study = entry.study
        items = tuple(
            TimelineItem(
                finding_text(p),
                f"/predictions/{p.id}",
                review_text(
                    entry.feedback[p.id].current if p.id in entry.feedback else [],
                    names,
                    ctx.actor.user_id,
                ),
                f"{p.model_name} v{p.model_version}",
            )
            for p in entry.predictions
        ) or (TimelineItem("No prediction yet."),)
        warning = None
        if study.patient_mismatch:
            fields = ", ".join(f.replace("_", " ") for f in study.patient_mismatch)
            warning = (f"DICOM header differs from the chart ({fields}); filed here as "
                       "confirmed by the uploader")  # fmt: skip
        first = entry.predictions[0].id if entry.predictions else None
        entries.append(TimelineEntry(
            study.created_at, "study", f"{study.modality} study",
            f"/predictions/{first}" if first else None, items, warning, study.id,
        ))  # fmt: skip
    return entries


def segmentation_review_text(record: SegmentationRecord, names: dict[str, str], me: str) -> str:
    """A segmentation's review status: "not reviewed", "nothing to review" (a refused
    image), or the latest reviewer's verdict ("you: agreed", "bob: disagreed")."""
    if record.refused:
        return "nothing to review"
    if record.review is None:
        return "not reviewed"
    who = "you" if record.reviewer_id == me else names.get(record.reviewer_id or "", "a clinician")
    return f"{who}: {record.review}d"


def _areas_text(record: SegmentationRecord) -> str:
    if record.refused:
        return "No outline (outside intended use)"
    parts = []
    for label, pixels in record.areas_px.items():
        mm2 = record.areas_mm2.get(label)
        parts.append(f"{label} {pixels:,} px" + ("" if mm2 is None else f" ({mm2:,.0f} mm²)"))
    return ", ".join(parts) or "No labels"


def segmentation_entries(ctx: StoreContext, patient_id: str) -> list[TimelineEntry]:
    """Each segmentation with its areas, model and review status."""
    found = list_patient_segmentations(ctx, patient_id)
    names = usernames(ctx.session, {r.reviewer_id for r in found if r.reviewer_id})
    ctx.session.commit()
    entries = []
    for r in found:
        href = f"/segmentations/{r.id}"
        status = segmentation_review_text(r, names, ctx.actor.user_id)
        title = f"Segmentation ({r.model_name} v{r.model_version})"
        item = TimelineItem(_areas_text(r), href, status)
        entries.append(TimelineEntry(r.created_at, "segmentation", title, href, (item,)))
    return entries


def note_entries(ctx: StoreContext, patient_id: str) -> list[TimelineEntry]:
    """Each note with its author and, for the newest `MAX_NOTES_READ`, its problem list."""
    notes = list_notes(ctx, patient_id)
    names = usernames(ctx.session, {n.author_id for n in notes if n.author_id})
    ctx.session.commit()
    entries = []
    for index, note in enumerate(notes):
        author = names.get(note.author_id or "", "unknown author")
        problems: tuple[TimelineItem, ...] = ()
        if index < MAX_NOTES_READ:
            problems = tuple(
                TimelineItem(f"{p.text} ({p.assertion}"
                             + (f", ICD-10-CM {p.icd10.code})" if p.icd10 else ")"))
                for p in note_problems(note.text)
            ) or (TimelineItem("No problems found."),)  # fmt: skip
        entries.append(TimelineEntry(note.created_at, "note", f"Note by {author}",
                                     f"/notes/{note.id}", problems))  # fmt: skip
    return entries


def _assessment_title(record: AssessmentRecord) -> str:
    summary = record.summary
    if record.kind == "survival":
        risks = ", ".join(f"{r['risk'] * 100:.0f}% by {r['years']:g} y"
                          for r in summary.get("risks", []))  # fmt: skip
        return f"Survival ({summary.get('event', 'event')}): {risks}"
    if record.kind == "progression":
        return (f"Deterioration risk: {summary['probability'] * 100:.1f}% "
                f"({summary.get('level', '')})")  # fmt: skip
    title = (f"Risk of {summary.get('outcome', 'the outcome')}: "
             f"{summary['probability'] * 100:.1f}% ({summary.get('level', '')})")  # fmt: skip
    if summary.get("outside_population"):
        title += " · outside the validated population"
    return title


def assessment_entries(ctx: StoreContext, patient_id: str) -> list[TimelineEntry]:
    """Each stored risk, survival and progression assessment with its model (progression
    has no page of its own: its entry links nowhere)."""
    found = list_assessments(ctx, patient_id)
    ctx.session.commit()
    return [
        TimelineEntry(
            a.created_at,
            a.kind,
            _assessment_title(a),
            None if a.kind == "progression" else f"/patients/{patient_id}/{a.kind}",
            (TimelineItem(f"model {a.model_name} v{a.model_version}"),),
        )
        for a in found
    ]


def treatment_entries(ctx: StoreContext, patient_id: str) -> list[TimelineEntry]:
    """Each treatment suggestion a clinician accepted or rejected on the patient's record."""
    found = list_recommendation_decisions(ctx, patient_id)
    ctx.session.commit()
    return [
        TimelineEntry(
            d.created_at, "treatment",
            f"Treatment suggestion {'accepted' if d.decision == 'accept' else 'rejected'}: "
            f"{d.drug}",
            f"/patients/{patient_id}/treatments",
            tuple(TimelineItem(text) for text in (
                f"OMOP person {d.person_id}",
                *([f"model {d.model} v{d.model_version}"] if d.model else []),
            )),
        )
        for d in found
    ]  # fmt: skip


TIMELINE_SOURCES: tuple[TimelineSource, ...] = (
    study_entries, segmentation_entries, note_entries, assessment_entries, treatment_entries,
)  # fmt: skip
"""Where the timeline comes from; a new capability appends its source here."""


def patient_record(
    ctx: StoreContext, patient_id: str, sources: Sequence[TimelineSource] = TIMELINE_SOURCES
) -> PatientRecordView:
    """The header and one timeline from every source, newest first (reads audited and
    committed).

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        RecordNotFoundError: no such patient.
    """
    header = patient_header(ctx, patient_id)
    entries = [entry for source in sources for entry in source(ctx, patient_id)]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return PatientRecordView(header, entries)


def patient_fhir_bundle(ctx: StoreContext, patient_id: str) -> dict[str, object]:
    """The patient's record as a FHIR R4B `collection` Bundle: Patient, image Observations,
    note DocumentReferences and RiskAssessments (reads audited and committed).

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        RecordNotFoundError: no such patient.
        DataError: a resource does not validate.
    """
    patient = records.get_patient(ctx, patient_id)
    predictions = [p for s in studies_with_findings(ctx, patient_id) for p in s.predictions]
    notes = list_notes(ctx, patient_id)
    assessments = list_assessments(ctx, patient_id)
    ctx.audit("patient.export", "patient", resource_id=patient_id, patient_id=patient_id,
              details={"format": "fhir-bundle"})  # fmt: skip
    ctx.session.commit()
    return patient_bundle(patient, predictions, notes, assessments)
