"""The trained names-and-places NER beside the de-identification rules (tiny models only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy
from spacy.language import Language

from clinsight.nlp import phi_ner as phi_ner_module
from clinsight.nlp.deid import PHIType, deidentify, find_phi
from clinsight.nlp.phi_ner import PHI_NER_NAME, phi_ner, plausible, tagged, train_phi_ner
from clinsight.nlp.phi_synth import PHI_LABELS, synthetic_sentences
from tests.support.cli import run_cli


def test_generated_sentences_are_seeded_and_mark_their_values() -> None:
    first = synthetic_sentences(200, seed=3)
    assert first == synthetic_sentences(200, seed=3) != synthetic_sentences(200, seed=4)
    spans = [(t[s:e], k) for t, marks in first for s, e, k in marks]
    assert {k for _, k in spans} == set(PHI_LABELS)
    assert all(v.strip() == v and v for v, _ in spans)
    assert any(not marks for _, marks in first)  # identifier-free sentences too
    tags = tagged(first)
    assert {t[2:] for s in tags for t in s.tags if t != "O"} == set(PHI_LABELS)


def test_model_spans_that_cannot_be_identifiers_are_dropped() -> None:
    assert not plausible("L4-L5")
    assert not plausible("C5-6")
    assert not plausible("16%")
    assert not plausible("Physical Therapy")  # ordinary words and known non-names
    assert not plausible("Afterwards")
    assert not plausible("Lasix")
    assert plausible("Halvorsen")
    assert plausible("Amber")  # an ordinary word, but a census given name
    assert plausible("Green Bay")  # ordinary words, but a place in the gazetteer
    assert plausible("Keijo Mäkinen")
    assert plausible("53451")


def test_model_spans_join_the_rules() -> None:
    nlp = spacy.blank("en")  # stands in for the trained model: a fixed pattern
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(  # type: ignore[attr-defined]
        [{"label": "LOCATION", "pattern": "Skutskar"}, {"label": "NAME", "pattern": "Keijo"}]
    )
    text = "Keijo phoned from Skutskar. Seen by Dr. Halvorsen on 3 May 2021."
    assert {s.text for s in find_phi(text)} == {"Halvorsen", "3 May 2021"}
    found = {s.text: s.type for s in find_phi(text, nlp)}
    assert found == {
        "Keijo": PHIType.NAME,
        "Skutskar": PHIType.LOCATION,
        "Halvorsen": PHIType.NAME,
        "3 May 2021": PHIType.DATE,
    }
    clean = deidentify(text, "k", ner=nlp).text
    assert "Keijo" not in clean
    assert "Skutskar" not in clean


def test_a_tiny_model_trains_repeatably_saves_and_loads_from_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "phi_ner"
    assert phi_ner(folder) is None  # nothing cached, and training was not asked for
    nlp = train_phi_ner(120, seed=1, epochs=1, max_steps=3)
    again = train_phi_ner(120, seed=1, epochs=1, max_steps=3)  # seeded: the same weights
    assert nlp.to_bytes() == again.to_bytes()
    assert set(nlp.get_pipe("ner").labels) == set(PHI_LABELS)  # type: ignore[attr-defined]
    nlp.to_disk(folder)
    loaded = phi_ner(folder)
    assert loaded is not None
    assert not list(folder.rglob("*.pkl"))
    text = "Lives at 12 Harbour Road, Bergen, with Ingrid Halvorsen."
    assert [e.text for e in loaded(text).ents] == [e.text for e in nlp(text).ents]


def test_the_command_trains_once_into_home(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def tiny(*_: object, **__: object) -> Language:
        calls.append(1)
        return train_phi_ner(120, seed=1, epochs=1, max_steps=2)

    monkeypatch.setattr(phi_ner_module, "train_phi_ner", tiny)
    code, out = run_cli("nlp", "train-deid-ner")
    assert code == 0, out
    assert out.startswith(f"Trained: {PHI_NER_NAME}")
    assert phi_ner() is not None  # the note service's default: HOME/models
    code, out = run_cli("nlp", "train-deid-ner")
    assert code == 0, out
    assert out.startswith("Already trained")
    assert calls == [1]
