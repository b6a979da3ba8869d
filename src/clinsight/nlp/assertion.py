"""Assertion of clinical entities with the ConText algorithm (Harkema et al., 2009).

Trigger phrases (rules/context.json) modify the entities (`doc.ents`) inside their
scope: the rest of the sentence after a FORWARD trigger, the part before a
BACKWARD one, both for BIDIRECTIONAL, cut at the first TERMINATE phrase (``but``,
``however``, ...) or after `max_scope` tokens. A literal's word may be a token class,
``<year>``, ``<num>``, ``<month>``, ``<decade>`` ("1990s") or ``<ages>`` ("20s"): "in <year>"
matches "in 2015". The longest phrase wins where matches overlap; at equal length a
PSEUDO phrase ("no change", "gram negative") wins and blocks the triggers inside it.
Section defaults (family history → family, past medical history → historical, return
precautions → hypothetical) add to the triggers, and
outside any section a bare problem-list line naming a chronic condition ("HYPERTENSION.")
is historical: a past-history entry whose heading was lost.
Each entity gets the Span attributes `is_negated`, `is_uncertain`,
`is_historical`, `is_hypothetical`, `is_family` and `context_modifiers`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from clinsight.data.notes import ContextAnnotation, Temporality
from clinsight.errors import DataError
from clinsight.nlp import Scores, load_rules
from clinsight.nlp.sections import section_of

__all__ = [
    "ATTRIBUTES",
    "TOKEN_CLASSES",
    "AssertionReport",
    "ConTextComponent",
    "ContextRule",
    "Direction",
    "Modifier",
    "ProblemListRule",
    "evaluate_assertion",
    "load_context_rules",
    "load_problem_list_rule",
    "locate_condition",
]

ATTRIBUTES = {
    "NEGATED_EXISTENCE": "is_negated",
    "POSSIBLE_EXISTENCE": "is_uncertain",
    "HISTORICAL": "is_historical",
    "HYPOTHETICAL": "is_hypothetical",
    "FAMILY": "is_family",
}


_MONTHS = frozenset(
    {
        *("january", "february", "march", "april", "may", "june", "july", "august"),
        *("september", "october", "november", "december", "jan", "feb", "mar", "apr"),
        *("jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)
TOKEN_CLASSES: dict[str, Callable[[Token], bool]] = {
    "<year>": lambda t: re.fullmatch(r"(?:19|20)\d\d", t.text) is not None,
    "<num>": lambda t: t.like_num,
    "<month>": lambda t: t.lower_.rstrip(".") in _MONTHS,
    "<decade>": lambda t: re.fullmatch(r"(?:19|20)\d0'?s", t.lower_) is not None,
    "<ages>": lambda t: (
        re.fullmatch(r"[1-9]0'?s", t.lower_) is not None
        or t.lower_ in {"teens", "twenties", "thirties", "forties", "fifties", "sixties"}
    ),
}
"""Word classes a rule literal may use in place of a word (matched on the token, not its text)."""


class Direction(StrEnum):
    """Which way a trigger's scope extends, or what else it does."""

    FORWARD = "FORWARD"
    BACKWARD = "BACKWARD"
    BIDIRECTIONAL = "BIDIRECTIONAL"
    TERMINATE = "TERMINATE"
    PSEUDO = "PSEUDO"


@dataclass(frozen=True)
class ContextRule:
    """One trigger phrase: its category, direction, scope limit and (for TERMINATE) targets."""

    literal: str
    category: str
    direction: Direction
    max_scope: int | None = None
    terminates: frozenset[str] = frozenset()
    terminated_by: frozenset[str] = frozenset()

    def stops(self, other: ContextRule) -> bool:
        """Whether this trigger ends the scope of the modifier `other`."""
        if self.direction is Direction.TERMINATE:
            return not self.terminates or other.category in self.terminates
        return self.category in other.terminated_by


@dataclass(frozen=True)
class Modifier:
    """A trigger found in a doc: token range of the phrase and of the scope it governs."""

    rule: ContextRule
    start: int
    end: int
    scope_start: int
    scope_end: int

    def modifies(self, span: Span) -> bool:
        """Whether `span` overlaps the scope and not the trigger phrase itself."""
        overlaps_scope = span.start < self.scope_end and self.scope_start < span.end
        overlaps_trigger = span.start < self.end and self.start < span.end
        return overlaps_scope and not overlaps_trigger


