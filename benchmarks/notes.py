"""Clinical-notes benchmark: assertion, NER, de-identification, specialty, search.

Parts (``--part``, default all):
- ``assertion``: Clinsight's ConText component on the NegEx/ConText annotations
  (``nlp/negex/dev.tsv``), F1 per label on the whole file, on its rule-tuning part, on
  its held-out part (``split_context_annotations``: 30 % of the sentences by SHA-256 of
  their text) and on that part without near-copies (rows whose case-folded,
  space-collapsed sentence also occurs in the tuning part are dropped), and sentences per
  second, beside the issue's reference figures for
  medSpaCy 1.3.1 default ConText on the whole file (medSpaCy itself cannot be installed
  beside numpy 2, so its numbers are quoted, not re-run).
- ``ner``: a blank-English spaCy NER per corpus (NCBI disease, BC5CDR), scored with
  strict entity-level F1 on the official test sets. By default trained on train + devel
  for a fixed ``--epochs``; with ``--select-on-devel`` trained on train only, scored on
  devel after every epoch, the best epoch kept (stop after ``--patience`` epochs without
  a better one); adding ``--refit`` then retrains on train + devel for that many epochs.
  ``--average-weights``, ``--embed-size``, ``--dropout`` and ``--batch-size`` set the
  model. CPU, seeded. ``--backend minilm`` fine-tunes the bundled all-MiniLM-L6-v2
  encoder for BIO tagging instead (``transformer_ner``): trained on train only, the epoch
  with the best devel F1 kept, ``--learning-rate``, ``--warmup`` (fraction of the steps)
  and ``--time-budget`` (minutes; training stops cleanly after the step that passes
  it); recorded beside the spaCy model as ``<corpus>/minilm``.
- ``deid``: known identifiers inserted into every deduplicated MTSamples note, recall and
  precision per identifier type (identifiers already in MTSamples count as false
  positives, so precision is a lower bound). The identifiers come from rules/deid.json's
  own generator, so its recall cannot fail: a regression check, not a measurement. The
  measurement is ``benchmarks/safety.py --part deid``.
- ``classify``: specialty of an MTSamples note on the deduplicated, text-disjoint split
  (``split_mtsamples``, 20 % test, seed 0), labels from ``specialty_label`` (document
  types dropped, specific specialties before "Surgery"/"General Medicine", fewer than 20
  training notes → "Other"): majority class, TF-IDF + calibrated LinearSVC, and
  all-MiniLM-L6-v2 embeddings (first 128 word pieces) + logistic regression; macro-F1
  and accuracy with 95 % bootstrap intervals. About 3 minutes of CPU (2 threads).
- ``search``: known-item retrieval over ``--search-notes`` test-split notes, each note's
  MTSamples ``description`` as the query and the note itself as the one relevant hit:
  MRR@10, recall@1 and recall@10 for keyword (BM25), semantic and hybrid search.

Run: ``.venv/bin/python benchmarks/notes.py [--part assertion|ner|deid|classify|search]
[--epochs N] [--corpus ncbi_disease|bc5cdr] [--select-on-devel] [--patience N]
[--refit] [--average-weights] [--embed-size N] [--dropout P] [--batch-size N]
[--backend spacy|minilm] [--learning-rate LR] [--warmup F] [--time-budget MIN] [--threads N]
[--search-notes N]``.
Writes ``benchmarks/results/notes.json`` (merged per part and per NER corpus), prints a
Markdown table and writes it as the ``notes`` section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import torch
from spacy.language import Language

import clinsight.nlp.sentences  # noqa: F401 - registers the factory
from clinsight.config import get_settings
from clinsight.data.medmnist import TaskType
from clinsight.data.notes import (
    ContextAnnotation,
    TaggedSentence,
    load_context_annotations,
    load_mtsamples,
    load_ner_corpus,
    split_context_annotations,
    split_mtsamples,
)
from clinsight.evaluation.metrics import classification_metrics
from clinsight.nlp.assertion import AssertionReport, evaluate_assertion
from clinsight.nlp.classify import OTHER, SpecialtyClassifier, labelled_notes
from clinsight.nlp.deid import evaluate_deid, insert_identifiers
from clinsight.nlp.entities import evaluate_ner, train_ner
from clinsight.nlp.search import NoteIndex
from clinsight.nlp.transformer_ner import evaluate_transformer_ner, train_transformer_ner
from common import machine, read_results, update_readme_section, write_results

SEED = 0
HELD_OUT_FRACTION = 0.3
ASSERTION_PARTS = {  # results key: table column
    "all": "Clinsight, all",
    "tuning": "tuning part",
    "held_out": "held-out part",
    "held_out_without_near_copies": "held-out, no near-copies",
}
MEDSPACY_REFERENCE = {
    "negated_f1": 0.923,
    "historical_f1": 0.635,
    "hypothetical_f1": 0.691,
    "sentences_per_second": 280,
}
README_INTRO = """## Clinical notes

