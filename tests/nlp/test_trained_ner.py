"""Trained NER models in the note pipeline: spans, label mapping, precedence, assertion,
provenance, scoring with intervals, and saving/loading either backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from clinsight.errors import ModelError
from clinsight.nlp import NerBackend
from clinsight.nlp.entities import evaluate_ner
from clinsight.nlp.pipeline import annotate_note, annotate_notes, build_pipeline
from clinsight.nlp.trained_ner import (
    TrainedNER,
    backend_of,
    entity_labels,
    load_trained_ner,
    ner_sources,
    save_trained_ner,
    score_trained_ner,
    tag_words,
)
from tests.support.ner_models import NOTE, tiny_minilm, tiny_sentences, tiny_spacy


def _rows(note_text: str, *models: TrainedNER) -> list[tuple[str, str, str, str]]:
    annotation = annotate_note(note_text, build_pipeline(ner_models=models))
    return [(e.text, e.label, e.assertion, e.source) for e in annotation.entities]


def test_rules_alone_miss_what_the_trained_model_finds() -> None:
    assert _rows(NOTE) == [
        ("hypertension", "PROBLEM", "present", "vocabulary"),
        ("breast", "ANATOMY", "family", "vocabulary"),
        ("breast cancer", "PROBLEM", "family", "vocabulary"),
    ]
    assert annotate_note(NOTE).ner_models == ()


def test_trained_entities_join_the_rules_with_assertion_codes_and_source(data_dir: Path) -> None:
    tiny = TrainedNER(tiny_spacy(data_dir), "tiny-spacy v1")
    annotation = annotate_note(NOTE, build_pipeline(ner_models=[tiny]))
    assert annotation.ner_models == ("tiny-spacy v1",)
    assert [(e.text, e.label, e.assertion, e.source) for e in annotation.entities] == [
        ("hypertension", "PROBLEM", "present", "vocabulary"),
        ("muscular dystrophy", "PROBLEM", "present", "tiny-spacy v1"),
        ("myotonic dystrophy", "PROBLEM", "negated", "tiny-spacy v1"),
        # a disease name replaces the body part inside it ...
        ("breast and ovarian cancer", "PROBLEM", "family", "tiny-spacy v1"),
        # ... but a vocabulary problem the model also finds stays, with its concept code
        ("breast cancer", "PROBLEM", "family", "vocabulary"),
    ]
    codes = {e.text: e.icd10.code if e.icd10 else None for e in annotation.entities}
    assert codes["muscular dystrophy"] == "G71.00"  # coded by its ICD-10-CM description
    assert codes["breast cancer"] == "C50.919"
    negated = annotation.entities[2]
    assert NOTE[negated.start : negated.end] == "myotonic dystrophy"
    assert negated.section == "history_of_present_illness"
    assert [p.text for p in annotation.problem_list()] == ["hypertension", "muscular dystrophy"]


def test_the_model_alone_tags_the_vocabulary_problem_too(data_dir: Path) -> None:
    alone = build_pipeline(ner_models=[TrainedNER(tiny_spacy(data_dir), "m v1")], vocabulary=False)
    assert [e.text for e in annotate_note(NOTE, alone).entities] == [
        "muscular dystrophy", "myotonic dystrophy", "breast and ovarian cancer", "breast cancer",
    ]  # fmt: skip


def test_a_second_model_adds_only_what_the_first_did_not_find(data_dir: Path) -> None:
    first = TrainedNER(tiny_spacy(data_dir), "first v1")
    second = TrainedNER(tiny_spacy(data_dir), "second v3")
    nlp = build_pipeline(ner_models=[first, second])
    assert ner_sources(nlp) == ("first v1", "second v3")
    assert nlp.pipe_names[-3:] == ["trained_ner_1", "trained_ner_2", "clinical_context"]
    notes = list(annotate_notes([NOTE, "No myotonic dystrophy."], nlp))
    assert {e.source for e in notes[0].entities} == {"vocabulary", "first v1"}
    assert [(e.text, e.assertion, e.source) for e in notes[1].entities] == [
        ("myotonic dystrophy", "negated", "first v1")
    ]
    assert notes[1].ner_models == ("first v1", "second v3")


def test_the_fine_tuned_minilm_works_in_the_pipeline_too(data_dir: Path) -> None:
    tiny = TrainedNER(tiny_minilm(data_dir), "tiny-minilm v2")
    assert tiny.backend is NerBackend.MINILM
    annotation = annotate_note(NOTE, build_pipeline(ner_models=[tiny]))
    found = {(e.text, e.assertion, e.source) for e in annotation.entities}
    assert ("myotonic dystrophy", "negated", "tiny-minilm v2") in found
    assert ("breast and ovarian cancer", "family", "tiny-minilm v2") in found
    assert ("hypertension", "present", "vocabulary") in found
    assert ("breast cancer", "family", "vocabulary") in found
    assert annotation.ner_models == ("tiny-minilm v2",)


def test_tags_labels_and_backends_of_both_kinds(data_dir: Path) -> None:
    words = [["She", "denies", "myotonic", "dystrophy", "."], ["No", "fever", "."]]
    spacy_model, minilm = tiny_spacy(data_dir), tiny_minilm(data_dir)
    assert tag_words(spacy_model, words) == [
        ["O", "O", "B-Disease", "I-Disease", "O"], ["O", "O", "O"],
    ]  # fmt: skip
    tagged = tag_words(minilm, words)
    assert [len(tags) for tags in tagged] == [5, 3]
    assert tagged[0][2:4] == ["B-Disease", "I-Disease"]
    for model, backend in ((spacy_model, "spacy"), (minilm, "minilm")):
        assert backend_of(model) == backend
        assert entity_labels(model) == ("Disease",)


def test_scores_count_like_evaluate_ner_with_an_interval(data_dir: Path) -> None:
    model, sentences = tiny_spacy(data_dir), list(tiny_sentences(data_dir))
    scores = score_trained_ner(model, sentences, n_bootstrap=200)
    reference = evaluate_ner(model, sentences)
    assert set(scores) == {"ALL", "Disease"}
    for label in scores:
        assert (scores[label]["tp"], scores[label]["fp"], scores[label]["fn"]) == (
            reference[label].tp, reference[label].fp, reference[label].fn,
        )  # fmt: skip
        f1 = scores[label]["f1"]
        assert f1["value"] == round(reference[label].f1, 4)
        assert 0 <= f1["low"] <= f1["value"] <= f1["high"] <= 1
    assert score_trained_ner(model, sentences, n_bootstrap=200) == scores  # seeded
    with pytest.raises(ModelError, match="needs sentences"):
        score_trained_ner(model, [])


@pytest.mark.parametrize("backend", ["spacy", "minilm"])
def test_save_and_load_either_backend(data_dir: Path, tmp_path: Path, backend: str) -> None:
    model = tiny_spacy(data_dir) if backend == "spacy" else tiny_minilm(data_dir)
    save_trained_ner(model, tmp_path / "model")
    loaded = load_trained_ner(tmp_path / "model", backend, "copy v1")
    assert (loaded.backend, loaded.source) == (backend, "copy v1")
    words = [list(s.tokens) for s in tiny_sentences(data_dir)]
    assert tag_words(loaded.model, words) == tag_words(model, words)
    with pytest.raises(ModelError, match=r"train one first|no config\.cfg"):
        load_trained_ner(tmp_path / "missing", backend, "x v1")


def test_a_component_without_a_model_refuses_to_run() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_trained_ner", config={"source": "empty v1"})
    with pytest.raises(ModelError, match="'empty v1' has no model; use add_trained_ner"):
        nlp("No fever.")
