"""Patients: create, search, read with timeline, MRN lookup, care team, break-glass."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from clinsight.api.deps import Admin, Clinician, State, StoreCtx
from clinsight.api.schemas import (
    BreakGlassIn,
    BreakGlassOut,
    CareTeamIn,
    FeedbackOut,
    PatientIn,
    PatientLookupOut,
    PatientOut,
    PredictionOut,
    StudyOut,
    TimelineOut,
    TimelineStudyOut,
)
from clinsight.services.patients import (
    add_care_team_member,
    find_patient,
    open_break_glass,
    patient_timeline,
    register_patient,
    search_patients,
)

__all__ = ["router"]

router = APIRouter(prefix="/patients", tags=["patients"])
Limit = Annotated[int, Query(ge=1, le=100, description="Page size (at most 100).")]


@router.post("", response_model=PatientOut, status_code=201)
def create(body: PatientIn, user: Clinician, ctx: StoreCtx) -> PatientOut:
    """Register a patient; the creating clinician joins the care team."""
    del user
    record = register_patient(
        ctx, mrn=body.mrn, name=body.name, birth_date=body.birth_date, sex=body.sex
    )
    return PatientOut.model_validate(record)


@router.get("", response_model=list[PatientOut])
def search(
    user: Clinician,
    ctx: StoreCtx,
    response: Response,
    q: Annotated[str, Query(max_length=200, description="Part of the MRN or the name.")] = "",
    limit: Limit = 50,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000_000, description="How many matches to skip.")
    ] = 0,
) -> list[PatientOut]:
    """One page of the caller's patients (care team and break-glass) whose MRN or name
    contains `q`, in natural order of name; the `X-Total-Count` header gives all matches."""
    del user
    found = search_patients(ctx, q, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(found.total)
    return [PatientOut.model_validate(r) for r in found.records]


@router.get("/lookup", response_model=PatientLookupOut)
def lookup(
    user: Clinician, ctx: StoreCtx, mrn: Annotated[str, Query(min_length=1, max_length=64)]
) -> PatientLookupOut:
    """The id of the patient with this MRN (no PHI), e.g. to request break-glass access."""
    del user
    found = find_patient(ctx, mrn)
    return PatientLookupOut(id=found)


@router.get("/{patient_id}", response_model=TimelineOut)
def read(patient_id: str, user: Clinician, ctx: StoreCtx) -> TimelineOut:
    """A patient with the timeline of studies and predictions (care team or break-glass)."""
    del user
    timeline = patient_timeline(ctx, patient_id)
    return TimelineOut(
        patient=PatientOut.model_validate(timeline.patient),
        studies=[
            TimelineStudyOut(
                study=StudyOut.model_validate(entry.study),
                predictions=[PredictionOut.model_validate(p) for p in entry.predictions],
                feedback=[
                    FeedbackOut.model_validate(record)
                    for found in entry.feedback.values()
                    for record in found.current
                ],
            )
            for entry in timeline.studies
        ],
    )


@router.post("/{patient_id}/care-team", status_code=204)
def add_to_care_team(patient_id: str, body: CareTeamIn, user: Admin, ctx: StoreCtx) -> None:
    """Add a clinician to the patient's care team (admins)."""
    del user
    add_care_team_member(ctx, body.user_id, patient_id)


@router.post("/{patient_id}/break-glass", response_model=BreakGlassOut, status_code=201)
def break_glass(
    patient_id: str, body: BreakGlassIn, user: Clinician, ctx: StoreCtx, state: State
) -> BreakGlassOut:
    """Emergency access outside the care team: a reason is required, it expires, it is flagged."""
    del user
    grant = open_break_glass(ctx, state.settings, patient_id, body.reason, minutes=body.minutes)
    return BreakGlassOut.model_validate(grant)
