"""The safety filter applied to every list of proposed treatments, each removal with its
reason: a recorded allergy to the substance, duplicate therapy (the same ingredient, or
the same class, already active), and an interaction with an active medication. The list
ranks alternatives; `proposed_set` draws the set proposed together from it, skipping a
treatment that interacts with one drawn before it and recording the skip with its reason.

Interactions come from a table kept as data: the shipped `interactions.json` is a small
demonstration set with a citation per pair (public-domain sources); a hospital loads its
own with `load_interaction_csv` (columns ``drug_a, drug_b, severity, text``; each pair
cites the file and line) and `InteractionTable.merged` lays it over the shipped table (the
hospital's pair wins where both have one). Drugs are
matched by RxNorm ingredient code. An allergy recorded without a coded substance (free
text) cannot be matched by code: it is kept and shown with every list, and a treatment
whose name appears in its text is removed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from clinsight.data.longitudinal import Code
from clinsight.data.omop import FREE_TEXT_ALLERGY
from clinsight.errors import DataError

__all__ = [
    "RXNORM",
    "SEVERITIES",
    "Interaction",
    "InteractionTable",
    "ProposedSet",
    "Removal",
    "SafetyResult",
    "check_treatments",
    "load_interaction_csv",
    "proposed_set",
    "shipped_interactions",
]

RXNORM = "RxNorm"
SEVERITIES = ("contraindicated", "major", "moderate", "minor")


@dataclass(frozen=True)
class Interaction:
    """One interacting pair of ingredients (RxNorm codes), with its source."""

    drug_a: Code
    drug_b: Code
    severity: str
    text: str
    citation: str

    def other(self, code: str) -> Code:
        return self.drug_b if self.drug_a.code == code else self.drug_a


class InteractionTable:
    """Interacting pairs by RxNorm ingredient code (order does not matter)."""

    def __init__(self, pairs: Iterable[Interaction], source: str, notice: str = "") -> None:
        self.source, self.notice = source, notice
        self._pairs: dict[frozenset[str], Interaction] = {}
        for pair in pairs:
            self._pairs[frozenset((pair.drug_a.code, pair.drug_b.code))] = pair

    def __len__(self) -> int:
        return len(self._pairs)

    def between(self, code_a: str, code_b: str) -> Interaction | None:
        """The interaction between two RxNorm ingredient codes, if the table has one."""
        return self._pairs.get(frozenset((code_a, code_b)))

    def codes(self) -> frozenset[str]:
        return frozenset(code for pair in self._pairs for code in pair)

    def pairs(self) -> tuple[Interaction, ...]:
        return tuple(self._pairs.values())

    def merged(self, other: InteractionTable) -> InteractionTable:
        """This table with `other`'s pairs laid over it (`other` wins for the same pair)."""
        return InteractionTable(
            (*self.pairs(), *other.pairs()), source=f"{self.source} + {other.source}",
            notice=self.notice,
        )  # fmt: skip


def _severity(value: str, where: str) -> str:
    severity = value.strip().lower()
    if severity not in SEVERITIES:
        raise DataError(f"{where}: severity {value!r} is not one of {', '.join(SEVERITIES)}.")
    return severity


def shipped_interactions() -> InteractionTable:
    """The shipped demonstration table (package data, cited per pair)."""
    text = resources.files("clinsight.recommend").joinpath("data/interactions.json").read_text()
    doc = json.loads(text)
    pairs = [
        Interaction(
            Code(**p["drug_a"]),
            Code(**p["drug_b"]),
            _severity(p["severity"], "shipped table"),
            p["text"],
            p["citation"],
        )
        for p in doc["pairs"]
    ]
    return InteractionTable(pairs, source=doc["title"], notice=doc["notice"])


def load_interaction_csv(path: Path | str, *, text: str | None = None) -> InteractionTable:
    """A hospital's interaction file: CSV with a header ``drug_a, drug_b, severity, text``
    (RxNorm ingredient codes; an optional ``citation`` column). Each pair cites the file
    and line, then its own citation if given.

    Raises:
        DataError: the file is missing or empty, a column is missing, a code is not an
            RxNorm code (digits), a drug is paired with itself, a text is empty, or a
            severity is not one of `SEVERITIES`.
    """
    name = Path(path).name
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise DataError(f"Cannot read the interaction file {name!r}.") from exc
    reader = csv.DictReader(io.StringIO(text))
    needed = {"drug_a", "drug_b", "severity", "text"}
    missing = sorted(needed - set(reader.fieldnames or ()))
    if missing:
        raise DataError(
            f"The interaction file {name!r} lacks the column(s) {', '.join(missing)}; "
            "its header must read drug_a,drug_b,severity,text."
        )
    pairs = []
    for line, row in enumerate(reader, start=2):
        where = f"{name} line {line}"
        a, b = (row["drug_a"] or "").strip(), (row["drug_b"] or "").strip()
        if not (a.isdigit() and b.isdigit()):
            raise DataError(
                f"{where}: drug_a and drug_b must be RxNorm ingredient codes (digits, e.g. "
                f"11289 for warfarin); got {a[:20]!r} and {b[:20]!r}."
            )
        if a == b:
            raise DataError(f"{where}: drug {a} is paired with itself.")
        said = (row["text"] or "").strip()
        if not said:
            raise DataError(f"{where}: the text column is empty; say what the interaction does.")
        cited = (row.get("citation") or "").strip()
        pairs.append(
            Interaction(
                Code(RXNORM, a), Code(RXNORM, b), _severity(row["severity"] or "", where),
                said, f"{where}" + (f": {cited}" if cited else ""),
            )
        )  # fmt: skip
    if not pairs:
        raise DataError(f"The interaction file {name!r} holds a header but no pair.")
    return InteractionTable(pairs, source=name)


