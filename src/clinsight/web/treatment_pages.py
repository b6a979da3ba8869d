"""Web page for treatment suggestions on a patient's record: what similar patients of the
OMOP CDM database received for the same active conditions, with the reasons and support,
the treatments the safety filter removed and why, and the clinician's accept or reject.

Clinsight stores no medication list, coded condition or CDM person of its own patients,
so the clinician names the patient's OMOP ``person_id``; the page says so plainly, and
flags a person whose sex or birth year contradicts the chart.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from clinsight.data.omop import eunomia_url
from clinsight.errors import DataError
from clinsight.inference.cache import model_cache
from clinsight.services.recommendation import interaction_table
from clinsight.services.treatment_suggestions import decide_for_patient, patient_treatments
from clinsight.store.repositories import StoreContext
from clinsight.web.pages import Csrf, Db, State, guard_page, redirect_to, render_page
from clinsight.web.session import WebSession, check_csrf

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
MAX_PERSON_ID = 2**62


def _person(text: str) -> int | None:
    """The OMOP person id typed in the form (blank: none).

    Raises:
        DataError: not a whole number in range.
    """
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > MAX_PERSON_ID:
        raise DataError(
            f"{text[:30]!r} is not an OMOP person_id: give the whole number of the person in "
            "the OMOP CDM database (from your OMOP ETL)."
        )
    return int(text)


@router.get("/patients/{patient_id}/treatments")
def treatments(
    request: Request, state: State, session: Db, patient_id: str, person: str = ""
) -> Response:
    """The suggestions for this patient as the OMOP person named (none named: the form)."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        settings = state.settings
        person_id = _person(person)
        shown = patient_treatments(
            ctx, model_cache(settings.resolved_registry_dir), patient_id, person_id,
            url=settings.omop_url or eunomia_url(), model=settings.recommendation_model,
            schema=settings.omop_schema, table=interaction_table(settings.interactions_csv),
        )  # fmt: skip
        return render_page(request, "treatments.html", web, header=shown.header, shown=shown,
                           model_name=settings.recommendation_model)  # fmt: skip

    return guard_page(request, state, session, page)


@router.post("/patients/{patient_id}/treatments/feedback")
def treatment_feedback(
    request: Request,
    state: State,
    session: Db,
    patient_id: str,
    csrf: Csrf,
    person: Annotated[str, Form()],
    drug: Annotated[str, Form(max_length=128)],
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
    model: Annotated[str, Form(max_length=128)] = "",
    version: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Store the clinician's accept or reject of one suggestion (audited), then back."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        person_id = _person(person)
        if person_id is None:
            raise DataError("Name the OMOP person whose suggestion you decide on.")
        decide_for_patient(
            ctx, patient_id, person_id, drug=drug, decision=decision, reason=reason,
            model=model or None, version=version,
        )  # fmt: skip
        return redirect_to(f"/patients/{patient_id}/treatments?person={person_id}#decisions", web)

    return guard_page(request, state, session, page)
