"""Use case: the clinician's worklist — image findings on their patients not yet reviewed
(by default), newest first, filtered by model, review status, indeterminate and refused,
a page at a time with the total count. Only patients the clinician may open appear
(care team and live break-glass; `security.workspace`)."""

from __future__ import annotations

from clinsight.security import workspace
from clinsight.store.repositories import StoreContext
from clinsight.store.worklist import ReviewStatus, WorklistFilter, WorklistPage

__all__ = ["REVIEW_STATUSES", "WorklistFilter", "WorklistPage", "tri_state", "worklist"]

REVIEW_STATUSES: tuple[ReviewStatus, ...] = ("unreviewed", "reviewed", "all")


def tri_state(text: str) -> bool | None:
    """A filter field as True ("only"), False ("none") or None (anything else: either)."""
    return {"only": True, "none": False}.get(text.strip().lower())


def worklist(
    ctx: StoreContext, where: WorklistFilter, *, limit: int = 50, offset: int = 0
) -> tuple[WorklistPage, list[str]]:
    """One page of the worklist and the models the filter can name; the read is audited
    (one entry, and one per patient shown) and committed.

    Raises:
        PermissionDeniedError: the actor is not a clinician (the denial is committed).
    """
    page = workspace.read_worklist(ctx, where, limit=limit, offset=offset)
    models = workspace.worklist_models(ctx)
    ctx.session.commit()
    return page, models
