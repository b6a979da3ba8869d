"""Use cases of the recommendations API: a clinician asks for the treatment suggestions of
one person of the configured OMOP CDM database, and accepts or rejects a suggestion.

The recommender reads the OMOP database, not Clinsight's patient store: a person is named
by their OMOP ``person_id`` (mapping an EHR patient to a CDM person is the hospital's
OMOP ETL's work). No Clinsight PHI is read, so access is by role (clinicians), not by care
team. Each suggestion list and each decision is audited (person id, model, version, drug;
never a name or a reason) and committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from clinsight.errors import DataError
from clinsight.inference.cache import ModelCache
from clinsight.interop.fhir_recommendation import medication_proposals
from clinsight.recommend.matrix import TreatmentData
from clinsight.recommend.models import Recommender
from clinsight.recommend.safety import shipped_interactions
from clinsight.recommend.suggest import SuggestionList, check_treatment_code, suggest
from clinsight.registry.recommendation import RecommendationModelVersion
from clinsight.registry.versions import ModelKind
from clinsight.security.access import require_role
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
    "PersonSuggestions",
    "decide_on_suggestion",
    "load_recommender",
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
) -> PersonSuggestions:
    """The suggestions for OMOP person `person_id` (clinicians only), audited
    (``recommendation.suggest``) and committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician (the denial is committed).
        ModelNotFoundError: no such model, version or production version.
        DataError: no such person, a person without events, or an unknown drug code.
    """
    require_role(ctx.session, ctx.actor, "recommendation.suggest", Role.CLINICIAN)
    found, recommender, data = load_recommender(predictors, model, version)
    table = shipped_interactions()
    for key in active:
        check_treatment_code(key, data, table)
    _, context = person_context(url, person_id, schema=schema)
    result = suggest(recommender, data, context, table, size=size,
                     min_support=found.min_support, extra_active=active)  # fmt: skip
    ctx.audit(
        "recommendation.suggest", "omop_person", resource_id=str(person_id),
        details={"model": found.name, "version": found.version,
                 "suggested": ",".join(s.treatment for s in result.suggestions)[:256],
                 "removed": len(result.removed), "cold_start": result.cold_start},
    )  # fmt: skip
    ctx.session.commit()
    conditions = {context.names.get(c, c): c for c in sorted(context.conditions)}
    return PersonSuggestions(person_id, found.name, found.version, result, conditions)


def decide_on_suggestion(
    ctx: StoreContext,
    person_id: int,
    *,
    drug: str,
    decision: str,
    reason: str | None = None,
    model: str | None = None,
    version: int | None = None,
) -> RecommendationDecision:
    """Store a clinician's accept or reject of suggestion `drug` for `person_id`, audited
    (``recommendation.feedback``; the reason is stored encrypted, never audited) and
    committed.

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
    )  # fmt: skip
    ctx.audit(
        "recommendation.feedback", "recommendation_feedback", resource_id=stored.id,
        details={"person_id": str(person_id), "drug": drug, "decision": decision,
                 "model": model or "", "version": version or 0,
                 "has_reason": stored.reason is not None},
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
