"""Web pages: login, patients, patient timeline, upload → result, feedback, models, audit.

Pages call the same services and store functions as the API, so access checks,
encryption and audit are identical. Every form carries the session's CSRF token.
"""

from __future__ import annotations

import base64
from datetime import date
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session

from clinsight.api.deps import AppState, get_db, get_state
from clinsight.api.problems import status_for
from clinsight.api.schemas import ner_test_f1
from clinsight.api.uploads import read_upload
from clinsight.errors import AuthenticationError, ClinsightError, DataError, PatientMismatchError
from clinsight.registry.kinds import list_versions
from clinsight.registry.ner import NerModelVersion
from clinsight.registry.versions import ModelKind, RegisteredVersion
from clinsight.services.audit import audit_entries, verify_audit_chain
from clinsight.services.auth import log_in, log_out
from clinsight.services.models import StageActor
from clinsight.services.monitoring import model_monitoring, propose_recalibration
from clinsight.services.patients import patient_timeline, register_patient, search_patients
from clinsight.services.predictions import (
    cancel_held_upload,
    confirm_held_upload,
    diagnose_upload,
    explained_prediction,
    give_feedback,
    hold_mismatched_upload,
    model_labels,
    prediction_feedback,
)
from clinsight.store.repositories import StoreContext
from clinsight.store.roles import Role
from clinsight.store.tables import Verdict
from clinsight.web.session import (
    LOGIN_CSRF_COOKIE,
    WebSession,
    check_csrf,
    clear_cookies,
    new_login_csrf,
    set_session_cookies,
    web_session,
)

__all__ = [
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "guard_page",
    "redirect_to",
    "render_page",
    "router",
]

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR, TEMPLATES_DIR = WEB_DIR / "static", WEB_DIR / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
router = APIRouter(include_in_schema=False)
State = Annotated[AppState, Depends(get_state)]
Db = Annotated[Session, Depends(get_db)]
Csrf = Annotated[str, Form()]
HOME = {Role.CLINICIAN: "/patients", Role.ADMIN: "/models", Role.AUDITOR: "/audit"}


def render_page(
    request: Request, name: str, web: WebSession | None, status: int = 200, **values: Any
) -> Response:
    context = {"user": web.principal if web else None, "csrf": web.csrf if web else "", **values}
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    if web is not None and web.rotated is not None:
        set_session_cookies(response, web.rotated)
    return response


def redirect_to(url: str, web: WebSession | None = None) -> Response:
    response = RedirectResponse(url, status_code=303)
    if web is not None and web.rotated is not None:
        set_session_cookies(response, web.rotated)
    return response


def _login_redirect() -> Response:
    response = RedirectResponse("/login", status_code=303)
    clear_cookies(response)
    return response


def _ctx(state: AppState, session: Session, web: WebSession) -> StoreContext:
    return StoreContext(session, state.keyring, state.settings.resolved_files_dir, web.principal)


def guard_page(request: Request, state: AppState, session: Session, call: Any) -> Response:
    """Run a page for the logged-in user; domain errors become an error page."""
    web = web_session(request, state, session)
    if web is None:
        return _login_redirect()
    try:
        result: Response = call(web, _ctx(state, session, web))
        return result
    except AuthenticationError as exc:
        session.rollback()
        return render_page(request, "error.html", web, 401, message=str(exc))
    except ClinsightError as exc:
        session.rollback()
        return render_page(request, "error.html", web, status_for(exc)[0], message=str(exc))


@router.get("/login")
def login_form(request: Request) -> Response:
    """The login page."""
    token = new_login_csrf()
    response = render_page(request, "login.html", None, login_csrf=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, secure=True, httponly=True, samesite="strict")
    return response


@router.post("/login")
def login(
    request: Request,
    state: State,
    session: Db,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf: Csrf,
) -> Response:
    """Check the password, start a session, set the cookies."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    error = "the form expired; try again"
    if expected and expected == csrf:
        try:
            signed_in = log_in(session, state.issuer, username, password, settings=state.settings)
            response = redirect_to(HOME[signed_in.principal.role])
            set_session_cookies(response, signed_in.tokens)
            response.delete_cookie(LOGIN_CSRF_COOKIE)
            return response
        except AuthenticationError as exc:
            error = str(exc)
    token = new_login_csrf()
    response = render_page(request, "login.html", None, 401, login_csrf=token, error=error)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, secure=True, httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(request: Request, state: State, session: Db, csrf: Csrf) -> Response:
    """End the session at once and forget the cookies."""
    web = web_session(request, state, session)
    if web is not None:
        check_csrf(state, web, csrf)
        log_out(session, state.issuer, web.session_id)
    return _login_redirect()


@router.get("/")
def home(request: Request, state: State, session: Db) -> Response:
    """Each role's start page."""
    return guard_page(
        request, state, session, lambda web, ctx: redirect_to(HOME[web.principal.role])
    )


