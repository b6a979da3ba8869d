"""Web pages of administration and emergency access: users and care teams (admins),
break-glass (clinicians) and the auditors' list of grants.

They call the same services as the API and `clinsight users` / `clinsight care-team`.
Every form carries the session's CSRF token. A refused action (a taken name, disabling
yourself or the last admin, an unknown MRN) comes back on its page with the message; a
temporary password is shown once, on the page that answers the reset, never in a URL.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from clinsight.api.problems import status_for
from clinsight.errors import AuthenticationError, ClinsightError
from clinsight.security.access import MIN_BREAK_GLASS_REASON
from clinsight.services.break_glass import emergency_lookup, grant_log
from clinsight.services.care_teams import CareTeam, add_member, care_team, remove_member
from clinsight.services.patients import open_break_glass
from clinsight.services.users import (
    change_account_role,
    create_account,
    list_users,
    reset_account_password,
    set_account_active,
)
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.web.pages import Csrf, Db, State, guard_page, redirect_to, render_page
from clinsight.web.session import WebSession, check_csrf

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Mrn = Annotated[str, Form(min_length=1, max_length=64)]
Username = Annotated[str, Form(min_length=1, max_length=64)]


def _users_page(
    request: Request, web: WebSession, ctx: StoreContext, status: int = 200, **values: Any
) -> Response:
    return render_page(
        request,
        "admin_users.html",
        web,
        status,
        users=list_users(ctx),
        roles=[r.value for r in Role],
        **values,
    )


def _refused(exc: ClinsightError) -> bool:
    """Whether a page shows `exc` on its own form (not a login problem)."""
    return not isinstance(exc, AuthenticationError)


@router.get("/admin/users")
def users(request: Request, state: State, session: Db) -> Response:
    """Accounts with role, state, lockout and creation time, and what an admin can do."""
    return guard_page(request, state, session, lambda web, ctx: _users_page(request, web, ctx))


def _user_action(request: Request, state: State, session: Db, csrf: str, act: Any) -> Response:
    """Run `act(web, ctx)` (returns the notice) and show the users page with the outcome."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        try:
            values: dict[str, Any] = act(web, ctx)
        except ClinsightError as exc:
            if not _refused(exc):
                raise
            session.rollback()
            return _users_page(request, web, ctx, status_for(exc)[0], error=str(exc))
        return _users_page(request, web, ctx, **values)

    return guard_page(request, state, session, page)


@router.post("/admin/users")
def create_user(
    request: Request,
    state: State,
    session: Db,
    csrf: Csrf,
    username: Username,
    password: Annotated[str, Form(max_length=256)],
    role: Annotated[Role, Form()],
) -> Response:
    """Create an account."""

    def act(web: WebSession, ctx: StoreContext) -> dict[str, Any]:
        made = create_account(
            session,
            state.settings,
            username=username,
            password=password,
            role=role,
            actor=web.principal,
        )
        return {"notice": f"Created {made.role} {made.username}."}

    return _user_action(request, state, session, csrf, act)


@router.post("/admin/users/{user_id}/disable")
def disable_user(request: Request, state: State, session: Db, user_id: str, csrf: Csrf) -> Response:
    """Disable an account: its sessions end at once."""

    def act(web: WebSession, ctx: StoreContext) -> dict[str, Any]:
        done = set_account_active(ctx, user_id, active=False)
        return {"notice": f"Disabled {done.username}; their sessions have ended."}

    return _user_action(request, state, session, csrf, act)


@router.post("/admin/users/{user_id}/enable")
def enable_user(request: Request, state: State, session: Db, user_id: str, csrf: Csrf) -> Response:
    """Enable a disabled account again."""

    def act(web: WebSession, ctx: StoreContext) -> dict[str, Any]:
        done = set_account_active(ctx, user_id, active=True)
        return {"notice": f"Enabled {done.username}."}

    return _user_action(request, state, session, csrf, act)


@router.post("/admin/users/{user_id}/reset-password")
def reset_password(
    request: Request, state: State, session: Db, user_id: str, csrf: Csrf
) -> Response:
    """A temporary password, shown once on this page; the account's sessions end."""

    def act(web: WebSession, ctx: StoreContext) -> dict[str, Any]:
        reset = reset_account_password(ctx, state.settings, user_id)
        return {"reset": reset}

    return _user_action(request, state, session, csrf, act)


@router.post("/admin/users/{user_id}/role")
def change_role(
    request: Request,
    state: State,
    session: Db,
    user_id: str,
    csrf: Csrf,
    role: Annotated[Role, Form()],
) -> Response:
    """Give an account another role; its sessions end."""

    def act(web: WebSession, ctx: StoreContext) -> dict[str, Any]:
        done = change_account_role(ctx, user_id, role)
        return {"notice": f"{done.username} is now {done.role}; their sessions have ended."}

    return _user_action(request, state, session, csrf, act)