`benchmarks/notes.py` (parts: assertion, ner, deid, classify, search; seed 0, CPU).
spaCy 3.8 with ConText-style components of our own (rules as JSON), so numpy 2 stays:
medSpaCy 1.3.1 pins spaCy 3.7 / thinc 8.2, which fail to import beside numpy 2. Its row
is the issue's measurement on this machine (default ConText rules, whole dev.tsv),
quoted, not re-run. dev.tsv is split by a hash of the sentence text into a rule-tuning
part (70 %) and a held-out part (30 %) whose errors are not looked at while writing
rules. The rules before this split existed were written while looking at the whole
dev.tsv, so the held-out part is held out only for the rule changes made since the
split (a problem-list rule for bare chronic-condition lines, "again seen"-style
triggers, "who" ending a history scope, more past-history headings). Those changes lift
historical F1 on the tuning part from 0.786 to 0.866 but not on the held-out part
(0.793 with the rules from before the split, 0.780 after: 23 of 32 found, 4 false
positives). A second round, written from tuning-part errors only (a matcher fix: rules
sharing one phrase, such as "in the past" forward and backward, now all fire; standard
past-history phrasings; "quit smoking"; obstetric, menstrual and psychiatric history
headings), lifts the tuning part to 0.877 and leaves the held-out part at 0.780, below
the 0.80 target. A check inside the tuning part (rules written from one half's errors,
scored on the other half) showed no transfer either: the remaining misses follow the
annotators' habits more than wording. A learned step after the rules was tried and not
shipped: an L2 logistic regression deciding `is_historical` from the rules' flags,
trigger positions, section, line shape and cue words, chosen by 5-fold cross-validation
inside the tuning part grouped by case-folded sentence (historical F1 0.875, against
0.877 for the rules in-sample); the held-out part, scored once, gave 0.767 against 0.780
for the rules alone, and 0.522 against 0.545 without near-copies. dev.tsv repeats many
sentences with another concept in capitals, and the split hashes the exact text, so
copies of one sentence fall on both sides: 153 of the 358 held-out rows have a
case-folded, space-collapsed sentence that also occurs in the tuning part, which
inflates the plain held-out figure. The column "held-out, no near-copies" drops them:
205 rows, 13 of them historical, where the rules find 6 with 3 false positives (0.545),
and 1 hypothetical, missed (0.000): too few for precise figures; fair ones need another
annotated corpus.
A third round (issue 13) was written from clinical-language knowledge, not from dev.tsv
rows (references: the ConText lexicon and medSpaCy 1.3.1's default English rules): rule
literals may use token classes (`<year>`, `<num>`, `<month>`, `<decade>`), so dated and aged
events ("in 2011", "since 1998", "at age 19", "in her 20s", "for many years", life stages
read both ways) are historical; short spans and the current encounter ("for 3 days",
"c/o", "brought in", "on arrival") end a history scope; conditionals ("should the patient"),
return precautions, risks ("risks include"), "<x> precautions", "<x> prophylaxis" and "prn"
are hypothetical, "return of" and "if possible" are pseudo, "because"/"since" end a
hypothetical; overlapping matches keep the longest phrase (so "as needed for" beats the
"as needed" pseudo); a return-precautions section is hypothetical, hospitalization and
surgery headings historical. Plan and discharge-instruction sections get no default, as
they also name the current problems (the 10 tuning sentences with the word "plan" are
all recent), nor does a bare "History" heading, often the present illness; rule-out stays
uncertain, not hypothetical (the 5 tuning rows with "rule out", "r/o" or "ruled out" are
all recent). Scored once: the tuning part is unchanged (historical 0.877, hypothetical
0.960; the new phrasings do not occur in it), the held-out part gets one more historical
false positive (0.780 to 0.767; without near-copies 0.545 to 0.522), hypothetical
unchanged (0.947). So dev.tsv cannot show
whether this round generalises: the issue's figures on annotations the project has never
seen (historical 0.71, hypothetical 0.95 against medSpaCy's 0.97) need re-scoring there.
The 348 sentences/s were measured on a host under load (about 11 on 2 cores), not
comparable with earlier rows. medSpaCy as a measured anchor row was checked again and
skipped: pip resolves medspacy 1.3.1 on Python 3.11 to spaCy 3.7.5, thinc 8.2.5 and
numpy 1.26.4 (it allows spaCy 3.8 only on Python 3.12 and later).
After that one run, some rules were changed after trying them on sentences written for
the purpose (not on its figures), and not re-scored: "in the <decade>" matched
"saturations in the 80s" (now four-digit decades only; ages as "in her 20s" have their
own class); "return with" ("pain may return with exertion") and "contact the" went;
"return to clinic" and "return in" (a follow-up visit) are pseudo, so a bare "return" no
longer makes the problem to recheck hypothetical; "prophylaxis of" and "diagnosed <year>"
were added. The tuning part is unchanged.
NER is entity-level strict on the official test sets; the "trained on" column says
whether the model saw train + devel for a fixed number of epochs, or train only with
the epoch kept by its devel F1, or (refit) train + devel for the epochs that a
train-only run picked on devel. Choices use devel, never test. NCBI disease runs so
far (test F1, seen only after the choice; "avg" = averaged weights; train only with the
best devel epoch unless said): train + devel, 20 fixed epochs 0.795; of 8 epochs:
defaults 0.797, avg 0.802, avg + 10,000 embedding rows 0.792; of 12 epochs, avg with
dropout 0.1 0.784, dropout 0.3 0.800, batch 16 0.791 (best devel F1, 0.826, so it is
the setting in the table); avg up to 60 epochs, patience 10: 0.797 (epoch 19), refit on
train + devel for 19 epochs 0.789. This CNN NER without pretrained vectors sits at
0.79-0.80, short of the 0.80 target. The MiniLM-L6 rows fine-tune the bundled
all-MiniLM-L6-v2 encoder as a token classifier (`nlp/transformer_ner.py`: BIO tag on each
word's first word piece; AdamW, peak lr 1e-4, linear warm-up over 10 % of 8 planned
epochs then linear decay, batch 16, seed 0, one CPU thread, 27-minute training budget
not reached), on train only with the best devel epoch kept; test scored once, at the
end. One configuration, the same for both corpora, nothing tuned. Devel F1 per epoch,
NCBI disease: 0.729, 0.806, 0.830, 0.803, 0.805, 0.823, 0.821, 0.822 (epoch 3 kept,
against 0.826 for the best CNN); BC5CDR: 0.764, 0.807, 0.815, 0.831, 0.831, 0.840,
0.836, 0.839 (epoch 6 kept). The BC5CDR CNN row saw train + devel, the MiniLM one train
only. De-identification counts identifiers already in MTSamples as false positives
(precision is a lower bound).
"""
NER_MODELS = {"spacy": "spaCy CNN", "minilm": "MiniLM-L6 fine-tuned"}
NER_TARGETS = {"ncbi_disease": {"Disease": 0.80}, "bc5cdr": {"Chemical": 0.85, "Disease": 0.75}}


def _sentence_key(sentence: str) -> str:
    """The sentence case-folded with its white space collapsed, the key of near-copies."""
    return " ".join(sentence.split()).casefold()


def _without_near_copies(
    held_out: Sequence[ContextAnnotation], tuning: Sequence[ContextAnnotation]
) -> list[ContextAnnotation]:
    """The `held_out` rows whose sentence, case-folded and space-collapsed, is not in `tuning`:
    dev.tsv repeats sentences with another concept in capitals, and the split hashes the
    exact text, so such copies fall on both sides."""
    seen = {_sentence_key(row.sentence) for row in tuning}
    return [row for row in held_out if _sentence_key(row.sentence) not in seen]


def _assertion_scores(report: AssertionReport) -> dict[str, Any]:
    return {
        "sentences": report.sentences,
        "unlocated_conditions": report.unlocated,
        "negated": report.negated.as_dict(),
        "historical": report.historical.as_dict(),
        "hypothetical": report.hypothetical.as_dict(),
        "other_experiencer": report.other_experiencer.as_dict(),
    }


def benchmark_assertion(repeats: int = 3) -> dict[str, Any]:
    """ConText F1 per label on dev.tsv, its tuning part, its held-out part and that part
    without near-copies; throughput is the best of `repeats` runs over the whole file."""
    nlp = spacy.blank("en")
    for name in ("clinical_sentences", "clinical_sections", "clinical_context"):
        nlp.add_pipe(name)
    rows = load_context_annotations()
    tuning, held_out = split_context_annotations(rows, HELD_OUT_FRACTION)
    reports = [evaluate_assertion(nlp, rows) for _ in range(repeats)]
    return {
        "data": "nlp/negex/dev.tsv",
        "split": {
            "held_out_fraction": HELD_OUT_FRACTION,
            "by": "SHA-256 of the sentence text",
            "held_out_since": "rules written before the split saw the whole file",
            "held_out_without_near_copies": "held-out rows whose case-folded, space-collapsed "
            "sentence does not occur in the tuning part",
        },
        "parts": {
            "all": _assertion_scores(reports[0]),
            "tuning": _assertion_scores(evaluate_assertion(nlp, tuning)),
            "held_out": _assertion_scores(evaluate_assertion(nlp, held_out)),
            "held_out_without_near_copies": _assertion_scores(
                evaluate_assertion(nlp, _without_near_copies(held_out, tuning))
            ),
        },
        "sentences_per_second": round(max(r.sentences_per_second for r in reports)),
        "medspacy_reference": MEDSPACY_REFERENCE,
    }


@dataclass(frozen=True)
class NERSettings:
    """How the NER of each corpus is trained (the command-line choices)."""

    epochs: int
    select_on_devel: bool = False
    patience: int | None = None
    refit: bool = False
    average_weights: bool = False
    embed_size: int = 2000
    dropout: float = 0.2
    batch_size: int = 32
    backend: str = "spacy"
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.1
    time_budget_minutes: float | None = None

    def describe(self) -> dict[str, Any]:
        """The settings as recorded in the results."""
        if self.backend == "minilm":
            return {
                "backend": "minilm",
                "trained_on": "train",
                "epoch_choice": "best devel F1",
                "max_epochs": self.epochs,
                "batch_size": self.batch_size,
                "learning_rate": self.learning_rate,
                "warmup_fraction": self.warmup_fraction,
                "time_budget_minutes": self.time_budget_minutes,
            }
        choice = "fixed"
        if self.select_on_devel:
            choice = f"best devel F1 (patience {self.patience})"
            choice += " of a train-only run" if self.refit else ""
        return {
            "trained_on": "train" if self.select_on_devel and not self.refit else "train+devel",
            "epoch_choice": choice,
            "max_epochs": self.epochs,
            "average_weights": self.average_weights,
            "embed_size": self.embed_size,
            "dropout": self.dropout,
            "batch_size": self.batch_size,
        }


class _EpochLog:
    """A training progress callback that prints each epoch and keeps its loss and devel F1."""

    def __init__(self, corpus: str) -> None:
        self.corpus = corpus
        self.start = time.perf_counter()
        self.losses: list[float] = []
        self.devel_f1: list[float] = []

    def __call__(self, epoch: int, loss: float, f1: float | None) -> None:
        self.losses.append(loss)
        self.devel_f1.extend([] if f1 is None else [f1])
        scored = "" if f1 is None else f" devel F1 {f1:.4f}"
        print(
            f"{self.corpus}: epoch {epoch + 1} loss {loss:.4g}{scored} ({self.seconds:.0f} s)",
            flush=True,
        )

    @property
    def seconds(self) -> float:
        """Seconds since the log was made."""
        return time.perf_counter() - self.start

    def record(self, train_sentences: int, training: dict[str, Any]) -> dict[str, Any]:
        """The run's record: size, time, losses, devel F1 per epoch and the trainer's meta."""
        return {
            "train_sentences": train_sentences,
            "train_seconds": round(self.seconds, 1),
            "losses": [round(x, 4) for x in self.losses],
            "devel_f1_per_epoch": [round(x, 4) for x in self.devel_f1],
            **training,
        }


def _train_logged(
    corpus: str,
    train: list[TaggedSentence],
    devel: list[TaggedSentence] | None,
    epochs: int,
    settings: NERSettings,
) -> tuple[Language, dict[str, Any]]:
    """Train one NER as `settings` say, printing each epoch; the model and its record."""
    log = _EpochLog(corpus)
    nlp = train_ner(
        train,
        devel=devel,
        epochs=epochs,
        patience=settings.patience if devel is not None else None,
        average_weights=settings.average_weights,
        embed_size=settings.embed_size,
        dropout=settings.dropout,
        batch_size=settings.batch_size,
        seed=SEED,
        progress=log,
    )
    return nlp, log.record(len(train), nlp.meta["training"])


def benchmark_ner(settings: NERSettings, out_dir: Path, corpora: list[str]) -> dict[str, Any]:
    """Train one NER per corpus as `settings` say and score it on the test split.

    With `refit`, the model of the train-only run is scored on test too (recorded, not
    used for any choice), then retrained on train + devel for the epochs it kept.
    """
    results: dict[str, Any] = {}
    for corpus in corpora:
        train, devel = load_ner_corpus(corpus, "train"), load_ner_corpus(corpus, "devel")
        test = load_ner_corpus(corpus, "test")
        if settings.select_on_devel:
            nlp, run = _train_logged(corpus, train, devel, settings.epochs, settings)
        else:
            nlp, run = _train_logged(corpus, train + devel, None, settings.epochs, settings)
        runs = [run]
        if settings.refit:
            run["test_f1"] = round(evaluate_ner(nlp, test)["ALL"].f1, 4)
            nlp, refit = _train_logged(corpus, train + devel, None, run["kept_epoch"], settings)
            runs.append(refit)
        (out_dir / corpus).parent.mkdir(parents=True, exist_ok=True)
        nlp.to_disk(out_dir / corpus)
        scores = evaluate_ner(nlp, test)
        results[corpus] = {
            "training": settings.describe(),
            "runs": runs,
            "epochs": runs[-1]["kept_epoch"],
            "train_sentences": runs[-1]["train_sentences"],
            "train_seconds": round(sum(r["train_seconds"] for r in runs), 1),
            "test": {label: s.as_dict() for label, s in scores.items()},
            "targets": NER_TARGETS[corpus],
            "model_dir": str(out_dir / corpus),
        }
    return results


def benchmark_transformer_ner(
    settings: NERSettings, out_dir: Path, corpora: list[str]
) -> dict[str, Any]:
    """Fine-tune MiniLM-L6 per corpus on train, keep the best devel epoch, score test once."""
    results: dict[str, Any] = {}
    for corpus in corpora:
        train, devel = load_ner_corpus(corpus, "train"), load_ner_corpus(corpus, "devel")
        log = _EpochLog(f"{corpus}/minilm")
        ner = train_transformer_ner(
            train,
            devel=devel,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            warmup_fraction=settings.warmup_fraction,
            time_budget=(
                None if settings.time_budget_minutes is None else settings.time_budget_minutes * 60
            ),
            seed=SEED,
            progress=log,
        )
        run = log.record(len(train), ner.training)
        ner.save(out_dir / "minilm" / corpus)
        start = time.perf_counter()
        scores = evaluate_transformer_ner(ner, load_ner_corpus(corpus, "test"))
        results[f"{corpus}/minilm"] = {
            "backend": "minilm",
            "corpus": corpus,
            "training": settings.describe(),
            "runs": [run],
            "epochs": run["kept_epoch"],
            "train_sentences": len(train),
            "train_seconds": run["train_seconds"],
            "test_seconds": round(time.perf_counter() - start, 1),
            "test": {label: s.as_dict() for label, s in scores.items()},
            "targets": NER_TARGETS[corpus],
            "model_dir": str(out_dir / "minilm" / corpus),
        }
    return results


def benchmark_deid(per_note: int = 6) -> dict[str, Any]:
    """Recall/precision per identifier type on MTSamples with inserted identifiers."""
    notes = [sample.text for sample in load_mtsamples()]
    corpus = insert_identifiers(notes, per_note=per_note, seed=SEED)
    start = time.perf_counter()
    scores = evaluate_deid(corpus)
    return {
        "notes": len(notes),
        "inserted": sum(len(gold) for _, gold in corpus),
        "seconds": round(time.perf_counter() - start, 1),
        "scores": {kind: s.as_dict() for kind, s in scores.items()},
    }


def _scores(truth: list[str], probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Macro-F1 and accuracy with bootstrap intervals, and F1 per specialty."""
    index = {name: i for i, name in enumerate(classes)}
    report = classification_metrics(
        [index[t] for t in truth], probs, TaskType.MULTI_CLASS, n_bootstrap=1000, seed=SEED
    )
    confusion = np.asarray(report.confusion)
    tp = np.diag(confusion)
    denominators = confusion.sum(axis=0) + confusion.sum(axis=1)
    per_class = {
        name: round(float(2 * tp[i] / denominators[i]), 4) if denominators[i] else None
        for i, name in enumerate(classes)
    }
    return {
        "macro_f1": round(report.values["f1"], 4),
        "macro_f1_ci95": [round(x, 4) for x in report.intervals["f1"]],
        "accuracy": round(report.values["accuracy"], 4),
        "accuracy_ci95": [round(x, 4) for x in report.intervals["accuracy"]],
        "f1_per_specialty": per_class,
    }


def benchmark_classify() -> dict[str, Any]:
    """Majority class, TF-IDF and embedding specialty classifiers on the text-disjoint split."""
    samples = load_mtsamples()
    train, test = split_mtsamples(samples, test_fraction=0.2, seed=SEED)
    train_texts, train_labels = labelled_notes(train)
    test_texts, test_labels = labelled_notes(test)
    results: dict[str, Any] = {
        "data": "nlp/mtsamples.csv",
        "distinct_notes": len(samples),
        "train_notes": len(train_texts),
        "test_notes": len(test_texts),
        "unlabelled_notes": len(train) + len(test) - len(train_texts) - len(test_texts),
        "split": {"test_fraction": 0.2, "seed": SEED, "grouped_by": "text"},
        "models": {},
    }
    for kind in ("tfidf", "embedding"):
        start = time.perf_counter()
        classifier = SpecialtyClassifier(kind, seed=SEED).fit(train_texts, train_labels)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        probs = classifier.predict_proba(test_texts)
        classes = [str(c) for c in classifier.classes_]
        known = set(classifier.specialties_)
        truth = [label if label in known else OTHER for label in test_labels]
        results["models"][kind] = {
            "fit_seconds": round(fit_seconds, 1),
            "predict_seconds": round(time.perf_counter() - start, 1),
            **_scores(truth, probs, classes),
        }
        if kind == "tfidf":
            grouped = [label if label in known else OTHER for label in train_labels]
            majority = max(classes, key=grouped.count)
            onehot = np.zeros((len(truth), len(classes)))
            onehot[:, classes.index(majority)] = 1.0
            results["models"]["majority"] = {
                "predicts": majority,
                **_scores(truth, onehot, classes),
            }
            results["classes"] = classes
            results["test_counts"] = {c: truth.count(c) for c in classes}
    return results


def _retrieval(ranks: list[int | None]) -> dict[str, float]:
    found = [r for r in ranks if r is not None]
    return {
        "mrr_at_10": round(sum(1.0 / r for r in found) / len(ranks), 4),
        "recall_at_1": round(sum(r == 1 for r in found) / len(ranks), 4),
        "recall_at_10": round(len(found) / len(ranks), 4),
    }


def benchmark_search(n_notes: int) -> dict[str, Any]:
    """Known-item search: each note's description must find that note among `n_notes`."""
    _, test = split_mtsamples(load_mtsamples(), test_fraction=0.2, seed=SEED)
    notes = [s for s in test if s.description][:n_notes]
    index = NoteIndex({str(i): s.text for i, s in enumerate(notes)})
    start = time.perf_counter()
    index.semantic_scores("warm-up: embeds every passage once")
    results: dict[str, Any] = {
        "data": "nlp/mtsamples.csv (test split)",
        "notes": len(notes),
        "queries": len(notes),
        "index_seconds": round(time.perf_counter() - start, 1),
        "modes": {},
    }
    for mode in ("keyword", "semantic", "hybrid"):
        start = time.perf_counter()
        ranks: list[int | None] = []
        for i, sample in enumerate(notes):
            hits = index.search(sample.description, mode, limit=10)
            ranks.append(next((h.rank for h in hits if h.note_id == str(i)), None))
        seconds = time.perf_counter() - start
        results["modes"][mode] = {
            **_retrieval(ranks),
            "queries_per_second": round(len(notes) / seconds, 1),
        }
    return results


def _table(results: dict[str, Any]) -> str:
    lines = []
    if "assertion" in results:
        a = results["assertion"]
        ref, parts = a["medspacy_reference"], a["parts"]
        header = " | ".join(
            f"{title} ({parts[p]['sentences']})" for p, title in ASSERTION_PARTS.items()
        )
        lines += [
            f"| ConText (dev.tsv) | {header} | medSpaCy 1.3.1, all (quoted, not measured here) |",
            "|---|---|---|---|---|---|",
        ]
        for label in ("negated", "historical", "hypothetical"):
            f1 = " | ".join(f"{parts[p][label]['f1']:.3f}" for p in ASSERTION_PARTS)
            lines.append(f"| {label} F1 | {f1} | {ref[label + '_f1']:.3f} |")
        lines.append(
            f"| sentences/s | {a['sentences_per_second']} | | | | {ref['sentences_per_second']} |"
        )
        for label, key in (
            ("historical", "historical"),
            ("'Other' experiencer", "other_experiencer"),
        ):
            counts = " | ".join("{tp}/{fp}/{fn}".format(**parts[p][key]) for p in ASSERTION_PARTS)
            lines.append(f"| {label} (tp/fp/fn) | {counts} | - |")
    if "ner" in results:
        lines += [
            "",
            "| NER (test, strict) | model | label | P | R | F1 | target | trained on | epochs "
            "| train min |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, res in sorted(results["ner"].items()):
            corpus, model = res.get("corpus", key), NER_MODELS[res.get("backend", "spacy")]
            training = res.get("training", {"trained_on": "train+devel", "epoch_choice": "fixed"})
            how = f"{training['trained_on']}; epochs: {training['epoch_choice']}"
            if training.get("learning_rate") is not None:
                how += (
                    f"; lr {training['learning_rate']:g}, warm-up {training['warmup_fraction']:g}"
                )
            if training.get("average_weights"):
                how += "; averaged weights"
            if training.get("embed_size", 2000) != 2000:
                how += f"; {training['embed_size']} embedding rows"
            if training.get("dropout", 0.2) != 0.2:
                how += f"; dropout {training['dropout']}"
            if training.get("batch_size", 32) != 32:
                how += f"; batch {training['batch_size']}"
            epochs = str(res["epochs"])
            picked = next((r for r in res.get("runs", []) if r.get("devel_f1") is not None), None)
            if picked is not None:
                epochs += f" (devel pick of {picked['epochs_run']})"
            if picked is not None and picked.get("stopped_by") == "time_budget":
                epochs += f", stopped by the {training['time_budget_minutes']:g}-min budget"
            for label, target in res["targets"].items():
                s = res["test"][label]
                lines.append(
                    f"| {corpus} | {model} | {label} | {s['precision']:.3f} | {s['recall']:.3f} "
                    f"| {s['f1']:.3f} | {target} | {how} | {epochs} "
                    f"| {res['train_seconds'] / 60:.1f} |"
                )
    if "deid" in results:
        lines += [
            "",
            "De-identification on inserted identifiers: the identifiers come from "
            "`rules/deid.json`'s own templates and pools, so this table says only that those "
            "forms are still found; it is not a recall figure. The honest one is "
            "`safety.py --part deid`, on identifiers no Clinsight rule generated.",
            "",
            "| De-id type | recall | precision | n |",
            "|---|---|---|---|",
        ]
        for kind, s in results["deid"]["scores"].items():
            lines.append(
                f"| {kind} | {s['recall']:.4f} | {s['precision']:.4f} | {s['tp'] + s['fn']} |"
            )
    if "classify" in results:
        c = results["classify"]
        lines += [
            "",
            f"| Specialty ({c['test_notes']} test notes, {len(c['classes'])} classes) "
            "| macro-F1 [95% CI] | accuracy |",
            "|---|---|---|",
        ]
        for name in ("majority", "tfidf", "embedding"):
            m = c["models"][name]
            lo, hi = m["macro_f1_ci95"]
            lines.append(
                f"| {name} | {m['macro_f1']:.3f} [{lo:.3f}, {hi:.3f}] | {m['accuracy']:.3f} |"
            )
    if "search" in results:
        s = results["search"]
        lines += [
            "",
            f"| Search ({s['notes']} notes) | MRR@10 | R@1 | R@10 | queries/s |",
            "|---|---|---|---|---|",
        ]
        for mode, m in s["modes"].items():
            lines.append(
                f"| {mode} | {m['mrr_at_10']:.3f} | {m['recall_at_1']:.3f} "
                f"| {m['recall_at_10']:.3f} | {m['queries_per_second']} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Run the chosen parts, merge them into the JSON file and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        choices=("all", "assertion", "ner", "deid", "classify", "search"),
        default="all",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--corpus", choices=tuple(NER_TARGETS), action="append", help="NER corpus (default: all)"
    )
    parser.add_argument(
        "--select-on-devel",
        action="store_true",
        help="NER: train on train only and keep the epoch with the best devel F1",
    )
    parser.add_argument("--patience", type=int, default=10, help="with --select-on-devel")
    parser.add_argument(
        "--refit",
        action="store_true",
        help="with --select-on-devel: retrain on train + devel for the epochs picked",
    )
    parser.add_argument("--average-weights", action="store_true", help="NER: Polyak averaging")
    parser.add_argument("--embed-size", type=int, default=2000, help="NER: hash-embedding rows")
    parser.add_argument("--dropout", type=float, default=0.2, help="NER: dropout rate")
    parser.add_argument("--batch-size", type=int, default=32, help="NER: sentences per update")
    parser.add_argument("--backend", choices=tuple(NER_MODELS), default="spacy", help="NER model")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="NER, minilm: peak lr")
    parser.add_argument("--warmup", type=float, default=0.1, help="NER, minilm: warm-up fraction")
    parser.add_argument(
        "--time-budget", type=float, default=None, help="NER, minilm: training minutes at most"
    )
    parser.add_argument("--out", type=Path, default=None, help="where trained NER models go")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embeddings")
    parser.add_argument("--search-notes", type=int, default=200, help="notes in the search index")
    args = parser.parse_args()
    if args.backend == "minilm" and (
        args.refit or args.average_weights or args.embed_size != 2000 or args.dropout != 0.2
    ):
        parser.error("--refit, --average-weights, --embed-size and --dropout are spaCy options")
    torch.set_num_threads(args.threads)
    fresh: dict[str, Any] = {}
    if args.part in ("all", "assertion"):
        fresh["assertion"] = benchmark_assertion()
    if args.part in ("all", "deid"):
        fresh["deid"] = benchmark_deid()
    if args.part in ("all", "ner"):
        out = args.out or get_settings().home / "models" / "ner"
        settings = NERSettings(
            args.epochs,
            args.select_on_devel,
            args.patience if args.select_on_devel else None,
            args.refit and args.select_on_devel,
            args.average_weights,
            args.embed_size,
            args.dropout,
            args.batch_size,
            args.backend,
            args.learning_rate,
            args.warmup,
            args.time_budget,
        )
        benchmark = benchmark_transformer_ner if args.backend == "minilm" else benchmark_ner
        fresh["ner"] = benchmark(settings, out, args.corpus or list(NER_TARGETS))
    if args.part in ("all", "classify"):
        fresh["classify"] = benchmark_classify()
    if args.part in ("all", "search"):
        fresh["search"] = benchmark_search(args.search_notes)
    for name, part in fresh.items():  # each result names the machine it was measured on
        for measured in part.values() if name == "ner" else [part]:  # NER: per corpus
            measured["machine"] = machine()
    # read only now, so runs of other parts or corpora in parallel are all kept
    results = read_results("notes") | fresh
    if "ner" in fresh:
        results["ner"] = read_results("notes").get("ner", {}) | fresh["ner"]
    write_results("notes", results)
    table = _table(results)
    update_readme_section("notes", README_INTRO + "\n" + table)
    print(table)


if __name__ == "__main__":
    main()
