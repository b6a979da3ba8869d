"""Use case: read a clinical note — entities with assertion, problem list, de-identified
text — search a patient's notes, and hand a note out as FHIR.

Stored notes go through `store.notes` (policy, encryption, audit); ad-hoc text is
read without being stored. De-identification of a stored note uses the patient's
secret key, so surrogates and date shifts agree across that patient's notes.

Notes are read by `note_pipeline`: the vocabulary rules plus every NER model in
production in the configured registry, rebuilt when a production version changes
(the rules alone while none is in production; see `inference.cache`). Each annotation
names those models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacy.language import Language

from clinsight.config import get_settings
from clinsight.errors import DataError
from clinsight.inference.cache import model_cache
from clinsight.interop.fhir_notes import note_bundle
from clinsight.nlp.deid import DeidResult, deidentify
from clinsight.nlp.phi_ner import phi_ner
from clinsight.nlp.phi_pretrained import pretrained_ner
from clinsight.nlp.pipeline import (
    ClinicalEntity,
    NoteAnnotation,
    annotate_note,
    build_pipeline,
    default_pipeline,
)
from clinsight.nlp.search import NoteIndex, SearchHit, SearchMode
from clinsight.registry.versions import ModelKind
from clinsight.security.access import require_patient_access
from clinsight.security.clinical import add_note, check_new_note, get_note, list_notes
from clinsight.store.accounts import usernames
from clinsight.store.actors import PatientAccess
from clinsight.store.notes import MAX_NOTE_CHARS, NoteRecord, deid_key
from clinsight.store.repositories import StoreContext

__all__ = [
    "NoteHit",
    "NoteReading",
    "annotate_text",
    "create_note",
    "note_author",
    "note_fhir_bundle",
    "note_pipeline",
    "note_problems",
    "note_reading",
    "patient_notes",
    "read_note",
    "read_text",
    "search_patient_notes",
]


@dataclass(frozen=True)
class NoteReading:
    """What Clinsight read in a note: its annotation and its de-identified version."""

    annotation: NoteAnnotation
    deidentified: DeidResult

    @property
    def problems(self) -> list[ClinicalEntity]:
        """The extracted problem list (present, possible or historical; one per concept)."""
        return self.annotation.problem_list()


def note_pipeline(registry_dir: Path | None = None) -> Language:
    """The note pipeline: vocabulary rules plus every production NER model of the registry
    (default: the configured one), from the model cache (`inference.cache`), so it is
    rebuilt when the production versions change; the rules alone while none is in
    production.

    Raises:
        IntegrityError: a production NER model's files changed since registration.
        ModelError: a production NER model cannot be loaded.
    """
    cache = model_cache(registry_dir or get_settings().resolved_registry_dir)
    production = cache.production(ModelKind.NER)

    def build() -> Language:
        models = [m.model for m in production]
        return build_pipeline(ner_models=models) if models else default_pipeline()

    return cache.built("note-pipeline", production, build)


def note_author(ctx: StoreContext, note: NoteRecord) -> str:
    """The login name of the note's author ("unknown author" for a note without one)."""
    author = note.author_id or ""
    return usernames(ctx.session, {author} if author else set()).get(author, "unknown author")


def note_problems(text: str) -> list[ClinicalEntity]:
    """The problem list of a text (annotation only: no de-identification, nothing stored);
    run it with no transaction open."""
    return annotate_note(text, note_pipeline()).problem_list()


@dataclass(frozen=True)
class NoteHit:
    """A note matching a search, with where and why it matched."""

    note: NoteRecord
    hit: SearchHit


def read_text(text: str, *, key: str = "") -> NoteReading:
    """Annotate and de-identify a text (nothing is stored); `key` keeps surrogates consistent.

    Raises:
        DataError: the text is blank or longer than `MAX_NOTE_CHARS` characters.
    """
    if not text.strip():
        raise DataError("the note is empty; paste or upload its text")
    if len(text) > MAX_NOTE_CHARS:
        raise DataError(f"the note has {len(text)} characters, more than {MAX_NOTE_CHARS}")
    return NoteReading(
        annotate_note(text, note_pipeline()),
        deidentify(text, key, ner=phi_ner(), pretrained=pretrained_ner()),
    )