@router.get("/patients")
def patients(request: Request, state: State, session: Db, q: str = "") -> Response:
    """The clinician's patients, searchable by MRN or name."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        found = search_patients(ctx, q[:200])
        return render_page(request, "patients.html", web, patients=found, q=q)

    return guard_page(request, state, session, page)


@router.post("/patients")
def new_patient(
    request: Request,
    state: State,
    session: Db,
    csrf: Csrf,
    mrn: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=200)],
    birth_date: Annotated[date, Form()],
    sex: Annotated[str, Form(max_length=16)],
) -> Response:
    """Register a patient and open their page."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        record = register_patient(ctx, mrn=mrn, name=name, birth_date=birth_date, sex=sex)
        return redirect_to(f"/patients/{record.id}", web)

    return guard_page(request, state, session, page)


@router.get("/patients/{patient_id}")
def patient(request: Request, state: State, session: Db, patient_id: str) -> Response:
    """A patient's timeline of studies and predictions, with the upload form."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        timeline = patient_timeline(ctx, patient_id)
        return render_page(request, "patient.html", web, timeline=timeline)

    return guard_page(request, state, session, page)


@router.post("/patients/{patient_id}/studies")
def upload(
    request: Request,
    state: State,
    session: Db,
    patient_id: str,
    csrf: Csrf,
    file: Annotated[UploadFile, File()],
) -> Response:
    """Store the uploaded image, diagnose it, and show the result; a DICOM naming another
    patient than the chart is held and the clinician asked to confirm it."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        try:
            content = read_upload(file, state.settings.upload_max_bytes)
        except Exception as exc:  # the API's 413/415 become a message on the page
            return render_page(
                request, "error.html", web, 415, message=str(getattr(exc, "detail", exc))
            )
        try:
            _, record = diagnose_upload(
                ctx, state.uploads, state.predictor(), patient_id, content, state.settings
            )
        except PatientMismatchError as exc:
            session.rollback()
            token = hold_mismatched_upload(ctx, patient_id, content)
            return render_page(request, "confirm_patient.html", web, 409, patient_id=patient_id,
                               token=token, mismatches=list(exc.mismatches.values()))  # fmt: skip
        state.metrics.predictions.labels(record.model_name, record.model_version).inc()
        return redirect_to(f"/predictions/{record.id}", web)

    return guard_page(request, state, session, page)


@router.post("/patients/{patient_id}/held/{token}")
def confirm_upload(
    request: Request,
    state: State,
    session: Db,
    patient_id: str,
    token: str,
    csrf: Csrf,
    action: Annotated[str, Form(pattern="^(confirm|cancel)$")],
) -> Response:
    """Confirm a held upload (diagnosed and filed under this patient, the mismatch recorded
    and audited) or cancel it (forgotten)."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        if action == "cancel":
            cancel_held_upload(ctx, patient_id, token)
            return redirect_to(f"/patients/{patient_id}?cancelled=1", web)
        _, record = confirm_held_upload(
            ctx, state.uploads, state.predictor(), patient_id, token, state.settings
        )
        state.metrics.predictions.labels(record.model_name, record.model_version).inc()
        return redirect_to(f"/predictions/{record.id}", web)

    return guard_page(request, state, session, page)


def _result_page(
    request: Request,
    state: AppState,
    web: WebSession,
    ctx: StoreContext,
    prediction_id: str,
    status: int = 200,
    form: dict[str, str] | None = None,
    **values: Any,
) -> Response:
    """The result page; the feedback form holds `form` (as submitted), else the clinician's
    current verdict."""
    view, png = explained_prediction(ctx, state.predictor, prediction_id)
    found = prediction_feedback(ctx, prediction_id)
    record = view.prediction
    labels = model_labels(state.settings.resolved_registry_dir)(
        record.model_name, record.model_version
    )
    overlay = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    mine = found.current_of(web.principal.user_id)
    form = form or {
        "reason": (mine.reason if mine else None) or "",
        "override_label": (mine.override_label if mine else None) or "",
    }
    return render_page(
        request, "result.html", web, status, view=view, overlay=overlay, feedback=found,
        mine=mine, history=found.history_of(web.principal.user_id), labels=labels, form=form,
        **values,
    )  # fmt: skip


@router.get("/predictions/{prediction_id}")
def result(request: Request, state: State, session: Db, prediction_id: str) -> Response:
    """The finding: label, calibrated probability, model version and card, Grad-CAM overlay,
    and the clinician's current verdict (pre-filled) with its history."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        saved = request.query_params.get("saved")
        return _result_page(request, state, web, ctx, prediction_id, saved=saved)

    return guard_page(request, state, session, page)


