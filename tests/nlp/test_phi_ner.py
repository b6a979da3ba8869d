"""The trained names-and-places NER beside the de-identification rules (tiny models only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from spacy.language import Language

from clinsight.nlp import phi_ner as phi_ner_module
from clinsight.nlp.deid import PHIType, deidentify, find_phi
from clinsight.nlp.phi_ner import (
    BENCHMARK_NOTES,
    PHI_NER_NAME,
    negative_texts,
    phi_ner,
    plausible,
    tagged,
    train_phi_ner,
)
from clinsight.nlp.phi_synth import PHI_LABELS, clinical_negatives, synthetic_sentences
from tests.support.cli import run_cli

CLINICAL = (
    "HISTORY OF PRESENT ILLNESS:, The patient was seen by Dr. Okafor yesterday. "
    "The wound was irrigated and Coumadin was held. She moved to Tromso last spring. "
    "Disc bulge at L4-5 without stenosis. Then Lasix was increased to 40 mg daily.",
)


def test_generated_sentences_are_seeded_and_mark_their_values() -> None:
    first = synthetic_sentences(200, seed=3)
    assert first == synthetic_sentences(200, seed=3) != synthetic_sentences(200, seed=4)
    spans = [(t[s:e], k) for t, marks in first for s, e, k in marks]
    assert {k for _, k in spans} == set(PHI_LABELS)
    assert all(v.strip() == v and v for v, _ in spans)
    assert any(not marks for _, marks in first)  # identifier-free sentences too
    tags = tagged(first)
    assert {t[2:] for s in tags for t in s.tags if t != "O"} == set(PHI_LABELS)


def test_identifier_free_sentences_come_only_from_sentences_without_a_name_or_place() -> None:
    kept = clinical_negatives(CLINICAL)
    assert "HISTORY OF PRESENT ILLNESS:" in kept
    assert "The wound was irrigated and Coumadin was held." in kept
    assert "Disc bulge at L4-5 without stenosis." in kept
    assert "Then Lasix was increased to 40 mg daily." in kept
    assert not any("Okafor" in k or "Tromso" in k for k in kept)  # a title, a capitalised word
    texts = synthetic_sentences(300, seed=2, clinical=kept)
    assert any(text.startswith(tuple(kept[1:])) or text.endswith(tuple(kept[1:]))
               for text, _ in texts)  # fmt: skip


def test_the_training_texts_leave_out_the_benchmark_notes(data_dir: Path) -> None:
    marked = json.loads(
        (Path(__file__).parents[2] / "benchmarks" / "data" / "deid_mtsamples.json").read_text()
    )
    assert {n["note_id"] for n in marked["notes"]} == BENCHMARK_NOTES
    train, validation = negative_texts()
    assert train
    assert validation
    assert not set(train) & set(validation)
    excerpts = [n["text"] for n in marked["notes"]]
    assert not any(e in t for e in excerpts for t in train + validation)


def test_model_spans_that_cannot_be_identifiers_are_dropped() -> None:
    assert not plausible("L4-L5")
    assert not plausible("C5-6")
    assert not plausible("Physical Therapy")  # ordinary words and known non-names
    assert not plausible("Lasix")
    assert plausible("Halvorsen")
    assert plausible("Green Bay")  # ordinary words, but a place in the gazetteer
    assert plausible("Keijo Mäkinen")


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
    nlp = train_phi_ner(120, seed=1, epochs=1, max_steps=3, clinical=CLINICAL)
    again = train_phi_ner(120, seed=1, epochs=1, max_steps=3, clinical=CLINICAL)  # seeded
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
        return train_phi_ner(120, seed=1, epochs=1, max_steps=2, clinical=CLINICAL)

    monkeypatch.setattr(phi_ner_module, "train_phi_ner", tiny)
    code, out = run_cli("nlp", "train-deid-ner")
    assert code == 0, out
    assert out.startswith(f"Trained: {PHI_NER_NAME}")
    assert phi_ner() is not None  # the note service's default: HOME/models
    code, out = run_cli("nlp", "train-deid-ner")
    assert code == 0, out
    assert out.startswith("Already trained")
    assert calls == [1]