def read_note(ctx: StoreContext, note_id: str) -> tuple[NoteRecord, NoteReading]:
    """A stored note and its reading. The read and its audit entry are committed before the
    NLP, which runs with no transaction open (on SQLite the write lock stays free).

    Raises:
        RecordNotFoundError: no note has this id.
        PermissionDeniedError: the actor may not open its patient.
    """
    note = get_note(ctx, note_id)
    ctx.session.commit()
    return note, note_reading(ctx, note)


def note_reading(ctx: StoreContext, note: NoteRecord) -> NoteReading:
    """The reading of a note already read from the store, de-identified with its patient's key."""
    return read_text(note.text, key=deid_key(ctx, note.patient_id))


def search_patient_notes(
    ctx: StoreContext,
    patient_id: str,
    query: str,
    mode: SearchMode = "hybrid",
    limit: int = 10,
) -> list[NoteHit]:
    """The patient's notes best matching `query`, best first; only that patient's notes are
    searched. The search is audited with its mode and hit count, never the query; the read
    is committed before the search, as in `read_note`, and the search's entry after it.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        DataError: blank query, unknown mode or `limit` below 1.
        ModelError: the sentence-embedding model cannot be loaded (semantic, hybrid).
    """
    if not query.strip():
        raise DataError("the search is empty; type what to look for")
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "note.search")
    notes = {note.id: note for note in list_notes(ctx, patient_id)}
    ctx.session.commit()  # the access check and the read's audit entry, before the search
    hits = NoteIndex({i: n.text for i, n in notes.items()}).search(query, mode, limit)
    ctx.audit(
        "note.search",
        "patient",
        resource_id=patient_id,
        patient_id=patient_id,
        details={"mode": mode, "hits": len(hits)},
        break_glass=access is PatientAccess.BREAK_GLASS,
    )
    ctx.session.commit()
    return [NoteHit(notes[hit.note_id], hit) for hit in hits]


def note_fhir_bundle(ctx: StoreContext, note_id: str) -> dict[str, Any]:
    """The note's FHIR R4B Bundle (DocumentReference + Conditions) as JSON-ready data.

    Raises:
        RecordNotFoundError: no note has this id.
        PermissionDeniedError: the actor may not open its patient.
    """
    note = get_note(ctx, note_id)
    ctx.session.commit()  # the read and its audit entry, before the NLP
    bundle = note_bundle(
        annotate_note(note.text, note_pipeline()),
        note_id=note.id,
        patient_id=note.patient_id,
        created=note.created_at,
        author_id=note.author_id,
    )
    data: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return data


def create_note(ctx: StoreContext, patient_id: str, text: str) -> tuple[NoteRecord, NoteReading]:
    """Store a note for a patient and read it; the one use case behind the API and the web.

    What the store would refuse is refused first and that check committed, so the NLP runs
    with no transaction open (on SQLite the write lock stays free); then the note is
    stored and committed.

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
        RecordNotFoundError: no patient has this id.
        DataError: the text is blank or too long.
    """
    check_new_note(ctx, patient_id, text)
    ctx.session.commit()
    reading = read_text(text, key=deid_key(ctx, patient_id))
    note = add_note(ctx, patient_id, text)
    ctx.session.commit()
    return note, reading


def patient_notes(ctx: StoreContext, patient_id: str) -> list[NoteRecord]:
    """A patient's notes, newest first; the read and its audit entry are committed.

    Raises:
        PermissionDeniedError: the actor may not open this patient (the denial is committed).
    """
    notes = list_notes(ctx, patient_id)
    ctx.session.commit()
    return notes


def annotate_text(ctx: StoreContext, text: str) -> NoteReading:
    """Annotate and de-identify text without storing it; the call is audited (with the NER
    model versions used, never the text) and committed."""
    reading = read_text(text)
    models = ", ".join(reading.annotation.ner_models)
    ctx.audit("nlp.annotate", "text", details={"chars": len(text), "ner_models": models})
    ctx.session.commit()
    return reading
