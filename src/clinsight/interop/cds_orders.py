"""HL7 CDS Hooks 2.0 ``order-select`` and ``order-sign``: the medication-order services,
their prefetch, the draft orders read from the request, and the cards.

A draft ``MedicationRequest`` coded in RxNorm (ingredient) is checked against the
patient's active MedicationRequests and AllergyIntolerances (the prefetch): an interaction
or allergy card (indicator ``critical`` for a contraindicated or major interaction, or an
allergy recorded with high criticality or a severe reaction; ``warning`` otherwise) whose
suggestion deletes the draft, and an alternatives card from the recommender. No HTTP here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from clinsight.data.longitudinal import Code
from clinsight.data.omop import FREE_TEXT_ALLERGY
from clinsight.errors import DataError
from clinsight.interop.cds_hooks import SUMMARY_LIMIT
from clinsight.interop.fhir_recommendation import RXNORM_SYSTEM
from clinsight.recommend.safety import Removal
from clinsight.recommend.suggest import SuggestionList

__all__ = [
    "ORDER_HOOKS",
    "DraftOrder",
    "OrderHook",
    "OrderRequest",
    "OrderService",
    "alternatives_card",
    "order_cards",
    "parse_order_request",
]

OrderHook = Literal["order-select", "order-sign"]
ORDER_HOOKS: tuple[OrderHook, OrderHook] = ("order-select", "order-sign")
SEVERE_INTERACTIONS = frozenset({"contraindicated", "major"})
_SYSTEMS = {RXNORM_SYSTEM: "RxNorm", "http://snomed.info/sct": "SNOMED",
            "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM"}  # fmt: skip


@dataclass(frozen=True)
class OrderService:
    """A medication-order service for one hook, backed by the shipped interaction table
    (with the hospital's file `interactions` laid over it, if set) and, for alternatives,
    the recommendation model `model_name`."""

    id: str
    hook: OrderHook
    title: str
    description: str
    model_name: str
    interactions: Path | None = None

    @property
    def prefetch(self) -> dict[str, str]:
        """The Patient, active MedicationRequests, AllergyIntolerances, active Conditions."""
        patient = "{{context.patientId}}"
        return {
            "patient": f"Patient/{patient}",
            "medications": f"MedicationRequest?patient={patient}&status=active",
            "allergies": f"AllergyIntolerance?patient={patient}",
            "conditions": f"Condition?patient={patient}&clinical-status=active",
        }

    def to_discovery(self) -> dict[str, Any]:
        """This service's entry in the discovery document."""
        return {"hook": self.hook, "id": self.id, "title": self.title,
                "description": self.description, "prefetch": self.prefetch}  # fmt: skip


@dataclass(frozen=True)
class DraftOrder:
    """A draft MedicationRequest of the request: its reference and its RxNorm key (None
    when it carries no RxNorm coding)."""

    reference: str
    key: str | None
    display: str


@dataclass(frozen=True)
class OrderRequest:
    """What an order hook request says of the patient, read from context and prefetch."""

    patient_id: str
    drafts: tuple[DraftOrder, ...]
    active: tuple[str, ...]
    allergies: tuple[Code, ...]
    severe_allergies: frozenset[str]
    """Allergy keys recorded with high criticality or a severe reaction."""
    conditions: Mapping[str, str]
    """Active condition key → display."""
    names: Mapping[str, str]
    birth_date: date | None
    sex: str | None


def _entries(bundle: Any, resource_type: str, where: str) -> list[Mapping[str, Any]]:
    if bundle is None:
        return []
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise DataError(f"{where} must be a FHIR Bundle.")
    found = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping) and resource.get("resourceType") == resource_type:
            found.append(resource)
    return found


def _codings(concept: Any) -> list[tuple[str, str, str]]:
    if not isinstance(concept, Mapping):
        return []
    found = []
    for coding in concept.get("coding") or []:
        if isinstance(coding, Mapping) and coding.get("code"):
            system = _SYSTEMS.get(str(coding.get("system")), str(coding.get("system")))
            found.append((system, str(coding["code"]), str(coding.get("display") or "")))
    return found


def _medication(resource: Mapping[str, Any]) -> tuple[str | None, str]:
    concept = resource.get("medicationCodeableConcept")
    rxnorm = [c for c in _codings(concept) if c[0] == "RxNorm"]
    text = str((concept or {}).get("text") or "") if isinstance(concept, Mapping) else ""
    if not rxnorm:
        return None, text or "a medication not coded in RxNorm"
    _, code, display = rxnorm[0]
    return f"RxNorm|{code}", display or text or code


def _allergy(resource: Mapping[str, Any]) -> tuple[Code, bool]:
    concept = resource.get("code")
    rxnorm = [c for c in _codings(concept) if c[0] == "RxNorm"]
    severe = resource.get("criticality") == "high" or any(
        isinstance(r, Mapping) and r.get("severity") == "severe"
        for r in resource.get("reaction") or []
    )
    if rxnorm:
        _, code, display = rxnorm[0]
        return Code("RxNorm", code, display or None), severe
    text = str((concept or {}).get("text") or "") if isinstance(concept, Mapping) else ""
    text = text or next((d for _, _, d in _codings(concept) if d), "") or "unnamed substance"
    return Code(FREE_TEXT_ALLERGY, text, text), severe


