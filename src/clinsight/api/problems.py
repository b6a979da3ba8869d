"""RFC 9457 problem details: every error the API returns, with a message a person can act on.

Domain code raises `ClinsightError` subclasses; this module alone turns them into
HTTP statuses. Unexpected exceptions become a 500 without internals (the trace
goes to the log, never PHI: exception messages of the domain carry ids only).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    ImplausibleInputError,
    IntegrityError,
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


async def _clinsight_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClinsightError)
    status, title = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500:
        logger.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, ImplausibleInputError):
        extra["errors"] = [
            {"location": f"inputs.{feature}", "message": message}
            for feature, message in exc.fields.items()
        ]
    if isinstance(exc, PatientMismatchError):
        extra["errors"] = [
            {"location": f"dicom.{field}", "message": message}
            for field, message in exc.mismatches.items()
        ]
    return problem_response(
        status, title, str(exc), instance=request.url.path, headers=headers, **extra
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Request refused")
    return problem_response(
        exc.status_code,
        title,
        str(exc.detail),
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
        for err in exc.errors()
    ]
    where = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
    return problem_response(
        422,
        "Invalid request",
        f"the request does not match the API schema ({where}); fix these fields",
        instance=request.url.path,
        errors=errors,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable on %s: %s", request.url.path, exc)
    return problem_response(
        503,
        "Store unavailable",
        "the database did not answer (unreachable, busy or out of space), so the request "
        "was not completed; try again shortly or tell the admin if it persists",
        instance=request.url.path,
        headers={"Retry-After": "5"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected %s on %s", type(exc).__name__, request.url.path)
    return problem_response(
        500,
        "Internal error",
        "the server failed unexpectedly; the incident is logged, try again or tell the admin",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error response of `app` problem+json."""
    app.add_exception_handler(ClinsightError, _clinsight_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
