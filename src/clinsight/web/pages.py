"""Web pages: login, patients, patient timeline, upload → result, feedback, models, audit.

Pages call the same services and store functions as the API, so access checks,
encryption and audit are identical. Every form carries the session's CSRF token.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy.orm import Session

from clinsight.api.deps import AppState, get_db, get_state
from clinsight.api.problems import status_for
from clinsight.api.schemas import ner_test_f1
from clinsight.api.uploads import read_upload
from clinsight.errors import AuthenticationError, ClinsightError, DataError, PatientMismatchError
from clinsight.registry.cards import human_key
from clinsight.registry.kinds import list_versions
from clinsight.registry.ner import NerModelVersion
from clinsight.registry.versions import ModelKind, RegisteredVersion
from clinsight.services.audit import audit_filter, audit_page, export_audit, verify_audit_chain
from clinsight.services.auth import log_in, log_out
from clinsight.services.break_glass import emergency_lookup
from clinsight.services.models import StageActor
from clinsight.services.monitoring import model_monitoring, propose_recalibration
from clinsight.services.patient_record import patient_fhir_bundle, patient_header, patient_record
from clinsight.services.patients import register_patient, search_patients
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
from clinsight.services.reports import sign_finding_report
from clinsight.services.segmentation import production_segmenters
from clinsight.store.audit import AuditFilter, Outcome
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
    "error_page",
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


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    """The HTML page a browser gets for an error outside a page's own handling (an unknown
    address, a form the server could not read, a failure): never raw JSON."""
    return render_page(request, "error.html", None, status, message=detail, title=title)


def redirect_to(url: str, web: WebSession | None = None) -> Response:
    response = RedirectResponse(url, status_code=303)
    if web is not None and web.rotated is not None:
        set_session_cookies(response, web.rotated)
    return response


def safe_next(target: str) -> str | None:
    """`target` if it is a path on this site (a deep link to come back to), else None."""
    if target.startswith("/") and not target.startswith(("//", "/\\", "/login", "/logout")):
        return target[:2000]
    return None


def _login_redirect(request: Request | None = None, *, logged_out: bool = False) -> Response:
    """To the login page; a page asked for by GET is remembered, so the login returns to it."""
    url = "/login?logged_out=1" if logged_out else "/login"
    if request is not None and request.method == "GET":
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if (back := safe_next(wanted)) is not None:
            url = f"/login?{urlencode({'next': back})}"
    response = RedirectResponse(url, status_code=303)
    clear_cookies(response)
    return response


def _ctx(state: AppState, session: Session, web: WebSession) -> StoreContext:
    return StoreContext(session, state.keyring, state.settings.resolved_files_dir, web.principal)


def guard_page(request: Request, state: AppState, session: Session, call: Any) -> Response:
    """Run a page for the logged-in user; domain errors become an error page."""
    web = web_session(request, state, session)
    if web is None:
        return _login_redirect(request)
    try:
        result: Response = call(web, _ctx(state, session, web))
        return result
    except AuthenticationError as exc:
        session.rollback()
        return render_page(request, "error.html", web, 401, message=str(exc))
    except ClinsightError as exc:
        session.rollback()
        return render_page(request, "error.html", web, status_for(exc)[0], message=str(exc),
                           help_url=getattr(exc, "help_url", None))  # fmt: skip


@router.get("/login")
def login_form(request: Request, next: str = "", logged_out: bool = False) -> Response:
    """The login page (after a log-out, it says so; `next` is the page to return to)."""
    token = new_login_csrf()
    notice = "You are logged out." if logged_out else None
    response = render_page(
        request, "login.html", None, login_csrf=token, next=safe_next(next) or "", notice=notice
    )
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
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Check the password, start a session, set the cookies, and go back to the page that
    was asked for (else the role's start page)."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    error = "the form expired; try again"
    if expected and expected == csrf:
        try:
            signed_in = log_in(session, state.issuer, username, password, settings=state.settings)
            response = redirect_to(safe_next(next) or HOME[signed_in.principal.role])
            set_session_cookies(response, signed_in.tokens)
            response.delete_cookie(LOGIN_CSRF_COOKIE)
            return response
        except AuthenticationError as exc:
            error = str(exc)
    token = new_login_csrf()
    response = render_page(
        request, "login.html", None, 401, login_csrf=token, error=error,
        username=username, next=safe_next(next) or "",
    )  # fmt: skip
    response.set_cookie(LOGIN_CSRF_COOKIE, token, secure=True, httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(request: Request, state: State, session: Db, csrf: Csrf) -> Response:
    """End the session at once and forget the cookies."""
    web = web_session(request, state, session)
    if web is not None:
        check_csrf(state, web, csrf)
        log_out(session, state.issuer, web.session_id)
    return _login_redirect(logged_out=True)


@router.get("/")
def home(request: Request, state: State, session: Db) -> Response:
    """Each role's start page."""
    return guard_page(
        request, state, session, lambda web, ctx: redirect_to(HOME[web.principal.role])
    )


