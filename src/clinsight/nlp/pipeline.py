"""The clinical-note pipeline: sentences → sections → entities → assertion → ICD-10-CM codes.

`build_pipeline` assembles spaCy components on `spacy.blank("en")`;
`annotate_note` turns a note into typed results (entities with offsets, assertion,
section and code) and `annotate_notes` streams a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

# Imported for their side effect: registering the clinical_* spaCy factories.
import clinsight.nlp.assertion
import clinsight.nlp.sentences  # noqa: F401
from clinsight.nlp.coding import ICDCode, code_concept
from clinsight.nlp.entities import add_entity_ruler, load_ner
from clinsight.nlp.sections import Section, section_of

__all__ = [
    "PROBLEM_LABELS",
    "ClinicalEntity",
    "NoteAnnotation",
    "annotate_note",
    "annotate_notes",
    "build_pipeline",
    "default_pipeline",
]

PROBLEM_LABELS = frozenset({"PROBLEM", "Disease"})


@dataclass(frozen=True)
class ClinicalEntity:
    """An entity found in a note, with its assertion, section and ICD-10-CM code."""

    text: str
    label: str
    start: int
    end: int
    section: str | None
    negated: bool
    uncertain: bool
    historical: bool
    hypothetical: bool
    family: bool
    icd10: ICDCode | None

    @property
    def assertion(self) -> str:
        """One word for display: family, hypothetical, negated, possible, historical or present."""
        for flag, word in (
            (self.family, "family"),
            (self.hypothetical, "hypothetical"),
            (self.negated, "negated"),
            (self.uncertain, "possible"),
            (self.historical, "historical"),
        ):
            if flag:
                return word
        return "present"


@dataclass(frozen=True)
class NoteAnnotation:
    """A processed note: sentence spans, sections and entities."""

    text: str
    sentences: tuple[tuple[int, int], ...]
    sections: tuple[Section, ...]
    entities: tuple[ClinicalEntity, ...]

    def problem_list(self) -> list[ClinicalEntity]:
        """The patient's problems (present, possible or historical), one per concept."""
        seen: set[str] = set()
        problems = []
        for entity in self.entities:
            if entity.label not in PROBLEM_LABELS or entity.family or entity.hypothetical:
                continue
            if entity.negated:
                continue
            key = entity.icd10.code if entity.icd10 else entity.text.lower()
            if key not in seen:
                seen.add(key)
                problems.append(entity)
        return problems


def build_pipeline(
    *, ner_model: Path | None = None, vocabulary: bool = True, use_sections: bool = True
) -> Language:
    """A spaCy pipeline: clinical sentences, sections, (trained NER), vocabulary rules, ConText.

    Raises:
        ModelError: `ner_model` is not a saved spaCy NER pipeline.
    """
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_sentences")
    nlp.add_pipe("clinical_sections")
    if ner_model is not None:
        nlp.add_pipe("ner", source=load_ner(ner_model))
    if vocabulary:
        add_entity_ruler(nlp)
    nlp.add_pipe("clinical_context", config={"use_sections": use_sections})
    return nlp


@cache
def default_pipeline() -> Language:
    """The rule-based pipeline (no trained NER), built once per process."""
    return build_pipeline()


def _entity(span: Span) -> ClinicalEntity:
    section = section_of(span)
    return ClinicalEntity(
        text=span.text,
        label=span.label_,
        start=span.start_char,
        end=span.end_char,
        section=section.category if section is not None else None,
        negated=bool(span._.is_negated),
        uncertain=bool(span._.is_uncertain),
        historical=bool(span._.is_historical),
        hypothetical=bool(span._.is_hypothetical),
        family=bool(span._.is_family),
        icd10=code_concept(span.text, span.ent_id_) if span.label_ in PROBLEM_LABELS else None,
    )


def _annotation(doc: Doc) -> NoteAnnotation:
    return NoteAnnotation(
        text=doc.text,
        sentences=tuple((s.start_char, s.start_char + len(s.text.rstrip())) for s in doc.sents),
        sections=tuple(doc._.sections or ()),
        entities=tuple(_entity(e) for e in doc.ents),
    )


def annotate_note(text: str, nlp: Language | None = None) -> NoteAnnotation:
    """Annotate one note with `nlp` (default: the rule-based pipeline)."""
    return _annotation((nlp or default_pipeline())(text))


def annotate_notes(
    texts: Iterable[str],
    nlp: Language | None = None,
    *,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> Iterator[NoteAnnotation]:
    """Annotate notes lazily in batches; `progress(n_done)` is called after each note."""
    for done, doc in enumerate((nlp or default_pipeline()).pipe(texts, batch_size=batch_size), 1):
        yield _annotation(doc)
        if progress is not None:
            progress(done)
