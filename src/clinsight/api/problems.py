"""RFC 9457 problem details: every error the API returns, with a message a person can act on.

Domain code raises `ClinsightError` subclasses; this module alone turns them into
HTTP statuses. Unexpected exceptions become a 500 without internals (the trace
goes to the log, never PHI: exception messages of the domain carry ids only).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clinsight.errors import (
    AccessError,
    AuthenticationError,
    ClinsightError,
    ConfigurationError,
    DataError,
    DataNotFoundError,
    DuplicateRecordError,
    IntegrityError,
    InvalidInputError,
    ModelError,
    ModelNotFoundError,
    PatientMismatchError,
    PermissionDeniedError,
    RecordNotFoundError,
    RegistryError,
    StoreError,
)

__all__ = [
    "PROBLEM_JSON",
    "PROBLEM_RESPONSES",
    "install_problem_handlers",
    "problem_response",
    "status_for",
]

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
# Documented on every API operation, so clients (and schemathesis) know each error's shape.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
    for status, text in {
        400: "The body cannot be parsed (malformed JSON or form).",
        401: "No, expired or revoked credentials.",
        403: "The role or the care team does not allow it (audited).",
        404: "No such record or model.",
        409: "A unique value exists already, a registry conflict, or a DICOM file naming "
        "another patient than the chart (confirm with confirm_patient_mismatch=true).",
        413: "The upload is too large.",
        415: "The upload is not a recognised image.",
        422: "The request does not match the schema, or the input is invalid.",
        503: "The store or the model is unavailable.",
    }.items()
}

# Most specific first: the first class the error is an instance of decides the status.
STATUS_BY_ERROR: tuple[tuple[type[ClinsightError], int, str], ...] = (
    (AuthenticationError, 401, "Authentication required"),
    (PermissionDeniedError, 403, "Access denied"),
    (AccessError, 403, "Access denied"),
    (RecordNotFoundError, 404, "Not found"),
    (ModelNotFoundError, 404, "Model not found"),
    (DataNotFoundError, 404, "Data not found"),
    (DuplicateRecordError, 409, "Already exists"),
    (PatientMismatchError, 409, "Patient mismatch"),
    (DataError, 422, "Invalid input"),
    (IntegrityError, 503, "Model artifact failed verification"),
    (RegistryError, 409, "Model registry conflict"),
    (ModelError, 503, "Model unavailable"),
    (ConfigurationError, 503, "Service misconfigured"),
    (StoreError, 503, "Store unavailable"),
)


def status_for(error: ClinsightError) -> tuple[int, str]:
    """The HTTP status and problem title for a domain error."""
    for cls, status, title in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status, title
    return 500, "Internal error"


HtmlErrorPage = Callable[[Request, int, str, str], Response]
"""Renders an error for a browser: (request, status, title, detail) -> an HTML page."""

MACHINE_PREFIXES = ("/api/", "/cds-services", "/health", "/ready", "/metrics")


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not the API, CDS Hooks or the probes): its Accept
    header names text/html."""
    path = request.url.path
    if path.startswith(MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response (type is about:blank: the status and title say it all)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _server_folders(request: Request) -> list[str]:
    """The server's own folders (state home, registry, data, files, the Python prefix)."""
    state = getattr(request.app.state, "clinsight", None)
    folders = {sys.prefix, str(Path.home())}
    if state is not None:
        settings = state.settings
        folders |= {str(settings.home), str(settings.resolved_registry_dir),
                    str(settings.resolved_data_dir), str(settings.resolved_files_dir)}  # fmt: skip
    return sorted((f for f in folders if len(f) > 1), key=len, reverse=True)


def withhold_paths(detail: str, folders: list[str]) -> str:
    """`detail` with every path under one of `folders` replaced by words: a client is never
    told where the server keeps its files (the log and the command line still are)."""
    for folder in folders:
        detail = re.sub(re.escape(folder) + r"[^\s'\",;)]*", "(a server folder)", detail)
    return detail


def _answer(
    request: Request,
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """problem+json, or the web's HTML error page when a browser asks for a page."""
    html_page: HtmlErrorPage | None = getattr(request.app.state, "html_error_page", None)
    if html_page is not None and wants_html(request):
        page = html_page(request, status, title, detail)
        if headers:
            page.headers.update(headers)
        return page
    return problem_response(
        status, title, detail, instance=request.url.path, headers=headers, **extra
    )


async def _clinsight_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClinsightError)
    status, title = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500:
        logger.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInputError):
        extra["errors"] = [
            {"location": f"inputs.{feature}", "message": message}
            for feature, message in exc.fields.items()
        ]
    if isinstance(exc, PatientMismatchError):
        extra["errors"] = [
            {"location": f"dicom.{field}", "message": message}
            for field, message in exc.mismatches.items()
        ]
    detail = withhold_paths(str(exc), _server_folders(request))
    return _answer(request, status, title, detail, headers, **extra)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Request refused")
    if exc.status_code == 404 and wants_html(request):
        detail = "there is no page at this address; check the link or start from the home page"
    else:
        detail = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return _answer(request, exc.status_code, title, detail, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
        for err in exc.errors()
    ]
    if wants_html(request):  # a form: name the fields in words, not their schema path
        names = {str(err.get("loc", ("",))[-1]).replace("_", " ") for err in exc.errors()}
        fields = ", ".join(sorted(names))
        return _answer(request, 422, "Invalid form", f"please fill in or correct: {fields}")
    where = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
    return problem_response(
        422,
        "Invalid request",
        f"the request does not match the API schema ({where}); fix these fields",
        instance=request.url.path,
        errors=errors,
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    logger.error("database unavailable on %s: %s", request.url.path, exc)
    return _answer(
        request,
        503,
        "Store unavailable",
        "the database did not answer (unreachable, busy or out of space), so the request "
        "was not completed; try again shortly or tell the admin if it persists",
        {"Retry-After": "5"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected %s on %s", type(exc).__name__, request.url.path)
    return _answer(
        request,
        500,
        "Internal error",
        "the server failed unexpectedly; the incident is logged, try again or tell the admin",
    )


def install_problem_handlers(app: FastAPI, html_page: HtmlErrorPage | None = None) -> None:
    """Make every error response of `app` problem+json; with `html_page`, a browser asking
    for a page outside the API gets that HTML page instead."""
    app.state.html_error_page = html_page
    app.add_exception_handler(ClinsightError, _clinsight_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
