"""The clinician's worklist page: findings on their patients not yet reviewed (by default),
newest first, filtered by model, review status, indeterminate and refused, paginated with
the count. The page calls `services.worklist` (policy, audit)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from clinsight.services.patient_record import finding_text
from clinsight.services.worklist import REVIEW_STATUSES, WorklistFilter, tri_state, worklist
from clinsight.store.repositories import StoreContext
from clinsight.store.worklist import ReviewStatus
from clinsight.web.pages import Db, State, guard_page, render_page
from clinsight.web.session import WebSession

__all__ = ["WORKLIST_PER_PAGE", "router"]

router = APIRouter(include_in_schema=False)
WORKLIST_PER_PAGE = 25


@router.get("/worklist")
def worklist_page(
    request: Request,
    state: State,
    session: Db,
    status: str = "unreviewed",
    model: str = "",
    indeterminate: str = "",
    refused: str = "",
    offset: int = 0,
) -> Response:
    """Findings to review, newest first, a page at a time."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        chosen: ReviewStatus = status if status in REVIEW_STATUSES else "unreviewed"
        where = WorklistFilter(status=chosen, model=model.strip()[:128] or None,
                               indeterminate=tri_state(indeterminate),
                               refused=tri_state(refused))  # fmt: skip
        found, models = worklist(ctx, where, limit=WORKLIST_PER_PAGE, offset=max(0, offset))
        fields = {"status": chosen, "model": model, "indeterminate": indeterminate,
                  "refused": refused}  # fmt: skip
        query = urlencode({k: v for k, v in fields.items() if v})
        shown_to = found.offset + len(found.items)
        pages = {
            "previous": max(0, found.offset - WORKLIST_PER_PAGE) if found.offset > 0 else None,
            "next": shown_to if shown_to < found.total else None,
        }
        return render_page(
            request, "worklist.html", web, found=found, models=models, fields=fields,
            query=query, pages=pages, statuses=REVIEW_STATUSES, finding=finding_text,
            first=found.offset + 1 if found.items else 0, last=shown_to,
        )  # fmt: skip

    return guard_page(request, state, session, page)