def load_context_rules(path: Path | None = None) -> list[ContextRule]:
    """ConText rules from `rules/context.json` (or a file with the same structure).

    Raises:
        DataError: the file is missing, or a rule has an unknown category or direction.
    """
    data = load_rules("context", path)
    rules = []
    for number, entry in enumerate(data.get("rules", []), start=1):
        try:
            direction = Direction(entry["direction"])
            category = entry["category"]
            literal = entry["literal"].strip().lower()
        except (KeyError, ValueError) as exc:
            raise DataError(f"ConText rule #{number} {entry!r} is invalid: {exc}.") from None
        if direction not in (Direction.TERMINATE, Direction.PSEUDO) and category not in ATTRIBUTES:
            known = ", ".join(ATTRIBUTES)
            raise DataError(
                f"ConText rule #{number} has category {category!r}; use one of {known}."
            )
        rules.append(
            ContextRule(
                literal,
                category,
                direction,
                entry.get("max_scope"),
                frozenset(entry.get("terminates", ())),
                frozenset(entry.get("terminated_by", ())),
            )
        )
    return rules


@dataclass(frozen=True)
class ProblemListRule:
    """Category given to a bare problem-list line that names a chronic condition."""

    category: str
    chronic_conditions: tuple[str, ...]
    current_cues: tuple[str, ...] = ()


def load_problem_list_rule(path: Path | None = None) -> ProblemListRule | None:
    """The `problem_list` entry of `rules/context.json` (or of `path`), None if it has none.

    Raises:
        DataError: the file is missing, or the entry has an unknown category or no conditions.
    """
    entry = load_rules("context", path).get("problem_list")
    if entry is None:
        return None
    category = entry.get("category")
    if category not in ATTRIBUTES or not entry.get("chronic_conditions"):
        raise DataError(
            f"ConText problem_list needs a category of {', '.join(ATTRIBUTES)} and a non-empty "
            f"chronic_conditions list, got category {category!r}."
        )
    return ProblemListRule(
        category,
        tuple(c.strip().lower() for c in entry["chronic_conditions"]),
        tuple(c.strip().lower() for c in entry.get("current_cues", ())),
    )


