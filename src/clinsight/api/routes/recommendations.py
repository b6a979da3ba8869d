"""Treatment recommendations over HTTP: the suggestions for one person of the configured
OMOP CDM database (clinicians, audited), as JSON or as a FHIR Bundle of draft
`MedicationRequest` proposals, and the clinician's accept / reject of a suggestion.

A person is named by their OMOP ``person_id`` (see `services.treatment_suggestions`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from clinsight.api.deps import Clinician, State, StoreCtx
from clinsight.data.omop import eunomia_url
from clinsight.inference.cache import model_cache
from clinsight.services.recommendation import interaction_table
from clinsight.services.treatment_suggestions import (
    decide_on_suggestion,
    person_decisions,
    suggest_for_omop_person,
)

__all__ = ["DecisionIn", "DecisionOut", "router"]

router = APIRouter(prefix="/recommendations", tags=["recommendations"])
PersonId = Annotated[int, Path(ge=0, le=2**62, description="OMOP person_id.")]


class DecisionIn(BaseModel):
    """A clinician's accept or reject of one suggestion."""

    drug: str = Field(max_length=128, description="The suggested drug, RxNorm|<ingredient>.")
    decision: Literal["accept", "reject"]
    reason: str | None = Field(default=None, max_length=2000, description="Why (free text).")
    model: str | None = Field(default=None, max_length=128, description="Model that suggested.")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Its version.")


class DecisionOut(BaseModel):
    """A stored decision."""

    id: str
    person_id: str
    drug: str
    decision: str
    reason: str | None
    model: str | None
    model_version: int | None
    user_id: str
    created_at: datetime


@router.get("/persons/{person_id}", response_model=None)
def person_suggestions(
    person_id: PersonId,
    user: Clinician,
    ctx: StoreCtx,
    state: State,
    model: Annotated[str | None, Query(max_length=128)] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    active: Annotated[
        list[str] | None, Query(description="A drug also taken now (RxNorm|<code>); repeat.")
    ] = None,
    size: Annotated[int, Query(ge=1, le=20)] = 5,
    format: Annotated[Literal["json", "fhir"], Query()] = "json",
) -> dict[str, Any]:
    """Suggestions with their reasons and support, the items the safety filter removed and
    why, allergies recorded only as free text, and the cold-start notice; with
    ``format=fhir`` a Bundle of draft MedicationRequest proposals instead."""
    del user
    settings = state.settings
    found = suggest_for_omop_person(
        ctx, model_cache(settings.resolved_registry_dir), person_id,
        url=settings.omop_url or eunomia_url(), schema=settings.omop_schema,
        model=model or settings.recommendation_model, version=version,
        active=active or (), size=size, table=interaction_table(settings.interactions_csv),
    )  # fmt: skip
    return found.fhir_bundle() if format == "fhir" else found.to_dict()


@router.post("/persons/{person_id}/feedback", status_code=201)
def record_decision(
    person_id: PersonId, body: DecisionIn, user: Clinician, ctx: StoreCtx
) -> DecisionOut:
    """Store the clinician's accept or reject of a suggestion (audited)."""
    del user
    stored = decide_on_suggestion(
        ctx, person_id, drug=body.drug, decision=body.decision, reason=body.reason,
        model=body.model, version=body.version,
    )  # fmt: skip
    return DecisionOut.model_validate(stored, from_attributes=True)


@router.get("/persons/{person_id}/feedback")
def list_person_decisions(person_id: PersonId, user: Clinician, ctx: StoreCtx) -> list[DecisionOut]:
    """The decisions recorded on this person's suggestions, oldest first."""
    del user
    return [DecisionOut.model_validate(d, from_attributes=True)
            for d in person_decisions(ctx, person_id)]  # fmt: skip
