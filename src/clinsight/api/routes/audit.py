"""The audit log for auditors: newest entries first, and a verification of the whole chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clinsight.api.deps import Auditor, StoreCtx
from clinsight.api.schemas import AuditEntryOut, AuditVerificationOut
from clinsight.services.audit import audit_entries, verify_audit_chain

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryOut])
def entries(
    user: Auditor,
    ctx: StoreCtx,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (at most 100).")] = 50,
    before_seq: Annotated[int | None, Query(ge=1, description="Page before this seq.")] = None,
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
) -> list[AuditEntryOut]:
    """Audit entries newest first; page with `before_seq` (this read is audited too)."""
    del user
    found = audit_entries(ctx, limit=limit, before_seq=before_seq, patient_id=patient_id)
    return [AuditEntryOut.model_validate(e) for e in found]


@router.get("/verify", response_model=AuditVerificationOut)
def verify_chain(user: Auditor, ctx: StoreCtx) -> AuditVerificationOut:
    """Recompute the hash chain and report the first entry edited, moved or removed."""
    del user
    result = verify_audit_chain(ctx)
    return AuditVerificationOut.model_validate(result)
