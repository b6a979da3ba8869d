"""Clinical-notes benchmark: assertion, NER, de-identification, specialty, search.

Parts (``--part``, default all):
- ``assertion``: Clinsight's ConText component on the NegEx/ConText annotations
  (``nlp/negex/dev.tsv``), F1 per label and sentences per second, beside the issue's
  reference figures for medSpaCy 1.3.1 default ConText on the same file (medSpaCy itself
  cannot be installed beside numpy 2, so its numbers are quoted, not re-run).
- ``ner``: a blank-English spaCy NER trained on the NCBI disease and BC5CDR training
  (+ development) sets, scored with strict entity-level F1 on the official test sets.
  CPU, seeded; about 10 minutes per corpus per 10 epochs on one core.
- ``deid``: known identifiers inserted into every deduplicated MTSamples note, recall and
  precision per identifier type (identifiers already in MTSamples count as false
  positives, so precision is a lower bound).
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
[--epochs N] [--corpus ncbi_disease|bc5cdr] [--threads N] [--search-notes N]``.
Writes ``benchmarks/results/notes.json`` (merged per part and per NER corpus), prints a
Markdown table and writes it as the ``notes`` section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import torch

import clinsight.nlp.sentences  # noqa: F401 - registers the factory
from clinsight.config import get_settings
from clinsight.data.medmnist import TaskType
from clinsight.data.notes import (
    load_context_annotations,
    load_mtsamples,
    load_ner_corpus,
    split_mtsamples,
)
from clinsight.evaluation.metrics import classification_metrics
from clinsight.nlp.assertion import evaluate_assertion
from clinsight.nlp.classify import OTHER, SpecialtyClassifier, labelled_notes
from clinsight.nlp.deid import evaluate_deid, insert_identifiers
from clinsight.nlp.entities import evaluate_ner, train_ner
from clinsight.nlp.search import NoteIndex
from common import machine, read_results, update_readme_section, write_results

SEED = 0
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
is the issue's measurement on this machine (default ConText rules, same dev.tsv),
quoted, not re-run. NER is entity-level strict on the official test sets, trained on
train + devel for the epochs shown. De-identification counts identifiers already in
MTSamples as false positives (precision is a lower bound).
"""
NER_TARGETS = {"ncbi_disease": {"Disease": 0.80}, "bc5cdr": {"Chemical": 0.85, "Disease": 0.75}}


def benchmark_assertion(repeats: int = 3) -> dict[str, Any]:
    """ConText F1 per label on dev.tsv; throughput is the best of `repeats` runs."""
    nlp = spacy.blank("en")
    for name in ("clinical_sentences", "clinical_sections", "clinical_context"):
        nlp.add_pipe(name)
    rows = load_context_annotations()
    reports = [evaluate_assertion(nlp, rows) for _ in range(repeats)]
    report = reports[0]
    return {
        "data": "nlp/negex/dev.tsv",
        "sentences": report.sentences,
        "unlocated_conditions": report.unlocated,
        "negated": report.negated.as_dict(),
        "historical": report.historical.as_dict(),
        "hypothetical": report.hypothetical.as_dict(),
        "other_experiencer": report.other_experiencer.as_dict(),
        "sentences_per_second": round(max(r.sentences_per_second for r in reports)),
        "medspacy_reference": MEDSPACY_REFERENCE,
    }


def benchmark_ner(epochs: int, out_dir: Path, corpora: list[str]) -> dict[str, Any]:
    """Train one NER per corpus on train + devel and score it on the test split."""
    results: dict[str, Any] = {}
    for corpus in corpora:
        train = load_ner_corpus(corpus, "train") + load_ner_corpus(corpus, "devel")
        start = time.perf_counter()
        losses: list[float] = []

        def record(
            epoch: int,
            loss: float,
            losses: list[float] = losses,
            c: str = corpus,
            t0: float = start,
        ) -> None:
            losses.append(loss)
            elapsed = time.perf_counter() - t0
            print(f"{c}: epoch {epoch + 1}/{epochs} loss {loss:.1f} ({elapsed:.0f} s)", flush=True)

        nlp = train_ner(train, epochs=epochs, seed=SEED, progress=record)
        seconds = time.perf_counter() - start
        (out_dir / corpus).parent.mkdir(parents=True, exist_ok=True)
        nlp.to_disk(out_dir / corpus)
        scores = evaluate_ner(nlp, load_ner_corpus(corpus, "test"))
        results[corpus] = {
            "train_sentences": len(train),
            "epochs": epochs,
            "train_seconds": round(seconds, 1),
            "losses": [round(x, 1) for x in losses],
            "test": {label: s.as_dict() for label, s in scores.items()},
            "targets": NER_TARGETS[corpus],
            "model_dir": str(out_dir / corpus),
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
        ref = a["medspacy_reference"]
        lines += ["| ConText (dev.tsv) | Clinsight | medSpaCy 1.3.1 |", "|---|---|---|"]
        for label in ("negated", "historical", "hypothetical"):
            lines.append(f"| {label} F1 | {a[label]['f1']:.3f} | {ref[label + '_f1']:.3f} |")
        lines.append(
            f"| sentences/s | {a['sentences_per_second']} | {ref['sentences_per_second']} |"
        )
        lines.append(
            f"| 'Other' experiencer (tp/fp/fn) | {a['other_experiencer']['tp']}/"
            f"{a['other_experiencer']['fp']}/{a['other_experiencer']['fn']} | - |"
        )
    if "ner" in results:
        lines += [
            "",
            "| NER (test, strict) | label | P | R | F1 | target | epochs | train min |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for corpus, res in results["ner"].items():
            for label, target in res["targets"].items():
                s = res["test"][label]
                lines.append(
                    f"| {corpus} | {label} | {s['precision']:.3f} | {s['recall']:.3f} "
                    f"| {s['f1']:.3f} | {target} | {res['epochs']} "
                    f"| {res['train_seconds'] / 60:.1f} |"
                )
    if "deid" in results:
        lines += ["", "| De-id type | recall | precision | n |", "|---|---|---|---|"]
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
    parser.add_argument("--out", type=Path, default=None, help="where trained NER models go")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embeddings")
    parser.add_argument("--search-notes", type=int, default=200, help="notes in the search index")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fresh: dict[str, Any] = {}
    if args.part in ("all", "assertion"):
        fresh["assertion"] = benchmark_assertion()
    if args.part in ("all", "deid"):
        fresh["deid"] = benchmark_deid()
    if args.part in ("all", "ner"):
        out = args.out or get_settings().home / "models" / "ner"
        fresh["ner"] = benchmark_ner(args.epochs, out, args.corpus or list(NER_TARGETS))
    if args.part in ("all", "classify"):
        fresh["classify"] = benchmark_classify()
    if args.part in ("all", "search"):
        fresh["search"] = benchmark_search(args.search_notes)
    # read only now, so runs of other parts or corpora in parallel are all kept
    results = read_results("notes") | fresh | {"machine": machine()}
    if "ner" in fresh:
        results["ner"] = read_results("notes").get("ner", {}) | fresh["ner"]
    write_results("notes", results)
    table = _table(results)
    update_readme_section("notes", README_INTRO + "\n" + table)
    print(table)


if __name__ == "__main__":
    main()