@dataclass(frozen=True)
class Removal:
    """A treatment the filter removed, and why."""

    treatment: str
    display: str
    reason: str
    """``allergy``, ``duplicate_ingredient``, ``duplicate_class``, ``interaction`` (with an
    active drug) or ``interaction_in_set`` (with a treatment proposed with it)."""
    detail: str
    severity: str | None = None
    citation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "treatment": self.treatment, "display": self.display, "reason": self.reason,
            "detail": self.detail, "severity": self.severity, "citation": self.citation,
        }  # fmt: skip


@dataclass(frozen=True)
class SafetyResult:
    """What the filter kept, what it removed and why, and the allergies it could not
    check by code (free text, shown with the list)."""

    kept: tuple[str, ...]
    removed: tuple[Removal, ...]
    unchecked_allergies: tuple[str, ...]


@dataclass(frozen=True)
class ProposedSet:
    """The treatments proposed together, and those skipped because they interact with
    one drawn before them (reason ``interaction_in_set``)."""

    treatments: tuple[str, ...]
    skipped: tuple[Removal, ...] = ()


def proposed_set(
    ranked: Sequence[str],
    size: int,
    table: InteractionTable,
    names: Mapping[str, str] | None = None,
) -> ProposedSet:
    """The first `size` treatments of a ranked list that do not interact with each other
    (greedy: a treatment interacting with one already drawn is skipped, with its reason)."""
    names = names or {}
    chosen: list[str] = []
    skipped: list[Removal] = []
    for key in ranked:
        if len(chosen) == size:
            break
        found = _first_interaction(key, chosen, table)
        if found is None:
            chosen.append(key)
            continue
        other, hit = found
        skipped.append(
            Removal(
                key, names.get(key, _code_of(key)[1]), "interaction_in_set",
                f"interacts with {names.get(other, other)}, proposed before it: {hit.text}",
                severity=hit.severity, citation=hit.citation,
            )
        )  # fmt: skip
    return ProposedSet(tuple(chosen), tuple(skipped))


def _code_of(key: str) -> tuple[str, str]:
    system, _, code = key.partition("|")
    return system, code


def _first_interaction(
    key: str, others: Iterable[str], table: InteractionTable
) -> tuple[str, Interaction] | None:
    """The first of `others` that the table says interacts with `key` (RxNorm codes)."""
    system, code = _code_of(key)
    if system != RXNORM:
        return None
    for other in others:
        other_system, other_code = _code_of(other)
        found = table.between(code, other_code) if other_system == RXNORM else None
        if found is not None:
            return other, found
    return None


def check_treatments(
    treatments: Sequence[str],
    *,
    active: Iterable[str],
    allergies: Sequence[Code],
    table: InteractionTable,
    names: Mapping[str, str],
    classes: Mapping[str, Code] | None = None,
) -> SafetyResult:
    """Filter treatments (``Code.key()``s, in order) for one patient.

    Raises:
        DataError: a treatment key is not ``system|code``.
    """
    classes = classes or {}
    active = [a for a in active]
    active_classes = {classes[a].key(): a for a in active if a in classes}
    coded = {a.key() for a in allergies if a.system != FREE_TEXT_ALLERGY}
    free = tuple(a.display or a.code for a in allergies if a.system == FREE_TEXT_ALLERGY)
    kept: list[str] = []
    removed: list[Removal] = []
    for key in treatments:
        _, code = _code_of(key)
        if not code:
            raise DataError(f"{key!r} is not a treatment code (write system|code).")
        display = names.get(key, code)
        word = display.lower()
        text_hit = next((t for t in free if len(word) > 3 and word in t.lower()), None)
        if key in coded or text_hit is not None:
            detail = (
                f"recorded allergy to {display}"
                if key in coded
                else f"recorded allergy (free text) {text_hit!r} names {display}"
            )
            removed.append(Removal(key, display, "allergy", detail))
            continue
        if key in active:
            removed.append(
                Removal(key, display, "duplicate_ingredient", f"{display} is already active")
            )
            continue
        klass = classes.get(key)
        if klass is not None and klass.key() in active_classes:
            same = names.get(active_classes[klass.key()], active_classes[klass.key()])
            removed.append(
                Removal(
                    key,
                    display,
                    "duplicate_class",
                    f"{same} of the same class ({klass.display or klass.code}) is already active",
                )
            )
            continue
        hit = _first_interaction(key, active, table)
        if hit is not None:
            other, found = hit
            removed.append(
                Removal(
                    key,
                    display,
                    "interaction",
                    f"interacts with active {names.get(other, other)}: {found.text}",
                    severity=found.severity,
                    citation=found.citation,
                )
            )
            continue
        kept.append(key)
    return SafetyResult(tuple(kept), tuple(removed), free)