PATIENTS_PER_PAGE = 50


@router.get("/patients")
def patients(request: Request, state: State, session: Db, q: str = "", offset: int = 0) -> Response:
    """The clinician's patients, searchable by part of the MRN or name, a page at a time;
    a search that finds none of them but is a patient's MRN offers emergency access."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        found = search_patients(ctx, q[:200], limit=PATIENTS_PER_PAGE, offset=max(0, offset))
        emergency = emergency_lookup(ctx, mrn=q[:64]) if q.strip() and not found.total else None
        shown_to = found.offset + len(found.records)
        pages = {
            "previous": max(0, found.offset - PATIENTS_PER_PAGE) if found.offset > 0 else None,
            "next": shown_to if shown_to < found.total else None,
        }
        return render_page(
            request, "patients.html", web, patients=found.records, q=q, total=found.total,
            first=found.offset + 1 if found.records else 0, last=shown_to, pages=pages,
            today=date.today().isoformat(), emergency=emergency,
        )  # fmt: skip

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
    """The patient record: the header and one timeline of studies with findings and their
    review, notes with their problem list, and risk and survival assessments, newest first;
    with the upload form."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        segmenters = production_segmenters(state.settings.resolved_registry_dir)
        return render_page(
            request, "patient.html", web, record=patient_record(ctx, patient_id),
            segmenters=segmenters,
        )  # fmt: skip

    return guard_page(request, state, session, page)


@router.get("/patients/{patient_id}/fhir")
def patient_fhir(request: Request, state: State, session: Db, patient_id: str) -> Response:
    """The patient's record as a FHIR R4B Bundle, as a download."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        bundle = patient_fhir_bundle(ctx, patient_id)
        headers = {
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="patient-{patient_id}.fhir.json"',
        }
        return JSONResponse(bundle, media_type="application/fhir+json", headers=headers)

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
                               header=patient_header(ctx, patient_id),
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
    explained = explained_prediction(ctx, state.predictor, prediction_id, lungs=state.lungs)
    view = explained.view
    found = prediction_feedback(ctx, prediction_id)
    record = view.prediction
    labels = model_labels(state.settings.resolved_registry_dir)(
        record.model_name, record.model_version
    )
    overlay, plain = (
        "data:image/png;base64," + base64.b64encode(png or b"").decode("ascii")
        for png in (explained.overlay, explained.plain)
    )
    height, width = explained.source_size
    mine = found.current_of(web.principal.user_id)
    form = form or {
        "reason": (mine.reason if mine else None) or "",
        "override_label": (mine.override_label if mine else None) or "",
    }
    header = patient_header(ctx, view.study.patient_id)
    return render_page(
        request, "result.html", web, status, view=view, overlay=overlay, plain=plain,
        header=header, lungs=explained.lungs,
        cropped=explained.cropped, source=(width, height), side=min(width, height),
        feedback=found, mine=mine, history=found.history_of(web.principal.user_id),
        labels=labels, form=form, **values,
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


@router.post("/predictions/{prediction_id}/report")
def report(request: Request, state: State, session: Db, prediction_id: str, csrf: Csrf) -> Response:
    """The finding's report, signed by the reviewing clinician, as a PDF download; before
    they have reviewed it, the result page says so."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        models_url = str(request.base_url).rstrip("/") + "/models"
        try:
            signed = sign_finding_report(ctx, state.predictor, prediction_id,
                                         models_url=models_url)  # fmt: skip
        except DataError as exc:
            session.rollback()
            return _result_page(request, state, web, ctx, prediction_id, 422,
                                report_error=str(exc))  # fmt: skip
        headers = {
            "Content-Disposition": f'attachment; filename="{signed.filename}"',
            "Cache-Control": "no-store",
            "X-Report-SHA256": signed.signature.sha256,
        }
        return Response(signed.pdf, media_type="application/pdf", headers=headers)

    return guard_page(request, state, session, page)


