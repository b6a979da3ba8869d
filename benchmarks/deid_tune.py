"""Choose the de-identification NER's recipe and span filter on tuning sets only.

Reads `deid.validation_sets` (presidio-evaluator's tuning templates, faker_clinical of
seed 1, identifier-free MTSamples sentences kept out of NER training), never the scored
sets. For each trained model folder given, and each variant of the filter on the model's
spans, prints recall, precision (false positives per 100 texts on the identifier-free
set) and per-type recall, and the LOCATION misses of the tuning sets.

Run: ``python benchmarks/deid_tune.py HOME/models/phi_ner-v1 HOME/models/phi_ner-v2``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from clinsight.nlp.phi_detect import candidates, gazetteers, not_names, ordinary
from clinsight.nlp.phi_ner import _LEVEL, _WORDS, _load
from deid import score, validation_sets

Span = tuple[int, int]


def _all_ordinary(value: str) -> bool:
    words = _WORDS.findall(value)
    stop = not_names()
    return bool(words) and all(w in stop or ordinary(w) for w in words)


def _place(value: str) -> bool:
    return value.lower().strip() in gazetteers().places


VARIANTS: dict[str, Callable[[str], bool]] = {
    "none": lambda v: True,
    "level": lambda v: not _LEVEL.fullmatch(v.strip()),
    "level+single": lambda v: not _LEVEL.fullmatch(v.strip())
    and not (len(v.split()) == 1 and _all_ordinary(v) and not _place(v)),
    "level+all": lambda v: not _LEVEL.fullmatch(v.strip()) and (_place(v) or not _all_ordinary(v)),
    "level+all_noplace": lambda v: not _LEVEL.fullmatch(v.strip()) and not _all_ordinary(v),
}


def _merge(length: int, spans: list[Span]) -> list[Span]:
    covered = [False] * length
    for s, e in spans:
        covered[s:e] = [True] * (e - s)
    out, i = [], 0
    while i < length:
        if covered[i]:
            start = i
            while i < length and covered[i]:
                i += 1
            out.append((start, i))
        i += 1
    return out


def main(folders: list[str]) -> None:
    sets = validation_sets()
    rules = {id(n): [(s, e) for s, e, _ in candidates(n.text)] for v in sets.values() for n in v}
    rule_only = {k: _merge(len(n.text), rules[id(n)]) for v in sets.values() for n in v for k in [id(n)]}
    report("rules", sets, rule_only)
    for folder in folders:
        nlp = _load(Path(folder))
        ents = {
            id(n): [(e.start_char, e.end_char, e.text) for e in nlp(n.text).ents]
            for v in sets.values()
            for n in v
        }
        for name, keep in VARIANTS.items():
            predicted = {
                id(n): _merge(
                    len(n.text), rules[id(n)] + [(s, e) for s, e, t in ents[id(n)] if keep(t)]
                )
                for v in sets.values()
                for n in v
            }
            report(f"{Path(folder).name} {name}", sets, predicted, show=name == "level+all")


def report(label: str, sets: dict, predicted: dict, show: bool = False) -> None:
    for name, notes in sets.items():
        r = score(notes, [predicted[id(n)] for n in notes])
        if name == "mtsamples_negatives":
            print(f"{label:32} {name:22} fp/100 {100 * r['false_positive_count'] / len(notes):.1f}"
                  f"  e.g. {r['false_positives'][:12]}")
            continue
        per = {t: round(v["recall"], 3) for t, v in r["per_type"].items()}
        print(f"{label:32} {name:22} R {r['recall']:.3f} P {r['precision']:.3f} {per}")
        if show:
            print("   LOCATION misses:", [m["text"] for m in r["missed"] if m["type"] == "LOCATION"][:30])
            print("   FPs:", r["false_positives"][:30])
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
