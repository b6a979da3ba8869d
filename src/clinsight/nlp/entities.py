"""Clinical entity recognition: vocabulary rules and a trainable spaCy NER.

Rules come from open vocabularies in `rules/entities.json` (problems with their
ICD-10-CM codes, medications, procedures, tests, anatomy) and run as a spaCy
`EntityRuler` matching lower-cased tokens. The statistical NER learns diseases and
chemicals from NCBI disease / BC5CDR (CoNLL BIO files) and is scored with strict
entity-level precision, recall and F1 (`entity_scores`, shared with the fine-tuned
transformer NER of `transformer_ner`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.pipeline import EntityRuler
from spacy.tokens import Doc
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo
from thinc.api import fix_random_seed

from clinsight.data.notes import TaggedSentence
from clinsight.errors import DataError, ModelError
from clinsight.nlp import Scores, load_rules

__all__ = [
    "ENTITY_LABELS",
    "StepBudget",
    "add_entity_ruler",
    "entity_patterns",
    "entity_scores",
    "evaluate_ner",
    "load_ner",
    "tagged_to_doc",
    "train_ner",
]

ENTITY_LABELS = ("PROBLEM", "MEDICATION", "PROCEDURE", "TEST", "ANATOMY")

ProgressCallback = Callable[[int, float, float | None], None]


@dataclass
class StepBudget:
    """The update budget of an NER training run (spaCy or transformer): training stops
    after the update that reaches `max_steps` or ends `time_budget` seconds after the start."""

    max_steps: int | None
    time_budget: float | None
    steps: int = 0
    start: float = field(default_factory=time.perf_counter)

    def spend(self) -> str | None:
        """Count one update; what stops training ("max_steps", "time_budget") or None."""
        self.steps += 1
        if self.max_steps is not None and self.steps >= self.max_steps:
            return "max_steps"
        if self.time_budget is not None and time.perf_counter() - self.start >= self.time_budget:
            return "time_budget"
        return None


def entity_patterns(path: Path | None = None) -> list[dict[str, Any]]:
    """EntityRuler phrase patterns from the vocabulary file; a PROBLEM's id is its ICD-10-CM code.

    Raises:
        DataError: the file is missing, malformed, or an entry has no term.
    """
    data = load_rules("entities", path)
    patterns: list[dict[str, Any]] = []
    for label in ENTITY_LABELS:
        for entry in data.get(label, []):
            if not entry.get("term"):
                raise DataError(f"Vocabulary entry {entry!r} under {label} has no 'term'.")
            concept = entry.get("icd10") or entry["term"]
            for phrase in (entry["term"], *entry.get("synonyms", ())):
                patterns.append({"label": label, "pattern": phrase, "id": concept})
    return patterns


def add_entity_ruler(nlp: Language, *, overwrite: bool = False) -> EntityRuler:
    """Add the vocabulary `EntityRuler` (case-insensitive phrase matching) to `nlp`."""
    ruler = nlp.add_pipe(
        "entity_ruler",
        name="clinical_vocabulary",
        config={"phrase_matcher_attr": "LOWER", "overwrite_ents": overwrite},
    )
    assert isinstance(ruler, EntityRuler)
    with nlp.select_pipes(enable=[]):
        ruler.add_patterns(entity_patterns())
    return ruler


def tagged_to_doc(nlp: Language, sentence: TaggedSentence) -> Doc:
    """A Doc of the sentence's tokens with its BIO tags as entities.

    Raises:
        DataError: the tags are not a valid BIO sequence.
    """
    bad = [t for t in sentence.tags if t != "O" and t[:2] not in ("B-", "I-")]
    if len(sentence.tags) != len(sentence.tokens) or bad:
        raise DataError(
            f"Invalid BIO tags in {' '.join(sentence.tokens)[:80]!r}: need one O/B-X/I-X tag "
            f"per token, got {len(sentence.tags)} for {len(sentence.tokens)} ({bad[:3]})."
        )
    doc = Doc(nlp.vocab, words=list(sentence.tokens))
    doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(list(sentence.tags)))
    return doc


def train_ner(
    train: Sequence[TaggedSentence],
    *,
    devel: Sequence[TaggedSentence] | None = None,
    epochs: int = 10,
    patience: int | None = None,
    batch_size: int = 32,
    dropout: float = 0.2,
    embed_size: int = 2000,
    average_weights: bool = False,
    max_steps: int | None = None,
    time_budget: float | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Language:
    """Train a blank-English spaCy NER on BIO-tagged sentences (seeded, CPU).

    With `devel`, the strict F1 on it is measured after each epoch and the weights of the
    best epoch are kept; training stops early after `patience` epochs without a better
    one. `embed_size` is the number of rows of the hashed word-embedding table;
    `average_weights` keeps a running average of the weights (Polyak averaging) and
    uses it for scoring and for the returned model. Training also stops after the update
    that reaches `max_steps` updates (for smoke tests) or passes `time_budget` seconds;
    that part-epoch is scored like the others. `progress(epoch, loss, devel_f1)` is
    called after each epoch (`devel_f1` None without `devel`). `nlp.meta["training"]`
    records the epochs run, the one kept, the updates made and what stopped training
    early (None, "patience", "max_steps" or "time_budget").

    Raises:
        ModelError: `train` is empty or holds no entity.
    """
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner", config={"model": {"tok2vec": {"embed_size": embed_size}}})
    examples = [Example(Doc(nlp.vocab, words=list(s.tokens)), tagged_to_doc(nlp, s)) for s in train]
    labels = sorted({e.label_ for ex in examples for e in ex.reference.ents})
    if not labels:
        raise ModelError("train_ner needs sentences with at least one B-/I- tagged entity.")
    for label in labels:
        ner.add_label(label)  # type: ignore[attr-defined]
    fix_random_seed(seed)
    optimizer = nlp.initialize(lambda: examples)
    if average_weights:
        optimizer.averages = {}
    rng = random.Random(seed)
    budget = StepBudget(max_steps, time_budget)
    epochs_run, best_f1, best_epoch, best_weights = 0, -1.0, 0, b""
    stopped_by = None
    while epochs_run < epochs and stopped_by is None:
        rng.shuffle(examples)
        losses: dict[str, float] = {}
        for first in range(0, len(examples), batch_size):
            nlp.update(
                examples[first : first + batch_size], drop=dropout, sgd=optimizer, losses=losses
            )
            stopped_by = budget.spend()
            if stopped_by is not None:
                break
        epochs_run += 1
        devel_f1 = None
        if devel is not None:
            with nlp.use_params(optimizer.averages or {}):
                devel_f1 = evaluate_ner(nlp, devel)["ALL"].f1
                if devel_f1 > best_f1:
                    best_f1, best_epoch, best_weights = devel_f1, epochs_run, nlp.to_bytes()
        if progress is not None:
            progress(epochs_run - 1, float(losses.get("ner", 0.0)), devel_f1)
        if devel is not None and patience is not None and epochs_run - best_epoch >= patience:
            stopped_by = "patience"
    if devel is None:
        best_epoch = epochs_run
        if optimizer.averages:
            with nlp.use_params(optimizer.averages):
                best_weights = nlp.to_bytes()
    if best_weights:
        nlp.from_bytes(best_weights)
    nlp.meta["training"] = {
        "epochs_run": epochs_run,
        "kept_epoch": best_epoch,
        "devel_f1": round(best_f1, 4) if devel is not None else None,
        "steps": budget.steps,
        "stopped_by": stopped_by,
    }
    return nlp


def load_ner(path: Path) -> Language:
    """Load an NER model saved with `nlp.to_disk` (config + msgpack weights, no pickle).

    Raises:
        ModelError: the folder is missing or is not a spaCy pipeline with an `ner` component.
    """
    if not (path / "config.cfg").is_file():
        raise ModelError(f"{path} is not a saved spaCy pipeline (no config.cfg); train one first.")
    nlp = spacy.load(path)
    if "ner" not in nlp.pipe_names:
        raise ModelError(f"The pipeline in {path} has no 'ner' component.")
    return nlp


def evaluate_ner(nlp: Language, sentences: Iterable[TaggedSentence]) -> dict[str, Scores]:
    """Strict entity-level scores per label and overall (`"ALL"`) on gold-tokenised sentences."""
    return entity_scores(
        (tagged_to_doc(nlp, s), nlp(Doc(nlp.vocab, words=list(s.tokens)))) for s in sentences
    )


def entity_scores(pairs: Iterable[tuple[Doc, Doc]]) -> dict[str, Scores]:
    """Strict entity-level scores per label and overall (`"ALL"`) of (gold, predicted) Docs
    over the same tokens: a predicted entity counts only with its exact span and label."""
    counts: dict[str, list[int]] = {}
    for gold, predicted in pairs:
        gold_set = {(e.start, e.end, e.label_) for e in gold.ents}
        pred_set = {(e.start, e.end, e.label_) for e in predicted.ents}
        for label in {x[2] for x in gold_set | pred_set}:
            g = {x for x in gold_set if x[2] == label}
            p = {x for x in pred_set if x[2] == label}
            for key in (label, "ALL"):
                tally = counts.setdefault(key, [0, 0, 0])
                tally[0] += len(g & p)
                tally[1] += len(p - g)
                tally[2] += len(g - p)
    return {label: Scores(*tally) for label, tally in sorted(counts.items())}
