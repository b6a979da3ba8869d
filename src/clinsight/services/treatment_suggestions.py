"""Use cases of the recommendations API: a clinician asks for the treatment suggestions of
one person of the configured OMOP CDM database, and accepts or rejects a suggestion.

The recommender reads the OMOP database, not Clinsight's patient store: a person is named
by their OMOP ``person_id`` (mapping an EHR patient to a CDM person is the hospital's
OMOP ETL's work). No Clinsight PHI is read, so access is by role (clinicians), not by care
team. Each suggestion list and each decision is audited (person id, model, version, drug;
never a name or a reason) and committed.

The patient record page (`patient_treatments`, `decide_for_patient`) opens a stored
patient under the care-team policy first: Clinsight keeps no medication list or coded
condition of its own patients and no link to a CDM person, so the clinician names the
person, and a person whose sex or birth year contradicts the chart is flagged.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from clinsight.errors import DataError
from clinsight.inference.cache import ModelCache
from clinsight.interop.fhir_recommendation import medication_proposals
from clinsight.recommend.matrix import TreatmentData
from clinsight.recommend.models import Recommender
from clinsight.recommend.safety import InteractionTable, shipped_interactions
from clinsight.recommend.suggest import SuggestionList, check_treatment_code, suggest
from clinsight.registry.recommendation import RecommendationModelVersion
from clinsight.registry.versions import ModelKind
from clinsight.security import records
from clinsight.security.access import require_role
from clinsight.services.patient_record import PatientHeader, patient_header
from clinsight.services.recommendation import person_context
from clinsight.store.recommendation_feedback import (
    RecommendationDecision,
    add_decision,
    list_decisions,
)
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role

__all__ = [
    "DECISIONS",
    "PatientTreatments",
    "PersonSuggestions",
    "chart_mismatch",
    "decide_for_patient",
    "decide_on_suggestion",
    "load_recommender",
    "patient_treatments",
    "person_decisions",
    "suggest_for_omop_person",
]

DECISIONS = ("accept", "reject")


@dataclass(frozen=True)
class PersonSuggestions:
    """One person's suggestions, the model version behind them, and the person's active
    conditions (display name → SNOMED or other code key), for the FHIR proposals."""

    person_id: int
    model: str
    version: int
    result: SuggestionList
    conditions: dict[str, str]
    sex: str | None = None
    """The person's sex and birth date in the OMOP database (to check against a chart)."""
    birth_date: date | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "person_id": self.person_id, "model_name": self.model,
                "model_version": self.version}  # fmt: skip

    def fhir_bundle(self) -> dict[str, Any]:
        """A collection Bundle: the person's active Conditions and one draft
        ``MedicationRequest`` proposal per suggestion, whose ``reasonReference`` points to
        them (``urn:uuid`` full URLs)."""
        subject = f"Patient/{self.person_id}"
        refs = {name: f"urn:uuid:{uuid.uuid4()}" for name in self.conditions}
        entries: list[dict[str, Any]] = []
        for name, key in self.conditions.items():
            system, _, code = key.partition("|")
            uri = "http://snomed.info/sct" if system == "SNOMED" else system
            entries.append({"fullUrl": refs[name], "resource": {
                "resourceType": "Condition", "subject": {"reference": subject},
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active"}]},
                "code": {"coding": [{"system": uri, "code": code, "display": name}],
                         "text": name}}})  # fmt: skip
        proposals = medication_proposals(
            self.result, subject=subject, conditions=refs, model=self.model,
            version=self.version,
        )  # fmt: skip
        entries += [{"fullUrl": f"urn:uuid:{p['id']}", "resource": p} for p in proposals]
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection",
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "entry": entries}  # fmt: skip


def load_recommender(
    predictors: ModelCache, name: str, version: int | None = None
) -> tuple[RecommendationModelVersion, Recommender, TreatmentData]:
    """The recommender `name` (`version`, else production) through the one model cache.

    Raises:
        ModelNotFoundError: no such model, version or production version.
    """
    loaded = predictors.load(ModelKind.RECOMMENDATION, name, version)
    model, data = loaded.model
    return cast(RecommendationModelVersion, loaded.version), model, data


def suggest_for_omop_person(
    ctx: StoreContext,
    predictors: ModelCache,
    person_id: int,
    *,
    url: str,
    model: str,
    version: int | None = None,
    schema: str | None = None,
    active: Sequence[str] = (),
    size: int = 5,
    table: InteractionTable | None = None,
    patient_id: str | None = None,
) -> PersonSuggestions:
    """The suggestions for OMOP person `person_id` (clinicians only), checked against
    `table` (default: the shipped one), audited (``recommendation.suggest``, with the
    Clinsight `patient_id` when asked from a patient's record) and committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician (the denial is committed).
        ModelNotFoundError: no such model, version or production version.
        DataError: no such person, a person without events, or an unknown drug code.
    """
    require_role(ctx.session, ctx.actor, "recommendation.suggest", Role.CLINICIAN)
    found, recommender, data = load_recommender(predictors, model, version)
    table = table if table is not None else shipped_interactions()
    for key in active:
        check_treatment_code(key, data, table)
    person, context = person_context(url, person_id, schema=schema)
    result = suggest(recommender, data, context, table, size=size,
                     min_support=found.min_support, extra_active=active)  # fmt: skip
    ctx.audit(
        "recommendation.suggest", "omop_person", resource_id=str(person_id),
        details={"model": found.name, "version": found.version,
                 "suggested": ",".join(s.treatment for s in result.suggestions)[:256],
                 "removed": len(result.removed), "cold_start": result.cold_start,
                 **({"patient_id": patient_id} if patient_id else {})},
    )  # fmt: skip
    ctx.session.commit()
    conditions = {context.names.get(c, c): c for c in sorted(context.conditions)}
    return PersonSuggestions(person_id, found.name, found.version, result, conditions,
                             person.sex, person.birth_date)  # fmt: skip


