"""Use cases of the audit log for auditors: read it newest first, verify its hash chain.

The API and the web call these same functions; each commits its own work."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime

from clinsight.errors import DataError
from clinsight.interop.fhir_audit import audit_bundle
from clinsight.security.records import audit_user_id, list_audit
from clinsight.store import audit
from clinsight.store.repositories import StoreContext, audit_labels

__all__ = [
    "EXPORT_LIMIT",
    "AuditPage",
    "audit_entries",
    "audit_filter",
    "audit_page",
    "export_audit",
    "verify_audit_chain",
]

EXPORT_LIMIT = 10_000
CSV_COLUMNS = ("seq", "time_utc", "user", "user_id", "action", "resource_type", "resource_id",
               "patient", "patient_id", "outcome", "break_glass", "details", "hash")  # fmt: skip


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first, with readable names for the users and patients they name."""

    entries: list[audit.AuditEntry]
    labels: dict[str, str]


def audit_filter(
    ctx: StoreContext,
    *,
    username: str = "",
    patient_id: str = "",
    action: str = "",
    outcome: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> audit.AuditFilter:
    """An auditor's filter from form or query fields (empty means any).

    Raises:
        DataError: an unknown user name or outcome, or `since` after `until`.
    """
    actor_id = None
    if username.strip():
        actor_id = audit_user_id(ctx, username)
        if actor_id is None:
            raise DataError(f"no account is called {username.strip()!r}; check the user name")
    if outcome and outcome not in {o.value for o in audit.Outcome}:
        known = ", ".join(o.value for o in audit.Outcome)
        raise DataError(f"outcome must be one of {known}")
    if since is not None and until is not None and since >= until:
        raise DataError("the 'from' time must be before the 'to' time")
    return audit.AuditFilter(
        actor_id=actor_id, patient_id=patient_id.strip() or None,
        action=action.strip() or None, outcome=outcome or None, since=since, until=until,
    )  # fmt: skip


def audit_entries(
    ctx: StoreContext,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    patient_id: str | None = None,
    where: audit.AuditFilter | None = None,
) -> list[audit.AuditEntry]:
    """Audit entries newest first, at most 100 (auditors; the read is audited and committed).

    Raises:
        PermissionDeniedError: the actor is not an auditor.
    """
    entries = list_audit(
        ctx, limit=limit, before_seq=before_seq, patient_id=patient_id, where=where
    )
    ctx.session.commit()
    return entries


def audit_page(
    ctx: StoreContext,
    where: audit.AuditFilter,
    *,
    limit: int = 100,
    before_seq: int | None = None,
) -> AuditPage:
    """One page of the log for the audit page: one audit entry for the view. Committed.

    Raises:
        PermissionDeniedError: the actor is not an auditor.
    """
    entries = list_audit(ctx, limit=limit, before_seq=before_seq, where=where)
    page = AuditPage(entries, audit_labels(ctx, entries))
    ctx.session.commit()
    return page


def export_audit(ctx: StoreContext, where: audit.AuditFilter, fmt: str) -> str:
    """The filtered log (newest first, at most `EXPORT_LIMIT` entries) as CSV or as a FHIR
    Bundle of `AuditEvent`s (`fmt` "csv" or "fhir"); the export is audited. Committed.

    Raises:
        PermissionDeniedError: the actor is not an auditor.
        DataError: an unknown format.
    """
    if fmt not in {"csv", "fhir"}:
        raise DataError("export format must be csv or fhir")
    entries = list_audit(
        ctx, limit=EXPORT_LIMIT, where=where, cap=EXPORT_LIMIT, action=f"audit.export.{fmt}"
    )
    labels = audit_labels(ctx, entries)
    ctx.session.commit()
    if fmt == "fhir":
        return json.dumps(audit_bundle(entries, labels))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow([
            e.seq, e.at.isoformat(), labels.get(e.actor_id or "", ""), e.actor_id or "",
            e.action, e.resource_type, e.resource_id or "",
            labels.get(e.patient_id or "", ""), e.patient_id or "", e.outcome,
            "yes" if e.break_glass else "no", json.dumps(e.details, sort_keys=True), e.hash,
        ])  # fmt: skip
    return out.getvalue()


def verify_audit_chain(ctx: StoreContext, *, audited: bool = True) -> audit.AuditVerification:
    """Recompute the hash chain and report the first entry edited, moved or removed; with
    `audited` the check gets its own entry. Committed.

    The caller has checked the role (the API's `Auditor` dependency, or `audit_entries`
    first on the web page).
    """
    result = audit.verify(ctx.session)
    if audited:
        ctx.audit("audit.verify", "audit", details={"ok": result.ok, "entries": result.entries})
    ctx.session.commit()
    return result
