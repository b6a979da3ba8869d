"""Vocabulary entity rules and the trainable NER (a few-step smoke training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from clinsight.data.notes import TaggedSentence, load_ner_corpus
from clinsight.errors import DataError, ModelError
from clinsight.nlp import Scores
from clinsight.nlp.entities import (
    ENTITY_LABELS,
    add_entity_ruler,
    entity_patterns,
    entity_scores,
    evaluate_ner,
    load_ner,
    tagged_to_doc,
    train_ner,
)


def test_vocabulary_patterns_cover_every_label() -> None:
    patterns = entity_patterns()
    assert {p["label"] for p in patterns} == set(ENTITY_LABELS)
    assert {"label": "PROBLEM", "pattern": "htn", "id": "I10"} in patterns
    assert {"label": "MEDICATION", "pattern": "coumadin", "id": "warfarin"} in patterns


def test_entity_ruler_finds_exact_spans() -> None:
    nlp = spacy.blank("en")
    add_entity_ruler(nlp)
    doc = nlp("Pt with HTN and Type 2 Diabetes on Metformin, s/p CABG; CXR of the left lower lobe.")
    assert [(e.text, e.label_, e.ent_id_, e.start_char) for e in doc.ents] == [
        ("HTN", "PROBLEM", "I10", 8),
        ("Type 2 Diabetes", "PROBLEM", "E11.9", 16),
        ("Metformin", "MEDICATION", "metformin", 35),
        ("CABG", "PROCEDURE", "coronary artery bypass graft", 50),
        ("CXR", "TEST", "chest x-ray", 56),
        ("left lower lobe", "ANATOMY", "left lower lobe", 67),
    ]


def test_vocabulary_errors(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"PROBLEM": [{"synonyms": ["x"]}]}')
    with pytest.raises(DataError, match="under PROBLEM has no 'term'"):
        entity_patterns(path)


def test_tagged_to_doc_and_invalid_tags() -> None:
    nlp = spacy.blank("en")
    doc = tagged_to_doc(
        nlp,
        TaggedSentence(
            ("Renal", "failure", "after", "cisplatin"),
            ("B-Disease", "I-Disease", "O", "B-Chemical"),
        ),
    )
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Renal failure", "Disease"),
        ("cisplatin", "Chemical"),
    ]
    with pytest.raises(DataError, match="Invalid BIO tags"):
        tagged_to_doc(nlp, TaggedSentence(("a",), ("X-Disease",)))


def test_evaluate_ner_is_strict_entity_level() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "Disease", "pattern": "renal failure"}])  # type: ignore[attr-defined]
    gold = [
        TaggedSentence(
            ("renal", "failure", "and", "acute", "renal", "failure"),
            ("B-Disease", "I-Disease", "O", "B-Disease", "I-Disease", "I-Disease"),
        ),
    ]
    scores = evaluate_ner(nlp, gold)
    assert scores["Disease"] == Scores(tp=1, fp=1, fn=1)
    assert scores["ALL"] == Scores(tp=1, fp=1, fn=1)


def test_entity_scores_count_exact_spans_per_label() -> None:
    nlp = spacy.blank("en")
    words = ("cisplatin", "renal", "failure", "and", "anemia")
    gold = tagged_to_doc(
        nlp, TaggedSentence(words, ("B-Chemical", "B-Disease", "I-Disease", "O", "B-Disease"))
    )
    predicted = tagged_to_doc(
        nlp, TaggedSentence(words, ("B-Disease", "O", "B-Disease", "O", "B-Disease"))
    )
    assert entity_scores([(gold, predicted), (gold, gold)]) == {
        "ALL": Scores(tp=4, fp=2, fn=2),
        "Chemical": Scores(tp=1, fp=0, fn=1),
        "Disease": Scores(tp=3, fp=2, fn=1),
    }


def test_train_ner_smoke_and_reload(data_dir: Path, tmp_path: Path) -> None:
    train = load_ner_corpus("bc5cdr", "train")[:20]
    losses: list[float] = []
    nlp = train_ner(
        train,
        epochs=3,
        batch_size=10,
        max_steps=4,
        progress=lambda e, loss, f1: losses.append(loss),
    )
    assert nlp.pipe_names == ["ner"]
    assert set(nlp.get_pipe("ner").labels) == {"Chemical", "Disease"}  # type: ignore[attr-defined]
    assert len(losses) == 2
    assert nlp.meta["training"] == {
        "epochs_run": 2, "kept_epoch": 2, "devel_f1": None, "steps": 4, "stopped_by": "max_steps",
    }  # fmt: skip
    assert all(loss > 0 for loss in losses)
    nlp.to_disk(tmp_path / "ner")
    assert load_ner(tmp_path / "ner").pipe_names == ["ner"]
    with pytest.raises(ModelError, match=r"no config\.cfg"):
        load_ner(tmp_path / "missing")
    with pytest.raises(ModelError, match="at least one B-/I- tagged entity"):
        train_ner([TaggedSentence(("a",), ("O",))])


def test_train_ner_keeps_the_best_devel_epoch(data_dir: Path) -> None:
    train = load_ner_corpus("bc5cdr", "train")[:40]
    devel = train[:20]
    scores: list[float] = []
    nlp = train_ner(
        train,
        devel=devel,
        epochs=14,
        patience=5,
        batch_size=8,
        average_weights=True,
        progress=lambda epoch, loss, f1: scores.append(f1 or 0.0),
    )
    best = max(scores)
    assert best > 0.5
    meta = nlp.meta["training"]
    assert meta["kept_epoch"] == scores.index(best) + 1
    assert meta["epochs_run"] == len(scores)
    assert meta["devel_f1"] == round(best, 4)
    assert evaluate_ner(nlp, devel)["ALL"].f1 == pytest.approx(best)
    # the first epochs find no entity: two epochs without a better devel F1 end the training
    stalled = train_ner(train, devel=devel, epochs=14, patience=2, batch_size=8)
    assert stalled.meta["training"] == {
        "epochs_run": 3, "kept_epoch": 1, "devel_f1": 0.0, "steps": 15, "stopped_by": "patience",
    }  # fmt: skip


def test_train_ner_stops_after_the_update_that_passes_the_time_budget(data_dir: Path) -> None:
    train = load_ner_corpus("bc5cdr", "train")[:20]
    nlp = train_ner(train, devel=train[:5], epochs=5, batch_size=10, time_budget=0.0)
    meta = nlp.meta["training"]
    assert (meta["steps"], meta["epochs_run"], meta["kept_epoch"], meta["stopped_by"]) == (
        1, 1, 1, "time_budget",
    )  # fmt: skip