def decide_on_suggestion(
    ctx: StoreContext,
    person_id: int,
    *,
    drug: str,
    decision: str,
    reason: str | None = None,
    model: str | None = None,
    version: int | None = None,
    patient_id: str | None = None,
) -> RecommendationDecision:
    """Store a clinician's accept or reject of suggestion `drug` for `person_id`, audited
    (``recommendation.feedback``, with the Clinsight `patient_id` when decided on a
    patient's record; the reason is stored encrypted, never audited) and committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician (the denial is committed).
        DataError: the decision is not accept or reject, or the drug is not ``system|code``.
    """
    require_role(ctx.session, ctx.actor, "recommendation.feedback", Role.CLINICIAN)
    if decision not in DECISIONS:
        raise DataError(f"decision must be accept or reject, not {decision!r}.")
    system, _, code = drug.partition("|")
    if not system or not code or len(drug) > 128:
        raise DataError(f"{drug[:40]!r} is not a drug code; write it as RxNorm|<code>.")
    stored = add_decision(
        ctx, person_id=str(person_id), drug=drug, decision=decision,
        reason=(reason or "").strip() or None, model=model, model_version=version,
        patient_id=patient_id,
    )  # fmt: skip
    ctx.audit(
        "recommendation.feedback", "recommendation_feedback", resource_id=stored.id,
        patient_id=patient_id,
        details={"person_id": str(person_id), "drug": drug, "decision": decision,
                 "model": model or "", "version": version or 0,
                 "has_reason": stored.reason is not None,
                 **({"patient_id": patient_id} if patient_id else {})},
    )  # fmt: skip
    ctx.session.commit()
    return stored


def person_decisions(ctx: StoreContext, person_id: int) -> list[RecommendationDecision]:
    """The stored decisions on `person_id`'s suggestions (clinicians only).

    Raises:
        PermissionDeniedError: the actor is not a clinician (the denial is committed).
    """
    require_role(ctx.session, ctx.actor, "recommendation.feedback_read", Role.CLINICIAN)
    return list_decisions(ctx, str(person_id))


@dataclass(frozen=True)
class PatientTreatments:
    """A stored patient's treatment suggestions page: the header, the OMOP person the
    clinician named (None: none named yet), their suggestions, what contradicts the chart,
    and the decisions recorded on the person's suggestions."""

    header: PatientHeader
    person_id: int | None
    found: PersonSuggestions | None = None
    mismatch: tuple[str, ...] = ()
    decisions: tuple[RecommendationDecision, ...] = ()


def chart_mismatch(chart_sex: str, chart_birth: date, found: PersonSuggestions) -> tuple[str, ...]:
    """Where the OMOP person contradicts the Clinsight chart (sex, birth year), in words."""
    problems = []
    if (
        found.sex in ("female", "male")
        and chart_sex in ("female", "male")
        and (found.sex != chart_sex)
    ):
        problems.append(f"the OMOP person is {found.sex}, the chart says {chart_sex}")
    if found.birth_date is not None and found.birth_date.year != chart_birth.year:
        problems.append(
            f"the OMOP person was born in {found.birth_date.year}, the chart says "
            f"{chart_birth.year}"
        )
    return tuple(problems)


def patient_treatments(
    ctx: StoreContext,
    predictors: ModelCache,
    patient_id: str,
    person_id: int | None,
    *,
    url: str,
    model: str,
    schema: str | None = None,
    table: InteractionTable | None = None,
) -> PatientTreatments:
    """The suggestions for stored patient `patient_id` as OMOP person `person_id` (the
    patient opened under the care-team policy first; suggestions audited and committed).

    Raises:
        PermissionDeniedError: the actor may not open the patient or is not a clinician.
        RecordNotFoundError: no such patient.
        ModelNotFoundError: no such model or production version.
        DataError: no such person, or a person without events.
    """
    header = patient_header(ctx, patient_id)
    if person_id is None:
        return PatientTreatments(header, None)
    found = suggest_for_omop_person(
        ctx, predictors, person_id, url=url, model=model, schema=schema, table=table,
        patient_id=patient_id,
    )  # fmt: skip
    patient = header.patient
    mismatch = chart_mismatch(patient.sex, patient.birth_date, found)
    decisions = tuple(person_decisions(ctx, person_id))
    ctx.session.commit()
    return PatientTreatments(header, person_id, found, mismatch, decisions)


def decide_for_patient(
    ctx: StoreContext,
    patient_id: str,
    person_id: int,
    *,
    drug: str,
    decision: str,
    reason: str | None = None,
    model: str | None = None,
    version: int | None = None,
) -> RecommendationDecision:
    """A clinician's accept or reject on stored patient `patient_id`'s suggestions (the
    patient opened under the care-team policy first), stored and audited.

    Raises:
        PermissionDeniedError: the actor may not open the patient or is not a clinician.
        RecordNotFoundError: no such patient.
        DataError: the decision is not accept or reject, or the drug is not ``system|code``.
    """
    records.get_patient(ctx, patient_id)
    return decide_on_suggestion(
        ctx, person_id, drug=drug, decision=decision, reason=reason, model=model,
        version=version, patient_id=patient_id,
    )  # fmt: skip
