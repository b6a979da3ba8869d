"""A small trained NER for names and places, beside the de-identification rules.

`train_phi_ner` trains the project's spaCy NER (`entities.train_ner`: CNN, hashed word
features, no pretrained vectors) on `phi_synth` sentences only: seeded, CPU, the epoch
kept chosen on a validation split of the same generated data. `phi_ner` returns the
model cached under ``HOME/models/<PHI_NER_NAME>`` (spaCy's `to_disk`: config + msgpack
weights, no pickle), training it there on first use when `train` is set; `ner_spans`
gives its NAME and LOCATION spans by character offsets, less those that cannot be an
identifier (`plausible`), which `deid.find_phi` joins to the rules' spans.
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
from clinsight.data.notes import TaggedSentence
from clinsight.nlp.entities import load_ner, train_ner
from clinsight.nlp.phi_detect import gazetteers, not_names, ordinary
from clinsight.nlp.phi_synth import Marked, synthetic_sentences

__all__ = [
    "PHI_NER_NAME",
    "PhiNerRecipe",
    "ner_spans",
    "phi_ner",
    "plausible",
    "tagged",
    "train_phi_ner",
]

PHI_NER_NAME = "phi_ner-v1"
"""Folder name of the cached model; a new recipe gets a new name."""


class PhiNerRecipe:
    """How the cached model is trained (sizes chosen to train in minutes on one core)."""

    sentences = 6000
    validation_share = 0.1
    seed = 20261203
    epochs = 8
    patience = 2
    time_budget = 900.0  # a guard only: the fixed epochs end training well before it


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
) -> Language:
    """Train on `n` generated texts (the last `validation_share` of them pick the epoch)."""
    sentences = tagged(synthetic_sentences(n, seed=seed))
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
    nlp.meta["description"] = f"phi_synth sentences, n={n}, seed={seed}"
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
_NUMBER = re.compile(r"\d{3,}")


def plausible(value: str) -> bool:
    """Whether a model span can be an identifier: it has letters or a number of three digits
    or more, is not a spinal level ("L4-L5"), and is not made only of ordinary English words
    and known non-names ("Physical Therapy", "Afterwards", "Lasix") unless it is a gazetteer
    place or every word is a census given or family name ("Amber", "Will Page")."""
    words = _WORDS.findall(value)
    if not (words or _NUMBER.search(value)) or _LEVEL.fullmatch(value.strip()):
        return False
    g, stop = gazetteers(), not_names()
    if not words or value.lower().strip() in g.places:
        return True
    if all(w.lower() in g.given or w.lower() in g.family for w in words):
        return True
    return not all(w in stop or ordinary(w) for w in words)


def ner_spans(nlp: Language, text: str) -> list[tuple[int, int, str]]:
    """The model's NAME and LOCATION spans in `text` that are `plausible`, by offsets."""
    return [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents if plausible(e.text)]
