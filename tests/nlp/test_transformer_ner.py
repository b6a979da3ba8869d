"""The fine-tuned MiniLM-L6 token-classification NER (tiny, CPU, one thread)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from clinsight.data.notes import TaggedSentence, read_conll
from clinsight.errors import ModelError
from clinsight.nlp import Scores
from clinsight.nlp.embeddings import verified_model_dir
from clinsight.nlp.transformer_ner import (
    IGNORED,
    TransformerNER,
    encode_sentences,
    evaluate_transformer_ner,
    load_transformer_ner,
    train_transformer_ner,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(data_dir: Path) -> list[TaggedSentence]:
    """The 20 shortest NCBI disease training sentences that hold an entity (2 to 7 words)."""
    sentences = read_conll(data_dir / "nlp" / "ncbi_disease" / "conll" / "train.tsv")
    tagged = [s for s in sentences if set(s.tags) != {"O"}]
    return sorted(tagged, key=lambda s: (len(s.tokens), s.tokens))[:20]


@pytest.fixture(scope="module")
def losses() -> list[float]:
    return []


@pytest.fixture(scope="module")
def overfit(tiny: list[TaggedSentence], losses: list[float]) -> TransformerNER:
    """Five epochs of batches of 10 at a high learning rate: enough to learn the 20 by heart."""
    return train_transformer_ner(
        tiny,
        epochs=5,
        batch_size=10,
        learning_rate=1e-3,
        warmup_fraction=0.0,
        progress=lambda epoch, loss, f1: losses.append(loss),
    )


def test_each_word_is_labelled_on_its_first_word_piece() -> None:
    tokenizer = AutoTokenizer.from_pretrained(verified_model_dir(), local_files_only=True)
    words = ("Renal", "failure", "after", "cisplatinum", "\x07", ".")
    (full,) = encode_sentences(tokenizer, [words], 512)
    assert tokenizer.convert_ids_to_tokens(list(full.input_ids)) == [
        "[CLS]", "renal", "failure", "after", "cis", "##pl", "##atin", "##um", ".", "[SEP]",
    ]  # fmt: skip
    assert full.first_pieces == (1, 2, 3, 4, None, 8)  # a control character has no piece
    assert full.piece_labels([1, 2, 0, 3, 0, 0]) == [
        IGNORED, 1, 2, 0, 3, IGNORED, IGNORED, IGNORED, 0, IGNORED,
    ]  # fmt: skip
    (cut,) = encode_sentences(tokenizer, [words], 8)
    assert len(cut.input_ids) == 8
    assert cut.first_pieces == (1, 2, 3, 4, None, None)
    assert cut.piece_labels([1, 2, 0, 3, 0, 0]) == [IGNORED, 1, 2, 0, 3] + [IGNORED] * 3
    with pytest.raises(ModelError, match=r"max_length must be in 8\.\.512"):
        encode_sentences(tokenizer, [words], 4)


def test_fine_tuning_learns_twenty_sentences_by_heart(
    overfit: TransformerNER, tiny: list[TaggedSentence], losses: list[float]
) -> None:
    assert overfit.labels == ("O", "B-Disease", "I-Disease")
    assert overfit.tag([s.tokens for s in tiny]) == [list(s.tags) for s in tiny]
    assert evaluate_transformer_ner(overfit, tiny) == {
        "ALL": Scores(tp=22, fp=0, fn=0),
        "Disease": Scores(tp=22, fp=0, fn=0),
    }
    assert len(losses) == 5
    assert losses[-1] < losses[0] / 5
    assert overfit.training == {
        "epochs_run": 5,
        "kept_epoch": 5,
        "devel_f1": None,
        "steps": 10,
        "planned_steps": 10,
        "stopped_by": None,
        "longest_sentence_pieces": 16,
        "words_without_piece": 0,
    }


def test_raw_text_gets_its_entities(overfit: TransformerNER) -> None:
    doc = overfit("Craniofrontonasal dysplasia.")
    assert [(e.text, e.label_, e.start_char) for e in doc.ents] == [
        ("Craniofrontonasal dysplasia", "Disease", 0)
    ]


def test_evaluation_is_the_strict_one_shared_with_spacy(overfit: TransformerNER) -> None:
    # the model tags "Craniofrontonasal dysplasia" as one entity; a gold span of one word
    # differs, so it is one false positive and one false negative, not a partial match
    gold = TaggedSentence(("Craniofrontonasal", "dysplasia", "."), ("B-Disease", "O", "O"))
    assert evaluate_transformer_ner(overfit, [gold]) == {
        "ALL": Scores(tp=0, fp=1, fn=1),
        "Disease": Scores(tp=0, fp=1, fn=1),
    }


def test_save_and_load_round_trip(
    overfit: TransformerNER, tiny: list[TaggedSentence], tmp_path: Path
) -> None:
    overfit.save(tmp_path / "ner")
    saved = {p.name for p in (tmp_path / "ner").iterdir()}
    assert {"model.safetensors", "config.json", "ner.json", "tokenizer.json"} <= saved
    assert not {n for n in saved if n.endswith((".bin", ".pt", ".pkl", ".pth"))}
    loaded = load_transformer_ner(tmp_path / "ner")
    assert loaded.labels == overfit.labels
    assert loaded.training == overfit.training
    assert loaded.max_length == overfit.max_length
    before, after = overfit.model.state_dict(), loaded.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert loaded.tag([s.tokens for s in tiny]) == overfit.tag([s.tokens for s in tiny])
    with pytest.raises(ModelError, match=r"not a saved transformer NER \(no ner\.json\)"):
        load_transformer_ner(tmp_path / "missing")


def test_time_budget_stops_after_one_step_and_keeps_the_scored_epoch(
    tiny: list[TaggedSentence],
) -> None:
    scores: list[float | None] = []
    ner = train_transformer_ner(
        tiny,
        devel=tiny[:5],
        epochs=3,
        batch_size=10,
        time_budget=0.0,
        progress=lambda epoch, loss, f1: scores.append(f1),
    )
    assert len(scores) == 1
    assert ner.training["stopped_by"] == "time_budget"
    assert (ner.training["epochs_run"], ner.training["kept_epoch"]) == (1, 1)
    assert (ner.training["steps"], ner.training["planned_steps"]) == (1, 6)
    assert ner.training["devel_f1"] == round(scores[0] or 0.0, 4)


def test_bad_training_input_is_refused() -> None:
    with pytest.raises(ModelError, match="at least one B-/I- entity"):
        train_transformer_ner([TaggedSentence(("a",), ("O",))])
    with pytest.raises(ModelError, match="needs epochs >= 1"):
        train_transformer_ner([TaggedSentence(("a",), ("B-X",))], epochs=0)
