"""Use case: train an NER model on a corpus's train split, keep the epoch with the best devel
F1, score the official test split, and register the model with its card.

The recipes are the benchmarked ones (`benchmarks/notes.py --part ner`): the spaCy CNN
with averaged weights and batches of 16; MiniLM-L6 fine-tuned with AdamW at a peak
learning rate of 1e-4, 10 % warm-up then linear decay over the planned epochs, batches
of 16. Devel and test scores are strict entity-level F1 per label with 95 % bootstrap
intervals over sentences; the test split is scored once, after the epoch is chosen.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
import torch

from clinsight.data.notes import TaggedSentence, load_ner_corpus, nlp_data_path
from clinsight.errors import ModelError
from clinsight.files import sha256_file
from clinsight.nlp import NerBackend
from clinsight.nlp.entities import ProgressCallback, train_ner
from clinsight.nlp.trained_ner import NerModel, score_trained_ner
from clinsight.registry.ner import NerModelVersion, register_ner_model

__all__ = [
    "RECIPES",
    "NerSplits",
    "load_ner_splits",
    "sentences_sha256",
    "train_and_register_ner",
]

RECIPES: dict[NerBackend, dict[str, Any]] = {
    NerBackend.SPACY: {"epochs": 12, "patience": 5, "batch_size": 16, "average_weights": True},
    NerBackend.MINILM: {
        "epochs": 8, "batch_size": 16, "learning_rate": 1e-4, "warmup_fraction": 0.1,
    },
}  # fmt: skip
"""Training settings of each backend; `epochs` is the most that are run."""


@dataclass(frozen=True)
class NerSplits:
    """The train, devel and test sentences of a corpus, and the sha256 of the files read."""

    corpus: str
    train: Sequence[TaggedSentence]
    devel: Sequence[TaggedSentence]
    test: Sequence[TaggedSentence]
    files: dict[str, str] = field(default_factory=dict)


def load_ner_splits(corpus: str, *, train_subset: int | None = None) -> NerSplits:
    """The three splits of a CoNLL corpus under `<data dir>/nlp` (optionally only the first
    `train_subset` training sentences, for quick trials; devel and test stay whole).

    Raises:
        DataError: unknown corpus, or a malformed file.
        DataNotFoundError: a split's file is missing.
    """
    splits = {name: load_ner_corpus(corpus, name) for name in ("train", "devel", "test")}
    files = {name: sha256_file(nlp_data_path(corpus, "conll", f"{name}.tsv")) for name in splits}
    train = splits["train"][:train_subset] if train_subset else splits["train"]
    return NerSplits(corpus, train, splits["devel"], splits["test"], files)


def sentences_sha256(sentences: Sequence[TaggedSentence]) -> str:
    """The sha256 of sentences (tokens and tags, canonical JSON): what a model saw."""
    canonical = json.dumps([[s.tokens, s.tags] for s in sentences], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _fit(
    backend: NerBackend,
    splits: NerSplits,
    settings: dict[str, Any],
    time_budget_s: float | None,
    max_steps: int | None,
    seed: int,
    progress: ProgressCallback | None,
) -> tuple[NerModel, dict[str, Any]]:
    """Train one model as `settings` say; the model and what its trainer recorded."""
    common: dict[str, Any] = {
        "devel": splits.devel, "time_budget": time_budget_s, "max_steps": max_steps, "seed": seed,
    }  # fmt: skip
    if backend is NerBackend.SPACY:
        nlp = train_ner(splits.train, **common, **settings, progress=progress)
        return nlp, dict(nlp.meta["training"])
    from clinsight.nlp.transformer_ner import train_transformer_ner

    ner = train_transformer_ner(splits.train, **common, **settings, progress=progress)
    return ner, dict(ner.training)


def train_and_register_ner(
    registry_dir: Path,
    splits: NerSplits,
    backend: NerBackend | str,
    *,
    name: str | None = None,
    epochs: int | None = None,
    time_budget_s: float | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    progress: ProgressCallback | None = None,
) -> NerModelVersion:
    """Train on `splits.train` (best devel epoch kept), score devel and test, register the
    model as the next version of `name` (default ``<corpus>-<backend>``) as a candidate
    (promotion is an audited stage change: `services.models`). `progress(epoch, loss,
    devel_f1)` follows the epochs.

    Raises:
        ModelError: an empty split, no entity in the training sentences, or `epochs` < 1.
        RegistryError: invalid name.
    """
    backend = NerBackend(backend)
    if not (splits.train and splits.devel and splits.test):
        raise ModelError(
            f"Training an NER model needs train, devel and test sentences; {splits.corpus} has "
            f"{len(splits.train)}, {len(splits.devel)} and {len(splits.test)}."
        )
    settings = RECIPES[backend] | ({} if epochs is None else {"epochs": epochs})
    if settings["epochs"] < 1:
        raise ModelError(f"epochs must be at least 1; got {settings['epochs']}.")
    start = time.perf_counter()
    model, trainer = _fit(backend, splits, settings, time_budget_s, max_steps, seed, progress)
    seconds = time.perf_counter() - start
    scoring = {"n_bootstrap": n_bootstrap, "seed": seed}
    metrics = {
        "devel": score_trained_ner(model, splits.devel, **scoring),
        "test": score_trained_ner(model, splits.test, **scoring),
        "scoring": "strict entity-level (exact span and label); F1 95% bootstrap interval "
        "over sentences",
    }
    training = {
        "backend": backend, "corpus": splits.corpus, "trained_on": "train",
        "epoch_choice": "best devel F1", "data_sha256": sentences_sha256(splits.train),
        "data_files_sha256": splits.files, "train_sentences": len(splits.train),
        "devel_sentences": len(splits.devel), "test_sentences": len(splits.test),
        "settings": settings | {"time_budget_s": time_budget_s, "max_steps": max_steps},
        "seed": seed, "train_seconds": round(seconds, 1), **trainer,
        "python": platform.python_version(), "spacy": spacy.about.__version__,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }  # fmt: skip
    return register_ner_model(
        registry_dir,
        name=name or f"{splits.corpus}-{backend}",
        model=model,
        corpus=splits.corpus,
        metrics=metrics,
        training=training,
    )