@router.post("/predictions/{prediction_id}/feedback")
def feedback(
    request: Request,
    state: State,
    session: Db,
    prediction_id: str,
    csrf: Csrf,
    verdict: Annotated[Verdict, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
    override_label: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Record the clinician's verdict (replacing their earlier one) and return to the
    result; a refused verdict is shown on the form, as submitted."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        try:
            give_feedback(
                ctx, state.settings.resolved_registry_dir, prediction_id, verdict,
                reason=reason, override_label=override_label or None,
            )  # fmt: skip
        except DataError as exc:
            session.rollback()
            form = {"reason": reason, "override_label": override_label}
            return _result_page(
                request, state, web, ctx, prediction_id, 422, error=str(exc), form=form
            )
        return redirect_to(f"/predictions/{prediction_id}?saved={verdict.value}", web)

    return guard_page(request, state, session, page)


def _plots(folder: Path) -> list[tuple[str, str]]:
    return [
        (
            png.stem.replace("_", " "),
            "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode(),
        )
        for png in sorted((folder / "plots").glob("*.png"))
    ]


def _card_html(path: Path) -> Markup:
    """A model card's Markdown as HTML (raw HTML in the card is escaped, not rendered)."""
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    return Markup(renderer.render(path.read_text("utf-8")))  # noqa: S704 (escaped by markdown-it)


@router.get("/models")
def models(request: Request, state: State, session: Db) -> Response:
    """Registered models of every kind: image models with their cards and ROC / reliability
    plots, the risk models, then the NER models the note pipeline can use, with their test
    F1 per label and cards."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        registry = state.settings.resolved_registry_dir

        def newest_first(kind: ModelKind) -> list[RegisteredVersion]:
            return list(reversed(list_versions(registry, kind)))

        def card(model: RegisteredVersion) -> Markup | str:
            return _card_html(model.card_path) if model.card_path.is_file() else ""

        cards = [(m, card(m), _plots(m.path)) for m in newest_first(ModelKind.IMAGE)]
        risk = [(m, card(m)) for m in newest_first(ModelKind.RISK)]
        ner = [
            (m, ner_test_f1(cast(NerModelVersion, m)), card(m)) for m in newest_first(ModelKind.NER)
        ]
        return render_page(request, "models.html", web, cards=cards, risk=risk, ner=ner)

    return guard_page(request, state, session, page)


@router.get("/models/image/{name}/{version}/monitoring")
def monitoring_page(
    request: Request, state: State, session: Db, name: str, version: int, proposed: int = 0
) -> Response:
    """An image model version in use, by ISO week against its validation baseline, with the
    drift banner and (admins) the button proposing a recalibration."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        report = model_monitoring(ctx, state.settings, name, version)
        return render_page(request, "monitoring.html", web, report=report, proposed=proposed)

    return guard_page(request, state, session, page)


@router.post("/models/image/{name}/{version}/recalibration")
def recalibration(
    request: Request, state: State, session: Db, name: str, version: int, csrf: Csrf
) -> Response:
    """Propose a recalibration (admins): a new candidate version, or the reason it is refused
    shown on the monitoring page."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        actor = StageActor.of(web.principal, via="web")
        try:
            found = propose_recalibration(ctx, state.settings, actor, name, version)
        except DataError as exc:
            session.rollback()
            report = model_monitoring(ctx, state.settings, name, version)
            return render_page(request, "monitoring.html", web, 422, report=report,
                               error=str(exc))  # fmt: skip
        return redirect_to(
            f"/models/image/{name}/{version}/monitoring?proposed={found.model.version}", web
        )

    return guard_page(request, state, session, page)


@router.get("/audit")
def audit_page(request: Request, state: State, session: Db, before: int | None = None) -> Response:
    """The audit log (auditors), newest first, with the chain verification."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        entries = audit_entries(ctx, limit=100, before_seq=before)
        check = verify_audit_chain(ctx, audited=False)
        return render_page(request, "audit.html", web, entries=entries, check=check)

    return guard_page(request, state, session, page)
