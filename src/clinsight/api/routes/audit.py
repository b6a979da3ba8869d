"""The audit log for auditors: newest entries first, and a verification of the whole chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from clinsight.api.deps import Auditor, StoreCtx
from clinsight.api.schemas import AuditEntryOut, AuditVerificationOut
from clinsight.services.audit import audit_entries, audit_filter, export_audit, verify_audit_chain
from clinsight.store.audit import AuditFilter
from clinsight.store.repositories import StoreContext

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryOut])
def entries(
    user: Auditor,
    ctx: StoreCtx,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (at most 100).")] = 50,
    before_seq: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Page before this seq.")
    ] = None,
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    username: Annotated[str, Query(max_length=64, description="Only this user's.")] = "",
    action: Annotated[str, Query(max_length=64, description="An action or group.")] = "",
    outcome: Annotated[str, Query(max_length=16)] = "",
    since: Annotated[datetime | None, Query(description="From this time (inclusive).")] = None,
    until: Annotated[datetime | None, Query(description="Up to this time (exclusive).")] = None,
) -> list[AuditEntryOut]:
    """Audit entries newest first, filtered; page with `before_seq` (the read is audited)."""
    del user
    where = _filter(ctx, patient_id, username, action, outcome, since, until)
    found = audit_entries(ctx, limit=limit, before_seq=before_seq, where=where)
    return [AuditEntryOut.model_validate(e) for e in found]


def _filter(
    ctx: StoreContext, patient_id: str | None, username: str, action: str, outcome: str,
    since: datetime | None, until: datetime | None,
) -> AuditFilter:  # fmt: skip
    return audit_filter(
        ctx, username=username, patient_id=patient_id or "", action=action, outcome=outcome,
        since=since, until=until,
    )  # fmt: skip


@router.get("/export", response_class=Response)
def export(
    user: Auditor,
    ctx: StoreCtx,
    format: Annotated[Literal["csv", "fhir"], Query(description="csv or fhir (AuditEvent).")],
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    username: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    outcome: Annotated[str, Query(max_length=16)] = "",
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Response:
    """The filtered log, newest first (at most 10,000 entries), as CSV or as a FHIR Bundle
    of `AuditEvent`s (IHE Basic Audit Log Patterns); the export is audited."""
    del user
    where = _filter(ctx, patient_id, username, action, outcome, since, until)
    body = export_audit(ctx, where, format)
    media = "text/csv" if format == "csv" else "application/fhir+json"
    return Response(body, media_type=media)


@router.get("/verify", response_model=AuditVerificationOut)
def verify_chain(user: Auditor, ctx: StoreCtx) -> AuditVerificationOut:
    """Recompute the hash chain and report the first entry edited, moved or removed."""
    del user
    result = verify_audit_chain(ctx)
    return AuditVerificationOut.model_validate(result)
