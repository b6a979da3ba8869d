"""Sentence splitting for clinical text: headings, numbered lists, wrapped lines, abbreviations.

`split_sentences` works on characters and returns spans; the `clinical_sentences`
spaCy factory sets `Token.is_sent_start` from them. Periods inside numbers
("2.5 mg"), after titles ("Dr.") and after dosing abbreviations before a
lower-case word ("q.d. with food") do not end a sentence; a blank line, a list
item ("1)", "2.", "-") or a heading ("PLAN:") at the start of a line always does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise

from spacy.language import Language
from spacy.tokens import Doc

from clinsight.nlp import load_rules

__all__ = ["ClinicalSentencizer", "SentenceRules", "split_sentences"]

_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")
_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")
_LINE_START_ITEM = re.compile(
    r"\n[ \t]*(?=(?:\d{1,2}[.)]|\(\d{1,2}\)|[a-zA-Z][.)]|[-*•·])\s"  # list item
    r"|[A-Za-z][A-Za-z0-9 /&(),'-]{1,50}:(?:\s|$))"  # heading
)
_INLINE_ITEM = re.compile(r"(?<=\S)[ \t]{2,}(?=\(?\d{1,2}\)\s|[A-Z][A-Z0-9 /&()'-]{2,50}:\s)")
_HEADING_LINE = re.compile(r":[ \t]*\n\s*")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_INITIAL = re.compile(r"(?:^|[\s(])[A-Z]$")
_LIST_NUMBER = re.compile(r"(?:^|\n)[ \t]*(?:\d{1,2}|[A-Za-z])$")


@dataclass(frozen=True)
class SentenceRules:
    """Words whose period never ends a sentence; abbreviations ending one only before a capital."""

    never_split: frozenset[str] = field(default_factory=frozenset)
    abbreviations: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def default(cls) -> SentenceRules:
        """The rules in `rules/sentences.json`.

        Raises:
            DataError: the rule file is missing or malformed.
        """
        data = load_rules("sentences")
        return cls(frozenset(data["never_split"]), frozenset(data["abbreviations"]))


def _ends_sentence(text: str, dot: int, nxt: str, rules: SentenceRules) -> bool:
    """Whether the punctuation at `dot` ends a sentence, given the next non-space character."""
    if text[dot] != ".":
        return True
    before = text[:dot]
    if _LIST_NUMBER.search(before):
        return False
    match = _WORD_BEFORE.search(before)
    word = match.group(1).lower().rstrip(".") if match else ""
    if word in rules.never_split:
        return False
    if _INITIAL.search(before):
        return False
    if word in rules.abbreviations:
        return nxt.isupper() or nxt == "\n"
    return True


def split_sentences(text: str, rules: SentenceRules | None = None) -> list[tuple[int, int]]:
    """Character spans `(start, end)` of the sentences of `text`, whitespace trimmed."""
    rules = rules if rules is not None else SentenceRules.default()
    starts = {0}
    for pattern in (_BLANK_LINE, _LINE_START_ITEM, _INLINE_ITEM, _HEADING_LINE):
        starts.update(m.end() for m in pattern.finditer(text))
    for match in _END.finditer(text):
        rest = text[match.end() :]
        stripped = rest.lstrip(" \t")
        nxt = "\n" if stripped.startswith("\n") else stripped[:1]
        if nxt and _ends_sentence(text, match.start(), nxt, rules):
            starts.add(match.end())
    spans = []
    for start, end in pairwise([*sorted(starts), len(text)]):
        chunk = text[start:end]
        left = len(chunk) - len(chunk.lstrip())
        right = len(chunk.rstrip())
        if right > left:
            spans.append((start + left, start + right))
    return spans


class ClinicalSentencizer:
    """spaCy component: sentence starts from `split_sentences`."""

    def __init__(self, rules: SentenceRules | None = None) -> None:
        self.rules = rules if rules is not None else SentenceRules.default()

    def __call__(self, doc: Doc) -> Doc:
        starts = {start for start, _ in split_sentences(doc.text, self.rules)}
        for token in doc:
            token.is_sent_start = token.i == 0 or token.idx in starts
        return doc


@Language.factory("clinical_sentences")
def make_clinical_sentences(nlp: Language, name: str) -> ClinicalSentencizer:
    """Factory of the clinical sentence splitter (rules from `rules/sentences.json`)."""
    return ClinicalSentencizer()
