"""A small trained NER for names and places, beside the de-identification rules.

`train_phi_ner` trains the project's spaCy NER (`entities.train_ner`: CNN, hashed word
features, no pretrained vectors) on `phi_synth` sentences: seeded, CPU, the epoch kept
chosen on a validation split of the same generated data. Its identifier-free sentences
include headings and sentences of MTSamples transcriptions (`negative_texts`: the
training part of a seeded split, never a note of the de-identification benchmark).
`phi_ner` returns the model cached under ``HOME/models/<PHI_NER_NAME>`` (spaCy's
`to_disk`: config + msgpack weights, no pickle), training it there on first use when
`train` is set; `ner_spans`
gives its NAME and LOCATION spans by character offsets, less those made only of ordinary
words or spinal levels (`plausible`), which `deid.find_phi` joins to the rules' spans.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import spacy
from spacy.language import Language

from clinsight.config import get_settings
from clinsight.data.notes import TaggedSentence, load_mtsamples, split_mtsamples
from clinsight.nlp.entities import load_ner, train_ner
from clinsight.nlp.phi_detect import gazetteers, not_names, ordinary
from clinsight.nlp.phi_synth import Marked, clinical_negatives, synthetic_sentences

__all__ = [
    "BENCHMARK_NOTES",
    "PHI_NER_NAME",
    "PhiNerRecipe",
    "negative_texts",
    "ner_spans",
    "phi_ner",
    "plausible",
    "tagged",
    "train_phi_ner",
]

PHI_NER_NAME = "phi_ner-v2"
"""Folder name of the cached model; a new recipe gets a new name."""


class PhiNerRecipe:
    """How the cached model is trained (sizes chosen to train in minutes on one core)."""

    sentences = 6000
    validation_share = 0.1
    seed = 20261203
    epochs = 8
    patience = 2
    time_budget = 900.0  # a guard only: the fixed epochs end training well before it
    clinical_validation_share = 0.2
    """MTSamples texts kept out of training (the de-identification tuning set's negatives)."""


BENCHMARK_NOTES = frozenset(
    {"86", "176", "312", "440", "510", "571", "978", "1092", "1284", "1299", "1354", "1363",
     "1365", "1446", "1681", "1786", "1797", "1798", "1808", "1868"}
)  # fmt: skip
"""MTSamples ``note_id`` of the excerpts hand-annotated for the de-identification benchmark
(benchmarks/data/deid_mtsamples.json): never trained or tuned on, nor any copy of them."""


def negative_texts() -> tuple[list[str], list[str]]:
    """MTSamples transcriptions without the benchmark's notes, split (seeded, by text) into
    a training part and a validation part (`clinical_validation_share`).

    Raises:
        DataNotFoundError: nlp/mtsamples.csv is not in the data directory.
    """
    samples = [s for s in load_mtsamples() if not BENCHMARK_NOTES & set(s.note_ids)]
    train, validation = split_mtsamples(
        samples, PhiNerRecipe.clinical_validation_share, seed=PhiNerRecipe.seed
    )
    return [s.text for s in train], [s.text for s in validation]


def tagged(marked: Sequence[Marked]) -> list[TaggedSentence]:
    """Marked texts as BIO-tagged tokens of spaCy's English tokenizer."""
    blank = spacy.blank("en")
    out = []
    for text, spans in marked:
        doc = blank(text)
        ents = [doc.char_span(s, e, label, alignment_mode="expand") for s, e, label in spans]
        kept, last = [], -1
        for ent in sorted((e for e in ents if e is not None), key=lambda e: e.start):
            if ent.start >= last:
                kept.append(ent)
                last = ent.end
        doc.ents = kept
        tags = tuple(f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in doc)
        out.append(TaggedSentence(tuple(t.text for t in doc), tags))
    return out


def train_phi_ner(
    n: int = PhiNerRecipe.sentences,
    *,
    seed: int = PhiNerRecipe.seed,
    epochs: int = PhiNerRecipe.epochs,
    time_budget: float | None = PhiNerRecipe.time_budget,
    max_steps: int | None = None,
    clinical: Sequence[str] | None = None,
) -> Language:
    """Train on `n` generated texts (the last `validation_share` of them pick the epoch);
    `clinical` texts (default: the training part of `negative_texts`) give some of the
    identifier-free sentences.

    Raises:
        DataNotFoundError: `clinical` is not given and MTSamples is not in the data directory.
    """
    texts = negative_texts()[0] if clinical is None else clinical
    negatives = clinical_negatives(texts)
    sentences = tagged(synthetic_sentences(n, seed=seed, clinical=negatives))
    cut = int(len(sentences) * (1 - PhiNerRecipe.validation_share))
    nlp = train_ner(
        sentences[:cut],
        devel=sentences[cut:],
        epochs=epochs,
        patience=PhiNerRecipe.patience,
        time_budget=time_budget,
        max_steps=max_steps,
        seed=seed,
    )
    nlp.meta["name"] = PHI_NER_NAME.replace("-", "_")
    nlp.meta["description"] = (
        f"phi_synth sentences, n={n}, seed={seed}; identifier-free sentences from "
        f"{len(negatives)} of {len(texts)} MTSamples training texts' sentences"
    )
    return nlp


def phi_ner(folder: Path | None = None, *, train: bool = False) -> Language | None:
    """The cached model (None when there is none and `train` is not set)."""
    path = folder or get_settings().home / "models" / PHI_NER_NAME
    if not (path / "config.cfg").is_file():
        if not train:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            train_phi_ner().to_disk(Path(tmp) / "model")
            if not (path / "config.cfg").is_file():
                shutil.rmtree(path, ignore_errors=True)
                (Path(tmp) / "model").rename(path)
    return _load(path)


@cache
def _load(path: Path) -> Language:
    return load_ner(path)


_LEVEL = re.compile(r"[CTLS]\d{1,2}(?:-[CTLS]?\d{1,2})?")
_WORDS = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def plausible(value: str) -> bool:
    """Whether a model span can be an identifier: not a spinal level ("L4-L5") and not made
    only of ordinary English words and known non-names, unless it is a gazetteer place."""
    if _LEVEL.fullmatch(value.strip()):
        return False
    words = _WORDS.findall(value)
    if not words or value.lower().strip() in gazetteers().places:
        return True
    stop = not_names()
    return not all(w in stop or ordinary(w) for w in words)


def ner_spans(nlp: Language, text: str) -> list[tuple[int, int, str]]:
    """The model's NAME and LOCATION spans in `text` that are `plausible`, by offsets."""
    return [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents if plausible(e.text)]