class ConTextComponent:
    """spaCy component that asserts `doc.ents` with ConText rules and section defaults.

    Without `rules`, the packaged triggers and problem-list rule are used; with `rules`,
    only the `problem_list` rule passed (if any).
    """

    def __init__(
        self,
        nlp: Language,
        rules: Sequence[ContextRule] | None = None,
        use_sections: bool = True,
        problem_list: ProblemListRule | None = None,
    ) -> None:
        self.rules = list(rules) if rules is not None else load_context_rules()
        self.problem_list = problem_list if rules is not None else load_problem_list_rule()
        self.use_sections = use_sections
        self._chronic: set[tuple[str, ...]] = set()
        self._current: set[tuple[str, ...]] = set()
        if self.problem_list is not None:
            self._chronic = {_words(nlp, c) for c in self.problem_list.chronic_conditions}
            self._current = {_words(nlp, c) for c in self.problem_list.current_cues}
        self._index: dict[str, list[tuple[tuple[str, ...], ContextRule]]] = {}
        for rule in self.rules:
            words = _words(nlp, rule.literal)
            if words:
                self._index.setdefault(words[0], []).append((words, rule))
        for entries in self._index.values():
            entries.sort(key=lambda item: -len(item[0]))
        self._leading_classes = {c: t for c, t in TOKEN_CLASSES.items() if c in self._index}
        self._with_classes = {
            words
            for entries in self._index.values()
            for words, _ in entries
            if any(w in TOKEN_CLASSES for w in words)
        }

    def find_triggers(self, doc: Doc) -> list[tuple[int, int, ContextRule]]:
        """Non-overlapping trigger matches `(start, end, rule)`: the longest first, and at
        equal length PSEUDO first (a PSEUDO match is dropped after it has blocked the others).

        Rules sharing one literal (``in the past`` FORWARD and BACKWARD) all match its span.
        """
        tokens = [t for t in doc if not t.is_space]
        lowers = [t.lower_ for t in tokens]
        found: list[tuple[int, int, int, ContextRule]] = []
        for i, token in enumerate(tokens):
            keys = [lowers[i], *(c for c, test in self._leading_classes.items() if test(token))]
            for key in keys:
                for words, rule in self._index.get(key, ()):
                    n = len(words)
                    if tuple(lowers[i : i + n]) == words or (
                        words in self._with_classes
                        and i + n <= len(tokens)
                        and all(map(_word_matches, words, tokens[i : i + n]))
                    ):
                        found.append((i, i + n, n, rule))
        found.sort(key=lambda m: (-m[2], m[3].direction is not Direction.PSEUDO, m[0]))
        taken = [False] * len(tokens)
        kept_spans: set[tuple[int, int]] = set()
        kept: list[tuple[int, int, ContextRule]] = []
        for start, end, _, rule in found:
            if any(taken[start:end]) and (start, end) not in kept_spans:
                continue
            taken[start:end] = [True] * (end - start)
            if rule.direction is not Direction.PSEUDO:
                kept_spans.add((start, end))
                kept.append((tokens[start].i, tokens[end - 1].i + 1, rule))
        return sorted(kept, key=lambda m: m[0])

    def _modifiers(
        self, sent: Span, triggers: Sequence[tuple[int, int, ContextRule]]
    ) -> list[Modifier]:
        modifiers = []
        for start, end, rule in triggers:
            if rule.direction is Direction.TERMINATE:
                continue
            stops = [t for t in triggers if t[2].stops(rule)]
            scope_start, scope_end = start, end
            if rule.direction in (Direction.FORWARD, Direction.BIDIRECTIONAL):
                ends = [s for s, _, _ in stops if s >= end] + [sent.end]
                scope_end = _limit(sent, end, min(ends), rule.max_scope, forward=True)
            if rule.direction in (Direction.BACKWARD, Direction.BIDIRECTIONAL):
                starts = [e for _, e, _ in stops if e <= start] + [sent.start]
                scope_start = _limit(sent, start, max(starts), rule.max_scope, forward=False)
            modifiers.append(Modifier(rule, start, end, scope_start, scope_end))
        return modifiers

    def __call__(self, doc: Doc) -> Doc:
        triggers = self.find_triggers(doc)
        for sent in doc.sents:
            targets = [e for e in doc.ents if sent.start <= e.start < sent.end]
            if not targets:
                continue
            inside = [t for t in triggers if sent.start <= t[0] < sent.end]
            modifiers = self._modifiers(sent, inside)
            for target in targets:
                self._assert(target, sent, modifiers)
        return doc

    def _assert(self, target: Span, sent: Span, modifiers: Iterable[Modifier]) -> None:
        applied = tuple(m for m in modifiers if m.modifies(target))
        for attribute in ATTRIBUTES.values():
            target._.set(attribute, False)
        for modifier in applied:
            target._.set(ATTRIBUTES[modifier.rule.category], True)
        section = None
        if self.use_sections and target.doc._.sections is not None:
            section = section_of(target)
            if section is not None and target.start_char >= section.body_start:
                for attribute, value in section.attributes.items():
                    if value:
                        target._.set(attribute, True)
        if (
            section is None
            and self.problem_list is not None
            and self.is_chronic_entry(target, sent)
        ):
            target._.set(ATTRIBUTES[self.problem_list.category], True)
        target._.set("context_modifiers", applied)

    def is_chronic_entry(self, target: Span, sent: Span) -> bool:
        """Whether `target` is all of its sentence (but an optional list number) and names a
        chronic condition without a cue of a current finding."""
        words = [t for t in sent if not (t.is_punct or t.is_space)]
        outside = [t for t in words if not target.start <= t.i < target.end]
        if outside and not (outside == words[:1] and words[0].like_num):
            return False
        lowers = [t.lower_ for t in target if not t.is_space]
        return _contains(lowers, self._chronic) and not _contains(lowers, self._current)


def _words(nlp: Language, phrase: str) -> tuple[str, ...]:
    """The lower-cased words of `phrase`, its token classes (``<year>``) kept whole."""
    words: list[str] = []
    for part in re.split(r"(<[a-z]+>)", phrase.lower()):
        if part in TOKEN_CLASSES:
            words.append(part)
        elif part.startswith("<") and part.endswith(">"):
            raise DataError(f"Unknown token class {part} in rule {phrase!r}.")
        else:
            words += [t.lower_ for t in nlp.make_doc(part) if not t.is_space]
    return tuple(words)


