"""Clinical sentence splitting: exact spans on lists, headings, abbreviations and numbers."""

from __future__ import annotations

import spacy

import clinsight.nlp.sentences  # noqa: F401 - registers the factory
from clinsight.nlp.sentences import SentenceRules, split_sentences

NOTE = (
    "HISTORY OF PRESENT ILLNESS:\n"
    "The patient is a 67 y.o. male s/p CABG on aspirin 2.5 mg q.d. with food. "
    "He saw Dr. Smith on 3/2.\n"
    "PAST MEDICAL HISTORY:\n"
    "1. Hypertension.\n"
    "2. Diabetes mellitus\n"
    "- CHF\n"
    "MEDICATIONS: Lisinopril 10 mg p.o. daily.  Metformin 500 mg b.i.d. Pt. was seen."
)


def _texts(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_clinical_note_sentences() -> None:
    assert _texts(NOTE) == [
        "HISTORY OF PRESENT ILLNESS:",
        "The patient is a 67 y.o. male s/p CABG on aspirin 2.5 mg q.d. with food.",
        "He saw Dr. Smith on 3/2.",
        "PAST MEDICAL HISTORY:",
        "1. Hypertension.",
        "2. Diabetes mellitus",
        "- CHF",
        "MEDICATIONS: Lisinopril 10 mg p.o. daily.",
        "Metformin 500 mg b.i.d.",
        "Pt. was seen.",
    ]
    assert split_sentences(NOTE)[1] == (28, 100)


def test_inline_numbered_items_wrapped_lines_and_initials() -> None:
    text = "POSTOPERATIVE DIAGNOSIS:  1) DIVERTICULA IN THE LEFT COLON    2) Otherwise normal exam"
    assert _texts(text) == [
        "POSTOPERATIVE DIAGNOSIS:",
        "1) DIVERTICULA IN THE LEFT COLON",
        "2) Otherwise normal exam",
    ]
    wrapped = (
        "Lungs clear, no wheezes or\nrales. No edema.\n\n"
        "John A. Smith, M.D. signed. Hepatitis-C. Stable."
    )
    assert _texts(wrapped) == [
        "Lungs clear, no wheezes or\nrales.",
        "No edema.",
        "John A. Smith, M.D. signed.",
        "Hepatitis-C.",
        "Stable.",
    ]
    assert split_sentences("   ") == []


def test_custom_rules_and_spacy_component() -> None:
    rules = SentenceRules(never_split=frozenset({"approx"}), abbreviations=frozenset())
    assert _texts_with(rules, "Size approx. Two cm. Done.") == ["Size approx. Two cm.", "Done."]
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_sentences")
    doc = nlp("No fever. Dr. Lee saw him.\nPLAN: rest.")
    assert [s.text for s in doc.sents] == ["No fever.", "Dr. Lee saw him.\n", "PLAN: rest."]


def _texts_with(rules: SentenceRules, text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text, rules)]
