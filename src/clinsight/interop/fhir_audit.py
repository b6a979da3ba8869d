"""The audit log as FHIR R4 `AuditEvent` resources, after IHE Basic Audit Log Patterns
(BALP): a RESTful-interaction event type, the user as the requesting agent, the patient
as a role-1 entity, the resource touched, and the hash chain link as entity detail."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from clinsight.store.audit import AuditEntry

__all__ = ["audit_bundle", "audit_event"]

_EVENT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
               "display": "RESTful Operation"}  # fmt: skip
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_OUTCOME = {"success": "0", "denied": "4", "failure": "8"}
# the last part of an action names what was done
_VERBS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("read", "view", "download", "export", "verify"), "R", "read"),
    (("list", "search", "lookup"), "E", "search-type"),
    (("create", "upload", "register", "login"), "C", "create"),
    (("delete", "archive", "revoke", "logout", "disable"), "D", "delete"),
    (("update", "promote", "rollback", "rotate", "feedback", "reset", "role", "assign"),
     "U", "update"),
)  # fmt: skip


def _verb(action: str) -> tuple[str, str]:
    last = action.rsplit(".", 1)[-1]
    for words, code, interaction in _VERBS:
        if any(word in last for word in words):
            return code, interaction
    return "E", "operation"


def audit_event(entry: AuditEntry, labels: dict[str, str]) -> dict[str, Any]:
    """One audit entry as a validated `AuditEvent` (JSON-ready dict)."""
    code, interaction = _verb(entry.action)
    agent: dict[str, Any] = {"requestor": True, "type": {"text": "user"}}
    if entry.actor_id:
        agent["who"] = {"identifier": {"value": entry.actor_id},
                        "display": labels.get(entry.actor_id, entry.actor_id)}  # fmt: skip
    else:
        agent["who"] = {"display": "system (no signed-in user)"}
    entities: list[dict[str, Any]] = []
    if entry.patient_id:
        entities.append({
            "what": {"reference": f"Patient/{entry.patient_id}",
                     "display": labels.get(entry.patient_id, entry.patient_id)},
            "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
        })  # fmt: skip
    entities.append({
        "what": {"identifier": {"value": entry.resource_id or "-"}},
        "type": {"code": entry.resource_type, "display": entry.resource_type},
        "role": {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        "detail": [
            {"type": "audit-seq", "valueString": str(entry.seq)},
            {"type": "audit-hash", "valueString": entry.hash},
            {"type": "break-glass", "valueString": "yes" if entry.break_glass else "no"},
        ],
    })  # fmt: skip
    event = AuditEvent.model_validate({
        "resourceType": "AuditEvent",
        "id": f"audit-{entry.seq}",
        "type": _EVENT_TYPE,
        "subtype": [{"system": _INTERACTION, "code": interaction}, {"code": entry.action}],
        "action": code,
        "recorded": entry.at.isoformat(),
        "outcome": _OUTCOME.get(entry.outcome, "8"),
        "outcomeDesc": entry.outcome,
        "agent": [agent],
        "source": {"observer": {"display": "Clinsight"}},
        "entity": entities,
    })  # fmt: skip
    return event.model_dump(mode="json", exclude_none=True)


def audit_bundle(entries: list[AuditEntry], labels: dict[str, str]) -> dict[str, Any]:
    """A FHIR `collection` Bundle of the entries' `AuditEvent`s, newest first."""
    bundle = Bundle.model_validate({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": audit_event(e, labels)} for e in entries],
    })  # fmt: skip
    return bundle.model_dump(mode="json", exclude_none=True)