def _teams_page(
    request: Request,
    web: WebSession,
    ctx: StoreContext,
    *,
    status: int = 200,
    team: CareTeam | None = None,
    mrn: str = "",
    **values: Any,
) -> Response:
    accounts = list_users(ctx)  # admins only: anyone else is refused here
    clinicians = [u.username for u in accounts if u.role is Role.CLINICIAN and u.active]
    return render_page(
        request,
        "admin_care_teams.html",
        web,
        status,
        team=team,
        mrn=mrn,
        clinicians=clinicians,
        **values,
    )


@router.get("/admin/care-teams")
def care_teams(request: Request, state: State, session: Db) -> Response:
    """Look up a patient's care team by MRN, add a clinician, remove one."""
    return guard_page(request, state, session, lambda web, ctx: _teams_page(request, web, ctx))


def _team_action(
    request: Request, state: State, session: Db, csrf: str, mrn: str, act: Any
) -> Response:
    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        try:
            team, notice = act(ctx)
        except ClinsightError as exc:
            if not _refused(exc):
                raise
            session.rollback()
            return _teams_page(
                request, web, ctx, status=status_for(exc)[0], mrn=mrn, error=str(exc)
            )
        return _teams_page(request, web, ctx, team=team, mrn=mrn, notice=notice)

    return guard_page(request, state, session, page)


@router.post("/admin/care-teams")
def show_care_team(request: Request, state: State, session: Db, csrf: Csrf, mrn: Mrn) -> Response:
    """The care team of the patient with this MRN (the MRN stays out of the URL)."""
    return _team_action(request, state, session, csrf, mrn, lambda ctx: (care_team(ctx, mrn), None))


@router.post("/admin/care-teams/add")
def add_to_care_team(
    request: Request, state: State, session: Db, csrf: Csrf, mrn: Mrn, username: Username
) -> Response:
    """Put a clinician on a patient's care team."""

    def act(ctx: StoreContext) -> tuple[CareTeam, str]:
        return add_member(ctx, mrn, username), f"{username} is on this patient's care team."

    return _team_action(request, state, session, csrf, mrn, act)


@router.post("/admin/care-teams/remove")
def remove_from_care_team(
    request: Request, state: State, session: Db, csrf: Csrf, mrn: Mrn, username: Username
) -> Response:
    """Take a clinician off a patient's care team."""

    def act(ctx: StoreContext) -> tuple[CareTeam, str]:
        return remove_member(ctx, mrn, username), f"{username} is off this patient's care team."

    return _team_action(request, state, session, csrf, mrn, act)


def _break_glass_page(
    request: Request,
    state: State,
    web: WebSession,
    ctx: StoreContext,
    mrn: str,
    patient: str,
    status: int = 200,
    **values: Any,
) -> Response:
    asked = bool(mrn.strip() or patient.strip())
    lookup = emergency_lookup(ctx, mrn=mrn, patient_id=patient.strip()) if asked else None
    if lookup is None:
        emergency_lookup(ctx)  # the empty form too is for clinicians only
    return render_page(
        request,
        "break_glass.html",
        web,
        status,
        mrn=mrn,
        lookup=lookup,
        most=state.settings.break_glass_minutes,
        min_reason=MIN_BREAK_GLASS_REASON,
        **values,
    )


@router.get("/break-glass")
def break_glass_form(
    request: Request, state: State, session: Db, mrn: str = "", patient: str = ""
) -> Response:
    """Find a patient off the clinician's care team by MRN (or by the record id a refusal
    named) and ask for emergency access with a reason and a duration."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        return _break_glass_page(request, state, web, ctx, mrn[:64], patient[:36])

    return guard_page(request, state, session, page)


@router.post("/break-glass")
def break_glass(
    request: Request,
    state: State,
    session: Db,
    csrf: Csrf,
    patient_id: Annotated[str, Form(min_length=1, max_length=36)],
    reason: Annotated[str, Form(max_length=1000)],
    minutes: Annotated[int, Form(ge=1, le=24 * 60)],
    mrn: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Open emergency access (audited, flagged, expiring) and go to the patient."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        try:
            open_break_glass(ctx, state.settings, patient_id, reason, minutes=minutes)
        except ClinsightError as exc:
            if not _refused(exc):
                raise
            session.rollback()
            return _break_glass_page(
                request,
                state,
                web,
                ctx,
                mrn,
                patient_id,
                status_for(exc)[0],
                error=str(exc),
                reason=reason,
            )
        return redirect_to(f"/patients/{patient_id}", web)

    return guard_page(request, state, session, page)


@router.get("/audit/break-glass")
def break_glass_log(request: Request, state: State, session: Db) -> Response:
    """Active and recent break-glass grants (auditors): who, which patient record, why, and
    from when to when; patients by record reference only."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        found = grant_log(ctx, limit=200)
        return render_page(request, "audit_break_glass.html", web, grants=found)

    return guard_page(request, state, session, page)