def _word_matches(word: str, token: Token) -> bool:
    """Whether the rule word `word` (a lower-cased word or a token class) matches `token`."""
    test = TOKEN_CLASSES.get(word)
    return token.lower_ == word if test is None else test(token)


def _contains(words: Sequence[str], phrases: set[tuple[str, ...]]) -> bool:
    """Whether one of `phrases` occurs as consecutive items of `words`."""
    return any(
        tuple(words[i : i + len(phrase)]) == phrase
        for phrase in phrases
        for i in range(len(words) - len(phrase) + 1)
    )


def _limit(sent: Span, origin: int, bound: int, max_scope: int | None, *, forward: bool) -> int:
    """Clip a scope edge to `max_scope` non-space tokens from `origin`, within `bound`."""
    if max_scope is None:
        return bound
    step = 1 if forward else -1
    index, counted = origin if forward else origin - 1, 0
    while (index < bound if forward else index >= bound) and counted < max_scope:
        counted += 0 if sent.doc[index].is_space else 1
        index += step
    return index if forward else index + 1


for _name in (*ATTRIBUTES.values(), "context_modifiers"):
    if not Span.has_extension(_name):
        Span.set_extension(_name, default=None if _name == "context_modifiers" else False)


@Language.factory("clinical_context", default_config={"use_sections": True})
def make_clinical_context(nlp: Language, name: str, use_sections: bool) -> ConTextComponent:
    """Factory of the ConText component (rules from `rules/context.json`)."""
    return ConTextComponent(nlp, use_sections=use_sections)


@dataclass(frozen=True)
class AssertionReport:
    """Per-label scores of an assertion run on annotated sentences, and its speed."""

    negated: Scores
    historical: Scores
    hypothetical: Scores
    other_experiencer: Scores
    sentences: int
    unlocated: int
    sentences_per_second: float


def locate_condition(sentence: str, condition: str) -> tuple[int, int] | None:
    """Character span of `condition` in `sentence`, preferring the upper-cased occurrence."""
    pattern = r"\s+".join(re.escape(word) for word in condition.split())
    matches = list(re.finditer(pattern, sentence, re.IGNORECASE))
    if not matches:
        return None

    def rank(match: re.Match[str]) -> tuple[bool, bool]:
        is_heading = sentence[match.end() :].lstrip().startswith(":")
        return (not match.group().isupper(), is_heading)

    best = min(matches, key=rank)
    return best.start(), best.end()


def evaluate_assertion(nlp: Language, rows: Sequence[ContextAnnotation]) -> AssertionReport:
    """Run `nlp` (without entity components) on each annotated sentence with its condition as
    the only entity, and score negation, historical, hypothetical and other-experiencer.

    A condition not found in its sentence is scored as an affirmed, recent, patient one.
    """
    counts = {name: [0, 0, 0] for name in ("neg", "hist", "hyp", "other")}
    unlocated = 0
    start = time.perf_counter()
    for row in rows:
        doc = nlp.make_doc(row.sentence)
        where = locate_condition(row.sentence, row.condition)
        span = None if where is None else doc.char_span(*where, "PROBLEM", alignment_mode="expand")
        unlocated += span is None
        doc.ents = [span] if span is not None else []
        for _, component in nlp.pipeline:
            doc = component(doc)
        predicted = {
            "neg": bool(span is not None and doc.ents[0]._.is_negated),
            "hist": bool(span is not None and doc.ents[0]._.is_historical),
            "hyp": bool(span is not None and doc.ents[0]._.is_hypothetical),
            "other": bool(span is not None and doc.ents[0]._.is_family),
        }
        gold = {
            "neg": row.negated,
            "hist": row.temporality is Temporality.HISTORICAL,
            "hyp": row.temporality is Temporality.HYPOTHETICAL,
            "other": row.experiencer == "other",
        }
        for name, tally in counts.items():
            tally[0] += predicted[name] and gold[name]
            tally[1] += predicted[name] and not gold[name]
            tally[2] += gold[name] and not predicted[name]
    elapsed = max(time.perf_counter() - start, 1e-9)
    scores = {name: Scores(*tally) for name, tally in counts.items()}
    return AssertionReport(
        negated=scores["neg"],
        historical=scores["hist"],
        hypothetical=scores["hyp"],
        other_experiencer=scores["other"],
        sentences=len(rows),
        unlocated=unlocated,
        sentences_per_second=len(rows) / elapsed,
    )
