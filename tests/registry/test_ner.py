"""NER models in the registry: folder, record, card, manifest checks, stages, and the
train-and-register use case on a tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinsight.data.notes import TaggedSentence
from clinsight.errors import IntegrityError, ModelError, ModelNotFoundError, RegistryError
from clinsight.nlp.trained_ner import NerModel, tag_words
from clinsight.registry.image import list_models
from clinsight.registry.ner import (
    REGISTRY,
    get_ner_model,
    list_ner_models,
    load_ner_model,
    production_ner_models,
    register_ner_model,
)
from clinsight.registry.stages import Stage
from clinsight.services.ner_training import NerSplits, sentences_sha256, train_and_register_ner
from tests.support.ner_models import register_tiny, tiny_minilm, tiny_sentences, tiny_spacy


@pytest.fixture
def registry(tmp_path: Path, data_dir: Path) -> Path:
    """A registry with tiny-spacy v1 (candidate) and tiny-minilm v1 (candidate)."""
    root = tmp_path / "registry"
    register_tiny(root, tiny_spacy(data_dir), data_dir, name="tiny-spacy", promote=False)
    register_tiny(root, tiny_minilm(data_dir), data_dir, name="tiny-minilm", promote=False)
    return root


def test_version_folders_hold_model_record_card_and_manifest(registry: Path) -> None:
    spacy_version = get_ner_model(registry, "tiny-spacy", 1)
    assert sorted(p.name for p in spacy_version.path.iterdir()) == [
        "card.json", "card.md", "manifest.json", "model", "model.json",
    ]  # fmt: skip
    assert (spacy_version.backend, spacy_version.corpus, spacy_version.labels) == (
        "spacy", "ncbi_disease", ("Disease",),
    )  # fmt: skip
    assert (spacy_version.stage, spacy_version.source) == (Stage.CANDIDATE, "tiny-spacy v1")
    record = json.loads((spacy_version.path / "model.json").read_text())
    assert (record["kind"], record["pipeline_labels"]) == ("ner", {"Disease": "PROBLEM"})
    manifest = json.loads((spacy_version.path / "manifest.json").read_text())
    assert manifest["artifact"] == "model/ner/model"
    assert "model/config.cfg" in manifest["files"]
    minilm = get_ner_model(registry, "tiny-minilm", 1)
    assert minilm.backend == "minilm"
    manifest = json.loads((minilm.path / "manifest.json").read_text())
    assert manifest["artifact"] == "model/model.safetensors"
    assert minilm.artifact_sha256 == manifest["files"]["model/model.safetensors"]
    card = minilm.card_path.read_text()
    assert "| Architecture | MiniLM-L6 token tagger |" in card
    assert "| Test / Disease / F1 | " in card
    assert "(95% CI " in card
    assert "Trained on PubMed abstracts" in card
    assert "| Pipeline labels / Disease | PROBLEM |" in card
    assert list_models(registry) == []  # NER models are not image models


def test_loading_checks_the_manifest_and_gives_the_same_tags(
    registry: Path, data_dir: Path
) -> None:
    words = [list(s.tokens) for s in tiny_sentences(data_dir)]
    originals: dict[str, NerModel] = {
        "tiny-spacy": tiny_spacy(data_dir), "tiny-minilm": tiny_minilm(data_dir),
    }  # fmt: skip
    for name, original in originals.items():
        loaded = load_ner_model(get_ner_model(registry, name, 1))
        assert loaded.source == f"{name} v1"
        assert tag_words(loaded.model, words) == tag_words(original, words)
    weights = get_ner_model(registry, "tiny-spacy", 1).path / "model" / "ner" / "model"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    version = get_ner_model(registry, "tiny-spacy", 1, verify=False)
    with pytest.raises(IntegrityError, match=r"model/ner/model has sha256 .* changed after"):
        load_ner_model(version)
    with pytest.raises(IntegrityError, match="changed after registration"):
        REGISTRY.promote(registry, "tiny-spacy", 1, Stage.PRODUCTION)
    extra = get_ner_model(registry, "tiny-minilm", 1, verify=False).path / "model" / "extra.py"
    extra.write_text("print('hello')\n")
    with pytest.raises(IntegrityError, match=r"files not in its manifest: model/extra\.py"):
        get_ner_model(registry, "tiny-minilm", 1)


def test_stages_promotion_rollback_and_production_models(registry: Path, data_dir: Path) -> None:
    assert production_ner_models(registry) == []
    before = REGISTRY.stamps(registry)
    assert [name for name, _ in before] == ["tiny-minilm", "tiny-spacy"]
    REGISTRY.promote(registry, "tiny-spacy", 1, Stage.PRODUCTION, note="first")
    assert REGISTRY.stamps(registry) != before
    register_tiny(registry, tiny_spacy(data_dir), data_dir, name="tiny-spacy")  # v2 promoted
    assert [(v.source, v.stage) for v in list_ner_models(registry, "tiny-spacy")] == [
        ("tiny-spacy v1", Stage.ARCHIVED), ("tiny-spacy v2", Stage.PRODUCTION),
    ]  # fmt: skip
    assert [v.source for v in production_ner_models(registry)] == ["tiny-spacy v2"]
    assert REGISTRY.rollback(registry, "tiny-spacy").source == "tiny-spacy v1"
    assert [v.source for v in production_ner_models(registry)] == ["tiny-spacy v1"]
    assert [(c.version, c.to_stage, c.note) for c in REGISTRY.history(registry, "tiny-spacy")] == [
        (1, Stage.CANDIDATE, "registered"),
        (1, Stage.PRODUCTION, "first"),
        (2, Stage.CANDIDATE, "registered"),
        (1, Stage.ARCHIVED, "replaced by v2"),
        (2, Stage.PRODUCTION, ""),
        (2, Stage.ARCHIVED, "replaced by v1"),
        (1, Stage.PRODUCTION, "rollback"),
    ]
    with pytest.raises(ModelNotFoundError, match="'tiny-minilm' has no earlier production"):
        REGISTRY.rollback(registry, "tiny-minilm")
    with pytest.raises(ModelNotFoundError, match=r"No NER model named 'nope'.*train-ner"):
        get_ner_model(registry, "nope")
    with pytest.raises(ModelNotFoundError, match=r"has no version 9; it has: v1 \(candidate\)"):
        get_ner_model(registry, "tiny-minilm", 9)


def test_register_refuses_bad_names_and_a_missing_data_sha256(
    tmp_path: Path, data_dir: Path
) -> None:
    model = tiny_spacy(data_dir)
    with pytest.raises(RegistryError, match="Invalid model name 'Bad Name'"):
        register_ner_model(tmp_path, name="Bad Name", model=model, corpus="c", metrics={},
                           training={"data_sha256": "0" * 64})  # fmt: skip
    with pytest.raises(RegistryError, match=r"training\['data_sha256'\] must be the sha256"):
        register_ner_model(tmp_path, name="ok", model=model, corpus="c", metrics={}, training={})
    assert list_ner_models(tmp_path) == []


def test_train_and_register_scores_devel_and_test_and_promotes(
    tmp_path: Path, data_dir: Path
) -> None:
    sentences = list(tiny_sentences(data_dir))
    splits = NerSplits("ncbi_disease", sentences, sentences[::3], sentences[1::3])
    epochs: list[int] = []
    version = train_and_register_ner(
        tmp_path, splits, "spacy", name="tiny", epochs=3, n_bootstrap=20,
        progress=lambda epoch, loss, f1: epochs.append(epoch),
    )  # fmt: skip
    assert epochs == [0, 1, 2]
    assert (version.source, version.stage, version.backend) == ("tiny v1", "candidate", "spacy")
    training = version.training
    assert training["data_sha256"] == sentences_sha256(sentences)
    assert (training["train_sentences"], training["devel_sentences"]) == (24, 8)
    assert training["settings"]["batch_size"] == 16
    assert training["epochs_run"] == 3
    assert set(version.metrics["test"]) == {"ALL", "Disease"}
    assert version.metrics["devel"]["ALL"]["f1"]["value"] == training["devel_f1"]
    empty = NerSplits("x", sentences, [], sentences)
    with pytest.raises(ModelError, match="needs train, devel and test sentences"):
        train_and_register_ner(tmp_path, empty, "spacy")
    untagged = [TaggedSentence(("a",), ("O",))]
    with pytest.raises(ModelError, match="at least one B-/I- tagged entity"):
        train_and_register_ner(tmp_path, NerSplits("x", untagged, untagged, untagged), "spacy")