def _inline_plots(markdown: str, folder: Path) -> str:
    """The card's relative `plots/...` images as data URIs of the version's own files (a
    browser cannot fetch a path inside the registry); a missing plot is said in words."""

    def inline(match: re.Match[str]) -> str:
        alt, target = match.group(1), match.group(2)
        path = (folder / target).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            return f"*(plot {alt} is not in the registry)*"
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{human_key(Path(alt).stem)}](data:image/png;base64,{data})"

    return re.sub(r"!\[([^\]]*)\]\((plots/[^)\s]+\.png)\)", inline, markdown)


def _card_html(path: Path) -> Markup:
    """A model card's Markdown as HTML, its plots inline (raw HTML in the card is escaped,
    not rendered)."""
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    markdown = _inline_plots(path.read_text("utf-8"), path.parent)
    return Markup(renderer.render(markdown))  # noqa: S704 (escaped by markdown-it)


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

        cards = [(m, card(m)) for m in newest_first(ModelKind.IMAGE)]
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


def _day(text: str, field: str) -> datetime | None:
    """A date field of the audit filter as midnight UTC, or None when empty."""
    if not text.strip():
        return None
    try:
        return datetime.combine(date.fromisoformat(text.strip()), time(), tzinfo=UTC)
    except ValueError:
        raise DataError(f"the {field} date must look like 2026-01-31") from None


def _audit_filter(ctx: StoreContext, request: Request) -> tuple[AuditFilter, dict[str, str]]:
    fields = {k: request.query_params.get(k, "")[:200]
              for k in ("user", "patient", "action", "outcome", "since", "until")}  # fmt: skip
    until = _day(fields["until"], "'to'")
    where = audit_filter(
        ctx, username=fields["user"], patient_id=fields["patient"], action=fields["action"],
        outcome=fields["outcome"], since=_day(fields["since"], "'from'"),
        until=until + timedelta(days=1) if until else None,  # the 'to' day is included
    )  # fmt: skip
    return where, fields


@router.get("/audit")
def audit_page_view(
    request: Request, state: State, session: Db, before: int | None = None
) -> Response:
    """The audit log (auditors), newest first, filtered by user, patient, action, outcome
    and time, with the chain verification; one audit entry per view."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        where, fields = _audit_filter(ctx, request)
        found = audit_page(ctx, where, limit=100, before_seq=before)
        check = verify_audit_chain(ctx, audited=False)
        query = urlencode({k: v for k, v in fields.items() if v})
        any_patient = urlencode({k: v for k, v in fields.items() if v and k != "patient"})
        return render_page(
            request, "audit.html", web, entries=found.entries, labels=found.labels,
            check=check, fields=fields, query=query, any_patient=any_patient,
            outcomes=[o.value for o in Outcome],
        )  # fmt: skip

    return guard_page(request, state, session, page)


@router.get("/audit/export.{fmt}")
def audit_export_view(request: Request, state: State, session: Db, fmt: str) -> Response:
    """The filtered log as CSV (`export.csv`) or as FHIR AuditEvents (`export.json`)."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        where, _ = _audit_filter(ctx, request)
        kind = {"csv": "csv", "json": "fhir"}.get(fmt)
        if kind is None:
            raise DataError("export as .csv or .json (FHIR AuditEvent)")
        body = export_audit(ctx, where, kind)
        media = "text/csv" if kind == "csv" else "application/fhir+json"
        name = f"clinsight-audit.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"',
                   "Cache-Control": "no-store"}  # fmt: skip
        return Response(body, media_type=media, headers=headers)

    return guard_page(request, state, session, page)
