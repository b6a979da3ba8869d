"""Tiny trained NER models for the tests: real NCBI disease sentences, trained in seconds.

The models are cached per test session (they are never changed by the tests that use
them); `register_tiny` stores one in a registry with its scores and the sha256 of its
training sentences, as `train-ner` does.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import spacy
import torch
from spacy.language import Language

from clinsight.data.notes import TaggedSentence, read_conll
from clinsight.nlp.entities import tagged_to_doc, train_ner
from clinsight.nlp.trained_ner import NerModel, score_trained_ner
from clinsight.nlp.transformer_ner import TransformerNER, train_transformer_ner
from clinsight.registry.ner import REGISTRY, NerModelVersion, register_ner_model
from clinsight.registry.stages import Stage
from clinsight.services.ner_training import sentences_sha256

PHRASES = ("myotonic dystrophy", "breast cancer", "breast and ovarian cancer")
NOTE = (
    "HISTORY OF PRESENT ILLNESS: 45 y.o. woman with hypertension and muscular dystrophy. "
    "She denies myotonic dystrophy.\n"
    "FAMILY HISTORY: Mother had breast and ovarian cancer. Sister had breast cancer."
)
"""A note in which the vocabulary rules find hypertension, "breast" and breast cancer only."""


@cache
def tiny_sentences(data_dir: Path) -> tuple[TaggedSentence, ...]:
    """For each of `PHRASES`, the 8 shortest NCBI disease training sentences that tag it."""
    blank = spacy.blank("en")
    corpus = read_conll(data_dir / "nlp" / "ncbi_disease" / "conll" / "train.tsv")
    mentions = [{e.text.lower() for e in tagged_to_doc(blank, s).ents} for s in corpus]
    chosen: list[TaggedSentence] = []
    for phrase in PHRASES:
        tagged = [s for s, found in zip(corpus, mentions, strict=True) if phrase in found]
        chosen += sorted(tagged, key=lambda s: (len(s.tokens), s.tokens))[:8]
    return tuple(chosen)


@cache
def tiny_spacy(data_dir: Path) -> Language:
    """A spaCy CNN NER that knows the 24 sentences by heart (about 3 s)."""
    return train_ner(list(tiny_sentences(data_dir)), epochs=20, batch_size=6)


@cache
def tiny_minilm(data_dir: Path) -> TransformerNER:
    """MiniLM-L6 fine-tuned on the 24 sentences at a high learning rate (about 10 s, 1 thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_transformer_ner(
            list(tiny_sentences(data_dir)),
            epochs=5,
            batch_size=8,
            learning_rate=1e-3,
            warmup_fraction=0.0,
        )
    finally:
        torch.set_num_threads(before)


def register_tiny(
    registry: Path, model: NerModel, data_dir: Path, *, name: str, promote: bool = True
) -> NerModelVersion:
    """Register `model` as the next version of `name` (scored on its own training
    sentences), in production unless `promote` is False."""
    sentences = tiny_sentences(data_dir)
    scores = score_trained_ner(model, sentences, n_bootstrap=50)
    version = register_ner_model(
        registry,
        name=name,
        model=model,
        corpus="ncbi_disease",
        metrics={"devel": scores, "test": scores},
        training={"data_sha256": sentences_sha256(sentences), "train_sentences": len(sentences)},
    )
    if not promote:
        return version
    return REGISTRY.promote(registry, name, version.version, Stage.PRODUCTION)
