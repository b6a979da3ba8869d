"""Web pages of clinical notes: a patient's notes with paste/upload and search, and one note
read back with entities coloured by assertion, the coded problem list, the trained NER
models that read it, and the de-identified version.

Pages use the same services as the API (`services.notes`), so policy, encryption
and audit are identical; forms carry the session's CSRF token.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from clinsight.api.uploads import FHIR_JSON, read_text_upload
from clinsight.errors import DataError
from clinsight.nlp.deid import DeidResult
from clinsight.nlp.pipeline import VOCABULARY_SOURCE, ClinicalEntity
from clinsight.nlp.search import SearchMode
from clinsight.services.notes import (
    create_note,
    note_author,
    note_fhir_bundle,
    patient_notes,
    read_note,
    search_patient_notes,
)
from clinsight.services.patient_record import patient_header
from clinsight.store.notes import MAX_NOTE_CHARS
from clinsight.store.repositories import StoreContext
from clinsight.web.pages import Csrf, Db, State, guard_page, redirect_to, render_page
from clinsight.web.session import WebSession, check_csrf

__all__ = ["ASSERTION_LEGEND", "deidentified_html", "entities_html", "router"]

router = APIRouter(include_in_schema=False)
ASSERTION_LEGEND = (
    ("present", "present in the patient"),
    ("negated", "ruled out / denied"),
    ("possible", "possible, uncertain"),
    ("historical", "past history"),
    ("hypothetical", "hypothetical / conditional"),
    ("family", "family member, not the patient"),
)
MODES: tuple[SearchMode, ...] = ("hybrid", "keyword", "semantic")


def entities_html(text: str, entities: tuple[ClinicalEntity, ...]) -> Markup:
    """The note HTML-escaped, each entity in a ``<mark class="a-ASSERTION">`` with a tooltip
    (kind, assertion, code and, for an entity of a trained NER model, that model)."""
    pieces, cursor = [], 0
    for e in sorted(entities, key=lambda e: e.start):
        code = f" · ICD-10-CM {e.icd10.code} {e.icd10.description}" if e.icd10 else ""
        model = f" · found by {e.source}" if e.source != VOCABULARY_SOURCE else ""
        title = html.escape(f"{e.label.lower()} · {e.assertion}{code}{model}", quote=True)
        pieces += [
            html.escape(text[cursor : e.start]),
            f'<mark class="a-{e.assertion}" title="{title}">{html.escape(e.text)}</mark>',
        ]
        cursor = e.end
    pieces.append(html.escape(text[cursor:]))
    return Markup("".join(pieces))  # noqa: S704 (every piece is escaped above)


def deidentified_html(original: str, result: DeidResult) -> Markup:
    """The de-identified text HTML-escaped, each surrogate in a ``<mark class="phi">``."""
    pieces, cursor = [], 0
    for span, surrogate in zip(result.phi, result.surrogates, strict=True):
        title = html.escape(span.type.value, quote=True)
        pieces += [
            html.escape(original[cursor : span.start]),
            f'<mark class="phi" title="{title}">{html.escape(surrogate)}</mark>',
        ]
        cursor = span.end
    pieces.append(html.escape(original[cursor:]))
    return Markup("".join(pieces))  # noqa: S704 (every piece is escaped above)


@router.get("/patients/{patient_id}/notes")
def notes_page(
    request: Request,
    state: State,
    session: Db,
    patient_id: str,
    q: str = "",
    mode: str = "hybrid",
) -> Response:
    """A patient's notes, the paste/upload form and the search box with highlighted snippets."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        header = patient_header(ctx, patient_id)
        patient = header.patient
        notes = patient_notes(ctx, patient_id)
        search_mode: SearchMode = next((m for m in MODES if m == mode), "hybrid")
        hits = search_patient_notes(ctx, patient_id, q[:500], search_mode) if q.strip() else []
        return render_page(
            request,
            "notes.html",
            web,
            patient=patient,
            notes=notes,
            hits=hits,
            q=q,
            mode=search_mode,
            modes=MODES,
            max_chars=MAX_NOTE_CHARS,
            header=header,
        )

    return guard_page(request, state, session, page)


@router.post("/patients/{patient_id}/notes")
def new_note(
    request: Request,
    state: State,
    session: Db,
    patient_id: str,
    csrf: Csrf,
    text: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Store a pasted or uploaded (.txt) note and open it."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        body = text
        if file is not None and file.filename:
            try:
                body = read_text_upload(file)
            except HTTPException as exc:  # the API's 413/415 become a message on the page
                return render_page(request, "error.html", web, exc.status_code, message=exc.detail)
        if not body.strip():
            raise DataError("the note is empty; paste its text or choose a .txt file")
        note, _ = create_note(ctx, patient_id, body)
        return redirect_to(f"/notes/{note.id}", web)

    return guard_page(request, state, session, page)


@router.get("/notes/{note_id}")
def note_page(request: Request, state: State, session: Db, note_id: str) -> Response:
    """One note: entities coloured by assertion, problem list with ICD-10-CM, de-identified."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        note, reading = read_note(ctx, note_id)
        header = patient_header(ctx, note.patient_id)
        return render_page(
            request,
            "note.html",
            web,
            header=header,
            author=note_author(ctx, note),
            note=note,
            reading=reading,
            marked=entities_html(note.text, reading.annotation.entities),
            deidentified=deidentified_html(note.text, reading.deidentified),
            legend=ASSERTION_LEGEND,
        )

    return guard_page(request, state, session, page)


@router.get("/notes/{note_id}/fhir")
def note_fhir(request: Request, state: State, session: Db, note_id: str) -> Response:
    """The note's FHIR R4B Bundle as a download."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        bundle = note_fhir_bundle(ctx, note_id)
        headers = {
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="note-{note_id}.fhir.json"',
        }
        return JSONResponse(bundle, media_type=FHIR_JSON, headers=headers)

    return guard_page(request, state, session, page)
