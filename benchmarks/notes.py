"""Clinical-notes benchmark: ConText assertion, trained NER, de-identification.

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

Run: ``.venv/bin/python benchmarks/notes.py [--part assertion|ner|deid] [--epochs N]``.
Writes ``benchmarks/results/notes.json`` (merged per part) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import spacy

import clinsight.nlp.sentences  # noqa: F401 - registers the factory
from clinsight.config import get_settings
from clinsight.data.notes import load_context_annotations, load_mtsamples, load_ner_corpus
from clinsight.nlp.assertion import evaluate_assertion
from clinsight.nlp.deid import evaluate_deid, insert_identifiers
from clinsight.nlp.entities import evaluate_ner, train_ner

RESULTS = Path(__file__).resolve().parent / "results" / "notes.json"
SEED = 0
MEDSPACY_REFERENCE = {
    "negated_f1": 0.923,
    "historical_f1": 0.635,
    "hypothetical_f1": 0.691,
    "sentences_per_second": 280,
}
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


def benchmark_ner(epochs: int, out_dir: Path) -> dict[str, Any]:
    """Train one NER per corpus on train + devel and score it on the test split."""
    results: dict[str, Any] = {}
    for corpus in NER_TARGETS:
        train = load_ner_corpus(corpus, "train") + load_ner_corpus(corpus, "devel")
        start = time.perf_counter()
        losses: list[float] = []
        nlp = train_ner(
            train,
            epochs=epochs,
            seed=SEED,
            progress=lambda _, loss: losses.append(loss),
        )
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
            "| NER (test, strict) | label | P | R | F1 | target |",
            "|---|---|---|---|---|---|",
        ]
        for corpus, res in results["ner"].items():
            for label, target in res["targets"].items():
                s = res["test"][label]
                lines.append(
                    f"| {corpus} | {label} | {s['precision']:.3f} | {s['recall']:.3f} "
                    f"| {s['f1']:.3f} | {target} |"
                )
    if "deid" in results:
        lines += ["", "| De-id type | recall | precision | n |", "|---|---|---|---|"]
        for kind, s in results["deid"]["scores"].items():
            lines.append(
                f"| {kind} | {s['recall']:.4f} | {s['precision']:.4f} | {s['tp'] + s['fn']} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Run the chosen parts, merge them into the JSON file and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "assertion", "ner", "deid"), default="all")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="where trained NER models go")
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    if args.part in ("all", "assertion"):
        results["assertion"] = benchmark_assertion()
    if args.part in ("all", "deid"):
        results["deid"] = benchmark_deid()
    if args.part in ("all", "ner"):
        out = args.out or get_settings().home / "models" / "ner"
        results["ner"] = benchmark_ner(args.epochs, out)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))


if __name__ == "__main__":
    main()
