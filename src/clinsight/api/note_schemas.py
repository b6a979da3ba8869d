"""Request and response bodies of the clinical-notes API (pydantic, in the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from clinsight.nlp.pipeline import ClinicalEntity
from clinsight.services.notes import NoteHit, NoteReading
from clinsight.store.notes import MAX_NOTE_CHARS, NoteRecord

__all__ = [
    "AnnotationOut",
    "EntityOut",
    "NoteDetailOut",
    "NoteIn",
    "NoteOut",
    "NoteSearchHitOut",
    "PhiOut",
]

Assertion = Literal["present", "negated", "possible", "historical", "hypothetical", "family"]


class NoteIn(BaseModel):
    """A note's plain text (stored encrypted), or text to annotate without storing."""

    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class EntityOut(BaseModel):
    """An entity found in the note: where, what kind, its assertion, ICD-10-CM code and source."""

    text: str
    label: str
    start: int
    end: int
    section: str | None
    assertion: Assertion
    icd10_code: str | None
    icd10_description: str | None
    source: str = Field(
        description='What found it: "vocabulary" (rules) or an NER model as "NAME vVERSION".'
    )

    @classmethod
    def of(cls, entity: ClinicalEntity) -> EntityOut:
        """The response form of a pipeline entity."""
        code = entity.icd10
        return cls(
            text=entity.text,
            label=entity.label,
            start=entity.start,
            end=entity.end,
            section=entity.section,
            assertion=entity.assertion,
            icd10_code=code.code if code else None,
            icd10_description=code.description if code else None,
            source=entity.source,
        )


class PhiOut(BaseModel):
    """An identifier found and replaced by de-identification (offsets in the original)."""

    start: int
    end: int
    type: str


class AnnotationOut(BaseModel):
    """Entities with assertion, the problem list, the de-identified text, and the trained NER
    models that read the note beside the vocabulary rules."""

    entities: list[EntityOut]
    problem_list: list[EntityOut]
    deidentified: str
    phi: list[PhiOut]
    ner_models: list[str] = Field(
        description='Registered NER model versions used ("NAME vVERSION"); empty: rules only.'
    )

    @classmethod
    def of(cls, reading: NoteReading) -> AnnotationOut:
        """The response form of a note reading."""
        return cls(
            entities=[EntityOut.of(e) for e in reading.annotation.entities],
            problem_list=[EntityOut.of(e) for e in reading.problems],
            deidentified=reading.deidentified.text,
            phi=[PhiOut(start=p.start, end=p.end, type=p.type) for p in reading.deidentified.phi],
            ner_models=list(reading.annotation.ner_models),
        )


class NoteOut(BaseModel):
    """A stored note's metadata (the text comes with the note itself)."""

    id: str
    patient_id: str
    author_id: str | None
    created_at: datetime
    chars: int

    @classmethod
    def of(cls, note: NoteRecord) -> NoteOut:
        """The response form of a stored note."""
        return cls(
            id=note.id,
            patient_id=note.patient_id,
            author_id=note.author_id,
            created_at=note.created_at,
            chars=len(note.text),
        )


class NoteDetailOut(NoteOut):
    """A stored note with its text and annotation."""

    text: str
    annotation: AnnotationOut


class NoteSearchHitOut(BaseModel):
    """A matching note: rank, score, snippet (plain and HTML with <mark>) and term offsets."""

    note: NoteOut
    rank: int
    score: float
    start: int
    end: int
    snippet: str
    snippet_html: str
    highlights: list[tuple[int, int]]

    @classmethod
    def of(cls, found: NoteHit) -> NoteSearchHitOut:
        """The response form of a search hit."""
        hit = found.hit
        return cls(
            note=NoteOut.of(found.note),
            rank=hit.rank,
            score=hit.score,
            start=hit.start,
            end=hit.end,
            snippet=hit.snippet,
            snippet_html=hit.snippet_html,
            highlights=list(hit.highlights),
        )