def parse_order_request(service: OrderService, request: Mapping[str, Any]) -> OrderRequest:
    """The drafts to check (order-select: the selected ones; order-sign: all) and the
    patient's active medications, allergies and conditions from the prefetch.

    Raises:
        DataError: the hook is not the service's, the context lacks draftOrders or the
            patient, or a prefetch item is not the FHIR resource it should be.
    """
    if request.get("hook") != service.hook:
        raise DataError(f"{service.id} answers the {service.hook} hook, "
                        f"not {request.get('hook')!r}.")  # fmt: skip
    context = request.get("context") or {}
    prefetch = request.get("prefetch") or {}
    patient_id = context.get("patientId")
    patient = prefetch.get("patient")
    if not isinstance(patient, Mapping) or patient.get("resourceType") != "Patient":
        raise DataError("prefetch 'patient' must be a FHIR Patient resource.")
    if patient_id is None or patient.get("id") != patient_id:
        raise DataError("prefetch 'patient' is not the patient of context.patientId.")
    orders = _entries(context.get("draftOrders"), "MedicationRequest", "context.draftOrders")
    if context.get("draftOrders") is None:
        raise DataError("context.draftOrders (a Bundle of draft MedicationRequests) is required.")
    selected = set(context.get("selections") or [])
    names: dict[str, str] = {}
    drafts = []
    for order in orders:
        reference = f"MedicationRequest/{order.get('id', '')}"
        if service.hook == "order-select" and selected and reference not in selected:
            continue
        key, display = _medication(order)
        if key is not None:
            names[key] = display
        drafts.append(DraftOrder(reference, key, display))
    active = []
    for med in _entries(prefetch.get("medications"), "MedicationRequest", "prefetch medications"):
        key, display = _medication(med)
        if key is not None and med.get("status", "active") == "active":
            active.append(key)
            names.setdefault(key, display)
    allergies: list[Code] = []
    severe: set[str] = set()
    for item in _entries(prefetch.get("allergies"), "AllergyIntolerance", "prefetch allergies"):
        substance, is_severe = _allergy(item)
        allergies.append(substance)
        if is_severe:
            severe.add(substance.key())
    conditions: dict[str, str] = {}
    for item in _entries(prefetch.get("conditions"), "Condition", "prefetch conditions"):
        for system, code, display in _codings(item.get("code"))[:1]:
            conditions[f"{system}|{code}"] = display or code
    birth = patient.get("birthDate")
    try:
        born = date.fromisoformat(birth) if isinstance(birth, str) and len(birth) == 10 else None
    except ValueError:
        born = None
    sex = patient.get("gender") if patient.get("gender") in ("male", "female") else None
    return OrderRequest(str(patient_id), tuple(drafts), tuple(dict.fromkeys(active)),
                        tuple(allergies), frozenset(severe), conditions, names, born,
                        sex)  # fmt: skip


def _summary(text: str) -> str:
    return text if len(text) < SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 2] + "…"


def _indicator(removal: Removal, order: OrderRequest) -> str:
    if removal.reason == "interaction":
        return "critical" if removal.severity in SEVERE_INTERACTIONS else "warning"
    if removal.reason == "allergy":
        return "critical" if removal.treatment in order.severe_allergies else "warning"
    return "warning"


def order_cards(
    order: OrderRequest, findings: Sequence[tuple[DraftOrder, Removal]], source: str
) -> list[dict[str, Any]]:
    """One card per flagged draft: the problem, its citation, and a suggestion that deletes
    the draft; plus a warning card per draft that could not be checked (no RxNorm code)."""
    cards = []
    for draft, removal in findings:
        what = {"interaction": "Interaction", "allergy": "Allergy",
                "duplicate_ingredient": "Duplicate therapy",
                "duplicate_class": "Duplicate therapy"}[removal.reason]  # fmt: skip
        detail = [f"**{removal.detail}**"]
        if removal.severity:
            detail.append(f"Severity: {removal.severity}.")
        if removal.citation:
            detail.append(f"Source: {removal.citation}.")
        cards.append({
            "uuid": str(uuid.uuid4()),
            "summary": _summary(f"{what}: {draft.display} - {removal.detail}"),
            "indicator": _indicator(removal, order),
            "detail": "\n\n".join(detail),
            "source": {"label": source},
            "selectionBehavior": "at-most-one",
            "suggestions": [{
                "label": f"Remove the order for {draft.display}",
                "uuid": str(uuid.uuid4()), "isRecommended": True,
                "actions": [{"type": "delete", "description": f"Remove {draft.reference}",
                             "resourceId": [draft.reference]}],
            }],
        })  # fmt: skip
    for draft in order.drafts:
        if draft.key is None:
            cards.append({
                "uuid": str(uuid.uuid4()),
                "summary": _summary(f"Not checked: {draft.display} has no RxNorm code"),
                "indicator": "warning",
                "detail": "Interactions and allergies are checked by RxNorm ingredient code; "
                          "this order carries none, so it was not checked.",
                "source": {"label": source},
            })  # fmt: skip
    return cards


def alternatives_card(
    alternatives: SuggestionList, flagged: Sequence[DraftOrder], source: str
) -> dict[str, Any]:
    """An info card: what similar patients received for the active conditions, after the
    same safety check, each with its explanation and support."""
    lines = [f"- **{s.display}** ({s.treatment.partition('|')[2]}): {s.explanation}; "
             f"support {s.support} patients" for s in alternatives.suggestions]  # fmt: skip
    lines += [f"_{note}_" for note in alternatives.notes]
    lines += [f"Allergy recorded as free text, not checked by code: {a}"
              for a in alternatives.unchecked_allergies]  # fmt: skip
    names = ", ".join(d.display for d in flagged)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(
            f"Alternatives to {names}: " + ", ".join(s.display for s in alternatives.suggestions)
        ),
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": {"label": source},
    }
