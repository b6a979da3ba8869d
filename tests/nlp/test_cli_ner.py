"""`clinsight nlp train-ner`, `clinsight models list | promote | rollback` of NER models, and
`annotate` with the NER models in production (or `--no-ner`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinsight.config import get_settings
from clinsight.registry.ner import get_ner_model
from clinsight.registry.stages import Stage
from tests.support.cli import run_cli, wide_console
from tests.support.ner_models import NOTE, register_tiny, tiny_spacy

__all__ = ["wide_console"]  # the autouse fixture: tables on one line, as in a wide terminal


def test_train_ner_registers_scores_and_promotes(data_dir: Path) -> None:
    code, out = run_cli(
        "nlp", "train-ner", "--corpus", "ncbi_disease", "--backend", "spacy", "--epochs", "1",
        "--train-subset", "40", "--threads", "1", "--promote",
    )  # fmt: skip
    assert code == 0, out
    assert "Trained 1 epochs on 40 sentences" in out
    assert "ncbi_disease-spacy v1: strict entity F1 (95% CI)" in out
    assert "Registered ncbi_disease-spacy v1 (stage production); card: " in out
    version = get_ner_model(get_settings().resolved_registry_dir, "ncbi_disease-spacy")
    assert version.stage is Stage.PRODUCTION
    assert (version.training["devel_sentences"], version.training["test_sentences"]) == (923, 940)
    assert len(version.training["data_files_sha256"]["test"]) == 64
    code, out = run_cli("models", "list", "--kind", "ner")
    assert code == 0
    assert "│ ner  │ ncbi_disease-spacy │ 1       │ production │ test F1 0." in out


def test_train_ner_explains_wrong_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run_cli("nlp", "train-ner", "--corpus", "i2b2", "--backend", "spacy")
    assert (code, out.strip()) == (
        2, "Error: Unknown NER corpus 'i2b2'; choose one of: ncbi_disease, bc5cdr.",
    )  # fmt: skip
    code, out = run_cli("nlp", "train-ner", "--corpus", "bc5cdr", "--backend", "bert")
    assert (code, out.strip()) == (2, "Error: Unknown --backend 'bert'; use spacy or minilm.")
    monkeypatch.setenv("CLINSIGHT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    code, out = run_cli("nlp", "train-ner", "--corpus", "bc5cdr", "--backend", "spacy")
    assert code == 2
    assert "bc5cdr/conll/train.tsv does not exist; put the clinical-text data under" in out
    assert "or set CLINSIGHT_DATA_DIR" in out
    code, out = run_cli("models", "promote", "ner", "nope", "1")
    assert code == 2
    assert "No NER model named 'nope'; registered: none." in out


def test_annotate_uses_the_production_ner_models_unless_told_not_to(
    data_dir: Path, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    code, out = run_cli("nlp", "annotate", str(note))
    assert code == 0, out
    assert "NER models: none (vocabulary rules only)" in out
    registry = get_settings().resolved_registry_dir
    register_tiny(registry, tiny_spacy(data_dir), data_dir, name="tiny", promote=False)
    code, out = run_cli("models", "promote", "ner", "tiny", "1")
    assert (code, out.strip()) == (0, "ner model tiny v1 is now production.")
    code, out = run_cli("nlp", "annotate", str(note), "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["ner_models"] == ["tiny v1"]
    found = [(e["text"], e["assertion"], e["source"]) for e in result["entities"]]
    assert ("myotonic dystrophy", "negated", "tiny v1") in found
    assert ("hypertension", "present", "vocabulary") in found
    code, out = run_cli("nlp", "annotate", str(note))
    assert "NER models: tiny v1" in out
    assert "│ myotonic dystrophy        │ PROBLEM │ negated   │" in out
    code, out = run_cli("nlp", "annotate", str(note), "--no-ner", "--json")
    assert json.loads(out)["ner_models"] == []
    assert "myotonic dystrophy" not in {e["text"] for e in json.loads(out)["entities"]}
    register_tiny(registry, tiny_spacy(data_dir), data_dir, name="tiny")  # v2 in production
    assert json.loads(run_cli("nlp", "annotate", str(note), "--json")[1])["ner_models"] == [
        "tiny v2"
    ]
    code, out = run_cli("models", "rollback", "ner", "tiny")
    assert (code, out.strip()) == (0, "ner model tiny v1 is back in production.")
    assert json.loads(run_cli("nlp", "annotate", str(note), "--json")[1])["ner_models"] == [
        "tiny v1"
    ]
