"""Phone numbers by libphonenumber, transcript speakers, bare street numbers and the optional
pretrained NER: hand-written sentences, none taken from a benchmark set."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import spacy
from spacy.language import Language

from clinsight.nlp import phi_pretrained
from clinsight.nlp.deid import PHIType, deidentify, find_phi
from clinsight.nlp.phi_phone import phone_numbers
from clinsight.nlp.phi_pretrained import pretrained_ner, pretrained_spans


def _phones(text: str) -> list[str]:
    return [text[s:e] for s, e in phone_numbers(text)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Her son's mobile is 0612 345 678 if needed.", "0612 345 678"),  # Dutch, cue
        ("Numbers on file: 020 7946 0958 and nothing else.", "020 7946 0958"),  # London, valid
        ("Ring 22 56 78 91 after lunch.", "22 56 78 91"),  # Danish, eight digits
        ("Tel 09 8765 4321 (home).", "09 8765 4321"),  # Finnish, cue
        ("Best reached on +351 912 345 678 today.", "+351 912 345 678"),
        ("Clinic line 555-201-3344 x1234 for results.", "555-201-3344 x1234"),
    ],
)
def test_phone_numbers_of_many_countries(text: str, value: str) -> None:
    assert value in _phones(text)
    assert any(s.text == value and s.type is PHIType.PHONE for s in find_phi(text))


@pytest.mark.parametrize(
    "text",
    [
        "BP 151/102 and later 180/110, pulse 96.",
        "Metformin 500 mg twice daily, platelets 250/nL.",
        "Gleason 3+4=7; pain 6/10; EF 55-60%.",
        "Grip 42/40/40 pounds; dose ratio 1.25/250; platelets 152000.",
    ],
)
def test_clinical_numbers_are_not_phones(text: str) -> None:
    assert _phones(text) == []


def test_a_date_libphonenumber_reads_as_a_number_stays_a_date() -> None:
    spans = find_phi("Reviewed on 12.03.2020 in clinic.")
    assert [(s.text, s.type) for s in spans] == [("12.03.2020", PHIType.DATE)]


def test_speakers_of_a_transcript_are_names() -> None:
    text = "Ingeborg: I fell on the stairs.\nWojtek: When was that?\nIngeborg: Tuesday."
    assert {s.text for s in find_phi(text)} >= {"Ingeborg", "Wojtek"}
    note = "Abd: soft, non-tender.\nExt: warm, no edema.\nNeuro: intact."
    assert find_phi(note) == []  # headings of a note with no speaker stay


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Send the letter to Tammsaare 14, Tartu 50103.", "Tammsaare 14, Tartu 50103"),
        ("He lives at Skolegade 7 with his wife.", "Skolegade 7"),
        ("My name is Ottokar and I need a refill.", "Ottokar"),
    ],
)
def test_bare_streets_and_introductions(text: str, value: str) -> None:
    assert value in {s.text for s in find_phi(text)}


def test_a_place_cue_before_a_duration_keeps_the_number_out() -> None:
    assert [s.text for s in find_phi("Moved to Ljubljana 2 years ago.")] == ["Ljubljana"]


def _standin() -> Language:
    """A fixed-pattern NER with the pretrained model's labels, in place of the model."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(  # type: ignore[attr-defined]
        [
            {"label": "PERSON", "pattern": "Mairead"},
            {"label": "GPE", "pattern": "Skutskar"},
            {"label": "NORP", "pattern": "Swedish"},
            {"label": "ORG", "pattern": "Lindqvist Clinic"},
            {"label": "PERSON", "pattern": "Physical Therapy"},
            {"label": "ORG", "pattern": "BUN"},
            {"label": "GPE", "pattern": "thyromegaly"},
        ]
    )
    return nlp


def test_pretrained_spans_map_labels_and_pass_the_filter() -> None:
    text = (
        "Mairead drove her Swedish car from Skutskar to Lindqvist Clinic for Physical Therapy. "
        "BUN normal, no thyromegaly."
    )
    spans = {text[s:e]: k for s, e, k in pretrained_spans(_standin(), text)}
    assert spans == {"Mairead": "NAME", "Skutskar": "LOCATION", "Lindqvist Clinic": "LOCATION"}
    # dropped: a known non-name of ordinary words, an acronym, a word in lower case
    found = {s.text: s.type for s in find_phi(text, pretrained=_standin())}
    assert found["Mairead"] is PHIType.NAME
    assert found["Skutskar"] is PHIType.LOCATION
    clean = deidentify(text, "k", pretrained=_standin()).text
    assert "Mairead" not in clean
    assert "Skutskar" not in clean


def test_without_the_package_the_pretrained_ner_is_none_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    pretrained_ner.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=phi_pretrained.__name__):
            assert pretrained_ner() is None
        assert "clinsight[deid]" in caplog.text
    finally:
        pretrained_ner.cache_clear()
