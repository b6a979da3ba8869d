"""Sentence embeddings from the bundled all-MiniLM-L6-v2 (offline, sha256-checked)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from clinsight.errors import ModelError
from clinsight.nlp import embeddings
from clinsight.nlp.embeddings import EMBEDDING_DIM, SentenceEncoder, load_sentence_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_embeddings_are_unit_rows_and_rank_related_text_closer() -> None:
    vectors = SentenceEncoder().fit_transform(
        ["chest pain and shortness of breath", "angina with dyspnea", "knee arthroscopy"]
    )
    assert vectors.shape == (3, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_loading_switches_hugging_face_offline_and_truncates() -> None:
    model = load_sentence_model(128)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert model.max_seq_length == 128
    assert load_sentence_model(128) is model


def test_no_text_gives_an_empty_matrix() -> None:
    assert SentenceEncoder().transform([]).shape == (0, EMBEDDING_DIM)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ModelError, match=r"max_seq_length must be in 8\.\.512"):
        SentenceEncoder(max_seq_length=4).fit(["x"])
    with pytest.raises(ModelError, match="batch_size must be at least 1"):
        SentenceEncoder(batch_size=0).transform(["x"])


def test_weights_other_than_the_published_ones_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not the model")
    monkeypatch.setattr(embeddings, "_model_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match="is missing or is not the published"):
        load_sentence_model(77)
