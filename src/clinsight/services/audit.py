"""Use cases of the audit log for auditors: read it newest first, verify its hash chain.

The API and the web call these same functions; each commits its own work."""

from __future__ import annotations

from clinsight.security.records import list_audit
from clinsight.store import audit
from clinsight.store.repositories import StoreContext

__all__ = ["audit_entries", "verify_audit_chain"]


def audit_entries(
    ctx: StoreContext,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    patient_id: str | None = None,
) -> list[audit.AuditEntry]:
    """Audit entries newest first, at most 100 (auditors; the read is audited and committed).

    Raises:
        PermissionDeniedError: the actor is not an auditor.
    """
    entries = list_audit(ctx, limit=limit, before_seq=before_seq, patient_id=patient_id)
    ctx.session.commit()
    return entries


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
