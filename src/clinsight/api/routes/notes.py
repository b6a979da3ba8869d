"""Clinical notes: store (pasted or uploaded .txt), list, read with annotation, search a
patient's notes, the FHIR Bundle of a note, and ad-hoc annotation without storage.

On SQLite a request's first query takes the store's write lock (BEGIN IMMEDIATE) until
its commit, so the reading of notes (NER, de-identification, search) runs with no
transaction open: the access check and its audit entry are committed before it (in
`services.notes`), and a new note is annotated before it is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse

from clinsight.api.deps import Clinician, StoreCtx
from clinsight.api.note_schemas import (
    AnnotationOut,
    NoteDetailOut,
    NoteIn,
    NoteOut,
    NoteSearchHitOut,
)
from clinsight.api.uploads import FHIR_JSON, read_text_upload
from clinsight.nlp.search import SearchMode
from clinsight.services.notes import (
    NoteReading,
    annotate_text,
    create_note,
    note_fhir_bundle,
    patient_notes,
    read_note,
    search_patient_notes,
)
from clinsight.store.notes import NoteRecord

__all__ = ["router"]

router = APIRouter(tags=["notes"])
FHIR_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {FHIR_JSON: {}}, "description": "A FHIR R4B Bundle (collection)."}
}


def _detail(note: NoteRecord, reading: NoteReading) -> NoteDetailOut:
    return NoteDetailOut(
        **NoteOut.of(note).model_dump(), text=note.text, annotation=AnnotationOut.of(reading)
    )


@router.post("/patients/{patient_id}/notes", response_model=NoteDetailOut, status_code=201)
def create(patient_id: str, body: NoteIn, user: Clinician, ctx: StoreCtx) -> NoteDetailOut:
    """Store a pasted note for a patient (encrypted) and return it annotated."""
    del user
    return _detail(*create_note(ctx, patient_id, body.text))


@router.post("/patients/{patient_id}/notes/file", response_model=NoteDetailOut, status_code=201)
def upload(
    patient_id: str,
    user: Clinician,
    ctx: StoreCtx,
    file: Annotated[UploadFile, File(description="The note as a UTF-8 .txt file.")],
) -> NoteDetailOut:
    """Store an uploaded plain-text note for a patient and return it annotated."""
    del user
    return _detail(*create_note(ctx, patient_id, read_text_upload(file)))


@router.get("/patients/{patient_id}/notes", response_model=list[NoteOut])
def notes(patient_id: str, user: Clinician, ctx: StoreCtx) -> list[NoteOut]:
    """A patient's notes, newest first (metadata; open a note for its text)."""
    del user
    records = patient_notes(ctx, patient_id)
    return [NoteOut.of(r) for r in records]


@router.get("/patients/{patient_id}/notes/search", response_model=list[NoteSearchHitOut])
def search(
    patient_id: str,
    user: Clinician,
    ctx: StoreCtx,
    q: Annotated[str, Query(min_length=1, max_length=500, description="What to look for.")],
    mode: Annotated[SearchMode, Query(description="keyword (BM25), semantic or hybrid.")] = (
        "hybrid"
    ),
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[NoteSearchHitOut]:
    """Search this patient's notes only, with highlighted snippets."""
    del user
    hits = search_patient_notes(ctx, patient_id, q, mode, limit)
    return [NoteSearchHitOut.of(h) for h in hits]


@router.get("/notes/{note_id}", response_model=NoteDetailOut)
def read(note_id: str, user: Clinician, ctx: StoreCtx) -> NoteDetailOut:
    """A note with its entities, problem list and de-identified version."""
    del user
    note, reading = read_note(ctx, note_id)
    return _detail(note, reading)


@router.get("/notes/{note_id}/fhir", response_class=JSONResponse, responses=FHIR_RESPONSE)
def fhir(note_id: str, user: Clinician, ctx: StoreCtx) -> JSONResponse:
    """The note as a FHIR R4B Bundle: its DocumentReference and the Conditions found in it."""
    del user
    bundle = note_fhir_bundle(ctx, note_id)
    return JSONResponse(bundle, media_type=FHIR_JSON, headers={"Cache-Control": "no-store"})


@router.post("/nlp/annotate", response_model=AnnotationOut)
def annotate(body: NoteIn, user: Clinician, ctx: StoreCtx) -> AnnotationOut:
    """Annotate and de-identify text without storing it (the call is audited with the NER
    model versions used, not the text)."""
    del user
    return AnnotationOut.of(annotate_text(ctx, body.text))
