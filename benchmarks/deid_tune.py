"""Choose the de-identification NER's recipe and span filter on tuning sets only.

Reads `deid.validation_sets` (presidio-evaluator's tuning templates, faker_clinical of
seed 1, identifier-free MTSamples sentences kept out of NER training), never the scored
sets. For each trained model folder given, and each variant of the filter on the model's
spans, prints recall, precision (false positives per 100 texts on the identifier-free
set) and per-type recall, and the LOCATION misses of the tuning sets.

Run: ``python benchmarks/deid_tune.py HOME/models/phi_ner-v1 [other model folders]``;
``python benchmarks/deid_tune.py --sources HOME/models/phi_ner-v1`` compares the phone
matcher's settings (`phi_phone.PhoneSettings`) and the pretrained NER's labels
(`phi_pretrained.PRETRAINED_LABELS`), each on top of the rules and the trained model.

Chosen with it (2026-12-04): the rule "highest recall on presidio_tuning with precision
>= 0.80 on both tuning sets" picked the phi_ner-v1 recipe (a v2 recipe with MTSamples
sentences as negatives cut presidio_tuning recall from 0.957 to 0.872 and was dropped),
the address edges of `deid.find_phi`, and the filter ``level+all+sign+census`` that
`phi_ner.plausible` now implements.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from phonenumbers import Leniency
from spacy.language import Language

from clinsight.nlp import deid, phi_ner, phi_pretrained
from clinsight.nlp.phi_detect import gazetteers, not_names, ordinary
from clinsight.nlp.phi_ner import _LEVEL, _WORDS, _load
from clinsight.nlp.phi_phone import PhoneSettings
from deid import Note, score, validation_sets

EDGES = deid._address_edges

Span = tuple[int, int]


def _all_ordinary(value: str, caps: bool = False) -> bool:
    words = _WORDS.findall(value)
    stop = not_names()
    return bool(words) and all(
        w in stop or ordinary(w) or (caps and w.isupper() and len(w) <= 5) for w in words
    )


def _place(value: str) -> bool:
    return value.lower().strip() in gazetteers().places


def _census(value: str) -> bool:
    g = gazetteers()
    words = [w.lower() for w in _WORDS.findall(value)]
    return bool(words) and all(w in g.given or w in g.family for w in words)


def _given(value: str) -> bool:
    words = [w.lower() for w in _WORDS.findall(value)]
    return bool(words) and all(w in gazetteers().given for w in words)


def _sign(value: str) -> bool:
    """Letters, or a number of three digits or more (a postcode, a house number)."""
    return bool(_WORDS.findall(value) or re.search(r"\d{3,}", value))


def _level(value: str) -> bool:
    return bool(_LEVEL.fullmatch(value.strip()))


VARIANTS: dict[str, Callable[[str], bool]] = {
    "none": lambda v: True,
    "chosen (phi_ner.plausible)": phi_ner.plausible,
    "level+all": lambda v: not _level(v) and (_place(v) or not _all_ordinary(v)),
    "level+all+sign": lambda v: _sign(v) and not _level(v) and (_place(v) or not _all_ordinary(v)),
    "level+all+sign+given": lambda v: (
        _sign(v) and not _level(v) and (_place(v) or _given(v) or not _all_ordinary(v))
    ),
    "level+all+sign+census": lambda v: (
        _sign(v) and not _level(v) and (_place(v) or _census(v) or not _all_ordinary(v))
    ),
    "level+all+sign+census+caps": lambda v: (
        _sign(v) and not _level(v) and (_place(v) or _census(v) or not _all_ordinary(v, caps=True))
    ),
}


def main(folders: list[str]) -> None:
    sets = validation_sets()
    texts = [n for v in sets.values() for n in v]
    for edges in (False, True):
        if not edges:
            deid._address_edges = lambda text, found: iter(())
        else:
            deid._address_edges = EDGES
        predicted = {id(n): [(x.start, x.end) for x in deid.find_phi(n.text)] for n in texts}
        report(f"rules edges={edges}", sets, predicted)
        for folder in folders:
            nlp = _load(Path(folder))
            ents = {
                n.text: [(e.start_char, e.end_char, e.label_, e.text) for e in nlp(n.text).ents]
                for n in texts
            }
            deid.ner_spans = lambda _, text, ents=ents: [  # type: ignore[attr-defined,misc]
                (s, e, k) for s, e, k, t in ents[text] if phi_ner.plausible(t)
            ]
            for name, keep in VARIANTS.items():
                if not edges and name not in ("none", "level+all+sign+given"):
                    continue
                phi_ner.plausible = keep  # type: ignore[assignment]
                predicted = {
                    id(n): [(x.start, x.end) for x in deid.find_phi(n.text, nlp)] for n in texts
                }
                report(f"{Path(folder).name} e={int(edges)} {name}", sets, predicted, show=edges)


def report(
    label: str, sets: dict[str, list[Note]], predicted: dict[int, list[Span]], show: bool = False
) -> None:
    for name, notes in sets.items():
        r = score(notes, [predicted[id(n)] for n in notes])
        if name == "mtsamples_negatives":
            print(
                f"{label:32} {name:22} fp/100 {100 * r['false_positive_count'] / len(notes):.1f}"
                f"  e.g. {r['false_positives'][:12]}"
            )
            continue
        per = {t: round(v["recall"], 3) for t, v in r["per_type"].items()}
        print(f"{label:32} {name:22} R {r['recall']:.3f} P {r['precision']:.3f} {per}")
        if show and "given" in label:
            print(
                "   LOCATION misses:",
                [m["text"] for m in r["missed"] if m["type"] == "LOCATION"][:30],
            )
            print("   FPs:", r["false_positives"][:30])
    sys.stdout.flush()


PHONES: dict[str, dict[str, object]] = {
    "off": {"regions": ()},
    "chosen (PhoneSettings)": {},
    "valid only (no cue)": {"cue_window": 0},
    "leniency VALID": {"leniency": Leniency.VALID},
    "7+ digits": {"min_digits": 7},
    "cue window 40": {"cue_window": 40},
    "regions US GB DE FR": {"regions": ("US", "GB", "DE", "FR")},
}
"""Phone matcher settings tried, as changes to `PhoneSettings`."""
LABELS: dict[str, tuple[str, ...]] = {
    "none": (),
    "PERSON": ("PERSON",),
    "PERSON GPE": ("PERSON", "GPE"),
    "PERSON GPE LOC FAC": ("PERSON", "GPE", "LOC", "FAC"),
    "PERSON GPE LOC FAC ORG": ("PERSON", "GPE", "LOC", "FAC", "ORG"),
}
"""Labels of the pretrained NER tried (PERSON as NAME, the others as LOCATION)."""


def sources(folder: str) -> None:
    """Each phone setting with the trained model and the chosen labels, then each label set
    of the pretrained NER with the chosen phone setting; times per text."""
    sets = validation_sets()
    texts = [n for v in sets.values() for n in v]
    own, pretrained = _load(Path(folder)), phi_pretrained.pretrained_ner()
    assert pretrained is not None, "install the deid extra"
    started = time.perf_counter()
    found = {n.text: [(e.start_char, e.end_char, e.label_, e.text) for e in pretrained(n.text).ents]
             for n in texts}  # fmt: skip
    print(f"pretrained NER: {1000 * (time.perf_counter() - started) / len(texts):.1f} ms/text")
    chosen = dict(phi_pretrained.PRETRAINED_LABELS)
    default = {k: getattr(PhoneSettings, k) for k in ("regions", "leniency", "cue_window",
                                                      "min_digits")}  # fmt: skip

    def run(label: str, labels: dict[str, str]) -> None:
        def cached(nlp: Language, text: str) -> list[tuple[int, int, str]]:
            return [(s, e, labels[k]) for s, e, k, t in found[text]
                    if k in labels and phi_pretrained.kept(t)]  # fmt: skip

        deid.pretrained_spans = cached  # type: ignore[attr-defined]
        started = time.perf_counter()
        predicted = {
            id(n): [(x.start, x.end) for x in deid.find_phi(n.text, own, pretrained=pretrained)]
            for n in texts
        }
        ms = 1000 * (time.perf_counter() - started) / len(texts)
        report(f"{label} ({ms:.0f} ms)", sets, predicted)
        if "chosen" in label:
            for name in ("presidio_tuning", "faker_clinical_seed1"):
                r = score(sets[name], [predicted[id(n)] for n in sets[name]])
                print(f"   {name} misses:", [(m["type"], m["text"]) for m in r["missed"]][:40])

    for name, change in PHONES.items():
        for key, value in (default | change).items():
            setattr(PhoneSettings, key, value)
        run(f"phones: {name}", chosen)
    for key, value in default.items():
        setattr(PhoneSettings, key, value)
    for name, kept in LABELS.items():
        run(f"labels: {name}", {k: "NAME" if k == "PERSON" else "LOCATION" for k in kept})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sources"]:
        sources(sys.argv[2])
    else:
        main(sys.argv[1:])
