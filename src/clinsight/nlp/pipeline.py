"""The clinical-note pipeline: sentences → sections → entities → assertion → ICD-10-CM codes.

`build_pipeline` assembles spaCy components on `spacy.blank("en")`: entities come from
the vocabulary rules, then from each trained NER model given (`trained_ner`: a model's
entity is added where no earlier entity lies, or only an anatomy one, with its corpus
label mapped to a pipeline label), and ConText asserts all of them alike. `annotate_note` turns
a note into typed results (entities with offsets, assertion, section, code and the
source that found them; the NER models used) and `annotate_notes` streams a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

# Imported for their side effect: registering the clinical_* spaCy factories.
import clinsight.nlp.assertion
import clinsight.nlp.sentences  # noqa: F401
from clinsight.nlp.coding import ICDCode, code_concept
from clinsight.nlp.entities import add_entity_ruler
from clinsight.nlp.sections import Section, section_of
from clinsight.nlp.trained_ner import TrainedNER, add_trained_ner, ner_sources

__all__ = [
    "PROBLEM_LABELS",
    "VOCABULARY_SOURCE",
    "ClinicalEntity",
    "NoteAnnotation",
    "annotate_note",
    "annotate_notes",
    "build_pipeline",
    "default_pipeline",
]

PROBLEM_LABELS = frozenset({"PROBLEM", "Disease"})
VOCABULARY_SOURCE = "vocabulary"


@dataclass(frozen=True)
class ClinicalEntity:
    """An entity found in a note, with its assertion, section, ICD-10-CM code and source
    (`VOCABULARY_SOURCE`, or the trained NER model that found it, e.g. "ncbi_disease-minilm v2").
    """

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
    source: str = VOCABULARY_SOURCE

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
    """A processed note: sentence spans, sections, entities and the trained NER models that
    read it (empty: vocabulary rules only)."""

    text: str
    sentences: tuple[tuple[int, int], ...]
    sections: tuple[Section, ...]
    entities: tuple[ClinicalEntity, ...]
    ner_models: tuple[str, ...] = ()

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
    *,
    ner_models: Sequence[TrainedNER] = (),
    vocabulary: bool = True,
    use_sections: bool = True,
) -> Language:
    """A spaCy pipeline: clinical sentences, sections, vocabulary rules, the trained NER
    models in the order given (each adds its entities where no earlier entity but an
    anatomy one lies), ConText."""
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_sentences")
    nlp.add_pipe("clinical_sections")
    if vocabulary:
        add_entity_ruler(nlp)
    for trained in ner_models:
        add_trained_ner(nlp, trained)
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
        source=span._.ner_source or VOCABULARY_SOURCE,
    )


def _annotation(doc: Doc, ner_models: tuple[str, ...]) -> NoteAnnotation:
    return NoteAnnotation(
        text=doc.text,
        sentences=tuple((s.start_char, s.start_char + len(s.text.rstrip())) for s in doc.sents),
        sections=tuple(doc._.sections or ()),
        entities=tuple(_entity(e) for e in doc.ents),
        ner_models=ner_models,
    )


def annotate_note(text: str, nlp: Language | None = None) -> NoteAnnotation:
    """Annotate one note with `nlp` (default: the rule-based pipeline)."""
    nlp = nlp or default_pipeline()
    return _annotation(nlp(text), ner_sources(nlp))


def annotate_notes(
    texts: Iterable[str],
    nlp: Language | None = None,
    *,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> Iterator[NoteAnnotation]:
    """Annotate notes lazily in batches; `progress(n_done)` is called after each note."""
    nlp = nlp or default_pipeline()
    sources = ner_sources(nlp)
    for done, doc in enumerate(nlp.pipe(texts, batch_size=batch_size), 1):
        yield _annotation(doc, sources)
        if progress is not None:
            progress(done)
