"""De-identification of the HIPAA Safe Harbor identifiers in a note, with consistent surrogates.

Detectors (`phi_detect`) use context cues, shapes and packaged gazetteers: names
(after titles, labels, "seen by", relations, before credentials or "is a 70-year-old",
census given + family names) and every later mention of a found name; dates in any
written form (shifted by a per-key number of days and written back in their own format
where it can be parsed); ages over 89 (→ "90+"); phone and fax numbers, national and
international; e-mail addresses; street addresses, cities, postcodes, highways;
hospitals, clinics and other facilities (LOCATION); record, account, licence, device
and other ID numbers; URLs; IP addresses. A trained NER for names and places
(`phi_ner`, trained on synthetic sentences only) and a pretrained English NER from PyPI
(`phi_pretrained`, spaCy's small model) may be given: their spans join the rules' ones
(a union), for names and places no cue or word list catches. Surrogates are
chosen by HMAC of a caller key, so the same identifier gets the same surrogate within a
note and, with the same key, across a patient's notes.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from itertools import pairwise

from spacy.language import Language

from clinsight.nlp import Scores, load_rules
from clinsight.nlp.phi_detect import candidates
from clinsight.nlp.phi_ner import ner_spans
from clinsight.nlp.phi_pretrained import pretrained_spans

__all__ = [
    "DeidResult",
    "PHISpan",
    "PHIType",
    "deidentify",
    "evaluate_deid",
    "find_phi",
    "insert_identifiers",
]


class PHIType(StrEnum):
    """Kinds of Safe Harbor identifiers detected."""

    NAME = "NAME"
    DATE = "DATE"
    AGE = "AGE"
    PHONE = "PHONE"
    FAX = "FAX"
    EMAIL = "EMAIL"
    ADDRESS = "ADDRESS"
    LOCATION = "LOCATION"
    ID = "ID"
    URL = "URL"
    IP = "IP"


@dataclass(frozen=True)
class PHISpan:
    """An identifier found in a text, by character offsets."""

    start: int
    end: int
    type: PHIType
    text: str


@dataclass(frozen=True)
class DeidResult:
    """The de-identified text and the identifiers replaced, with their surrogates."""

    text: str
    phi: tuple[PHISpan, ...]
    surrogates: tuple[str, ...]


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DATE_WORD = re.compile(r"[A-Za-z]+")
_DATE_NUMBER = re.compile(r"(?<![\d'])(?P<q>')?(?P<n>\d+)(?P<o>st|nd|rd|th)?")


_PLACES = frozenset({PHIType.ADDRESS, PHIType.LOCATION})
_AND = re.compile(r"\s+(?:and|&)\s+")
_CORNER = re.compile(r"(?i:the\s+)?(?i:corner)\s+of\s+$")
_HOUSE_NUMBER = re.compile(r"(?<![\w.,/:-])\d{1,6}[A-Za-z]?[ \t]+$")


@cache
def _address_tail() -> re.Pattern[str]:
    """What may follow a place in an address: postcodes, state or region codes in capitals,
    unit numbers, a bracketed word, over commas and line breaks."""
    units = "|".join(
        re.escape(u) for u in sorted(load_rules("phi_cues")["unit_words"], key=len)[::-1]
    )
    part = rf"(?:\d{{3,6}}(?:-\d{{3,4}})?|[A-Z]{{2,3}}|(?:{units})\.?\s*#?\s*\d+[A-Za-z]?|\(\w+\))"
    return re.compile(rf"(?:[ \t]*,?\s*{part}(?![\w-]))+")


def _address_edges(
    text: str, found: Sequence[tuple[int, int, PHIType]]
) -> Iterator[tuple[int, int, PHIType]]:
    """A place's house number before it, and its postcode, region code or unit after it;
    the words of a street corner around two places ("the corner of A and B")."""
    parts: list[tuple[int, int]] = []  # a street corner may be named after people too
    for s, e in sorted((s, e) for s, e, k in found if k in _PLACES or k == PHIType.NAME):
        if parts and s <= parts[-1][1]:
            parts[-1] = (parts[-1][0], max(e, parts[-1][1]))
        else:
            parts.append((s, e))
    for (first, end), (start, _) in pairwise(parts):
        corner = _CORNER.search(text, max(0, first - 16), first)
        if corner and _AND.fullmatch(text, end, start):
            yield corner.start(), start, PHIType.LOCATION
    for start, end, kind in found:
        if kind not in _PLACES:
            continue
        before = _HOUSE_NUMBER.search(text, max(0, start - 12), start)
        if before:
            yield before.start(), start, kind
        after = _address_tail().match(text, end)
        if after and after.end() > end:
            yield end, after.end(), kind


def find_phi(
    text: str, ner: Language | None = None, *, pretrained: Language | None = None
) -> list[PHISpan]:
    """Identifiers in `text`, in order: overlapping candidates merge into one span, whose
    type is that of the earliest detector among them (numbers, dates, places, names,
    then the spans of the trained `ner` model, `phi_ner`, then those of the `pretrained`
    English NER, `phi_pretrained`, when they are given)."""
    found = [(s, e, PHIType(k)) for s, e, k in candidates(text) if e > s]
    if ner is not None:
        found += [(s, e, PHIType(k)) for s, e, k in ner_spans(ner, text) if e > s]
    if pretrained is not None:
        found += [(s, e, PHIType(k)) for s, e, k in pretrained_spans(pretrained, text) if e > s]
    found += list(_address_edges(text, found))
    kinds = [PHIType.NAME] * len(text)
    covered = [False] * len(text)
    for start, end, kind in reversed(found):  # earlier detectors name the merged span
        covered[start:end] = [True] * (end - start)
        kinds[start:end] = [kind] * (end - start)
    spans, i = [], 0
    while i < len(text):
        if not covered[i]:
            i += 1
            continue
        start = i
        while i < len(text) and covered[i]:
            i += 1
        kind = next(k for s, e, k in found if s < i and start < e)
        spans.append(PHISpan(start, i, kind, text[start:i]))
    return sorted(spans, key=lambda s: s.start)


def _digest(key: str, *parts: str) -> int:
    message = "\x1f".join(parts).encode()
    return int.from_bytes(hmac.new(key.encode(), message, hashlib.sha256).digest()[:8], "big")


def _date_parts(text: str) -> dict[str, tuple[int, int]] | None:
    """Where the year, month, day, month name and weekday of a written date are."""
    parts: dict[str, tuple[int, int]] = {}
    for m in _DATE_WORD.finditer(text):
        word = m.group().lower()
        if word[:3] in _MONTHS and "mon" not in parts and len(word) >= 3:
            parts["mon"] = m.span()
        elif word[:3] in _WEEKDAYS and len(word) >= 3:
            parts["wd"] = m.span()
    numbers = [
        ((m.start("n"), m.end()), m.group("n"), bool(m.group("q")))
        for m in _DATE_NUMBER.finditer(text)
    ]
    if "mon" in parts:
        for span, digits, quoted in numbers[:2]:
            key = "y" if len(digits) == 4 or quoted or "d" in parts else "d"
            parts.setdefault(key, span)
        return parts
    if len(numbers) < 2:
        return None
    order: tuple[str, ...]
    if len(numbers[0][1]) == 4:
        order = ("y", "m", "d")
    elif len(numbers) == 2:
        order = ("m", "y") if len(numbers[1][1]) == 4 else ("m", "d")
    elif "." in text:
        order = ("d", "m", "y")
    else:
        order = ("m", "d", "y")
    return {key: span for key, (span, _, _) in zip(order, numbers, strict=False)}


def _shift_date(text: str, days: int) -> str:
    """The date shifted by `days`, written back in its own format ("[DATE]" if unreadable)."""
    parts = _date_parts(text)
    if parts is None:
        return "[DATE]"
    value = {k: text[s:e] for k, (s, e) in parts.items()}
    ordinal = value.get("d", "")[-2:].isalpha()
    if ordinal:
        value["d"] = value["d"][:-2]
    try:
        month = _MONTHS.index(value["mon"][:3].lower()) + 1 if "mon" in value else int(value["m"])
        year = int(value.get("y", "2000"))
        year += (1900 if year > 30 else 2000) if len(value.get("y", "2000")) == 2 else 0
        shifted = date(year, month, int(value.get("d", "1"))) + timedelta(days)
    except (ValueError, KeyError):
        return "[DATE]"
    new = {
        "y": f"{shifted.year:04d}" if len(value.get("y", "")) != 2 else f"{shifted.year % 100:02d}",
        "m": f"{shifted.month:0{len(value.get('m', ''))}d}",
        "d": f"{shifted.day:0{len(value.get('d', ''))}d}",
        "mon": shifted.strftime(
            "%B" if len(value.get("mon", "")) > 3 or value.get("mon", "").lower() == "may" else "%b"
        ),
        "wd": shifted.strftime("%A" if len(value.get("wd", "")) > 3 else "%a"),
    }
    if ordinal:
        day = shifted.day
        new["d"] += {1: "st", 2: "nd", 3: "rd"}.get(day % 10 if day // 10 != 1 else 0, "th")
    for key in ("mon", "wd"):
        if value.get(key, "").isupper():
            new[key] = new[key].upper()
        if key in value and len(value[key]) == 4 and key == "mon":  # "Sept"
            new[key] = shifted.strftime("%b")
    out = text
    for key, (start, end) in sorted(parts.items(), key=lambda kv: -kv[1][0]):
        out = out[:start] + new[key] + out[end:]
    return out


def _surrogate(span: PHISpan, key: str, days: int) -> str:
    rules = load_rules("deid")
    n = _digest(key, span.type.value, span.text.lower())
    digits = "".join(str((n >> (4 * i)) % 10) for i in range(16))
    cities = rules["surrogate_cities"]
    replacements: dict[PHIType, Callable[[], str]] = {
        PHIType.NAME: lambda: " ".join(
            w if len(w.rstrip(".")) == 1 else _name_word(w, key, rules) for w in span.text.split()
        ),
        PHIType.DATE: lambda: _shift_date(span.text, days),
        PHIType.AGE: lambda: "90+",
        PHIType.PHONE: lambda: f"555-555-01{digits[:2]}",
        PHIType.FAX: lambda: f"555-555-01{digits[2:4]}",
        PHIType.EMAIL: lambda: f"user{digits[:5]}@example.org",
        PHIType.URL: lambda: f"https://example.org/{digits[:6]}",
        PHIType.IP: lambda: f"192.0.2.{n % 254 + 1}",
        PHIType.ID: lambda: "".join(
            digits[i % 16] if c.isalnum() else c for i, c in enumerate(span.text)
        ),
        PHIType.LOCATION: lambda: (
            f"{cities[n % len(cities)]} {_facility_word(span.text)}"
        ).strip(),
        PHIType.ADDRESS: lambda: (
            f"{n % 900 + 100} {rules['surrogate_streets'][n % len(rules['surrogate_streets'])]}"
            if span.text[:1].isdigit()
            else f"{rules['surrogate_cities'][n % len(rules['surrogate_cities'])]}, ST 00000"
        ),
    }
    return replacements[span.type]()


def _facility_word(text: str) -> str:
    """The kind of a facility named in `text` ("Hospital", "Nursing Home"), or ""."""
    words: list[str] = load_rules("phi_cues")["facility_words"]
    for word in sorted(words, key=len, reverse=True):
        if re.search(rf"\b{re.escape(word)}\b", text):
            return word
    return ""


def _name_word(word: str, key: str, rules: dict[str, list[str]]) -> str:
    bare = word.strip(".,'")
    given = bare.lower() in set(rules["given_names"])
    pool = rules["surrogate_given_names" if given else "surrogate_family_names"]
    return word.replace(bare, pool[_digest(key, "NAME", bare.lower()) % len(pool)])


def deidentify(
    text: str,
    key: str = "",
    *,
    date_shift_days: int | None = None,
    ner: Language | None = None,
    pretrained: Language | None = None,
) -> DeidResult:
    """Replace every identifier found by `find_phi` (with the trained `ner` model and the
    `pretrained` NER when given) with a consistent surrogate.

    `key` (a per-patient secret) makes surrogates and the date shift repeatable across
    notes; the shift is 1-365 days back unless `date_shift_days` fixes it.
    """
    days = -(_digest(key, "date-shift") % 365 + 1) if date_shift_days is None else date_shift_days
    spans = find_phi(text, ner, pretrained=pretrained)
    pieces, last, surrogates = [], 0, []
    for span in spans:
        surrogate = _surrogate(span, key, days)
        surrogates.append(surrogate)
        pieces.append(text[last : span.start] + surrogate)
        last = span.end
    return DeidResult("".join(pieces) + text[last:], tuple(spans), tuple(surrogates))


_MARK = re.compile(r"<([A-Z]+):([^>]*)>")


def insert_identifiers(
    notes: Sequence[str], per_note: int = 6, seed: int = 0
) -> list[tuple[str, list[PHISpan]]]:
    """Notes with known identifiers inserted between sentences, and their gold spans."""
    rng = random.Random(seed)
    rules = load_rules("deid")
    corpus = []
    for note in notes:
        cut = rng.choice([m.end() for m in re.finditer(r"\. ", note)] or [0])
        gold, text = [], note[:cut]
        templates = rules["benchmark_templates"]
        for template in rng.sample(templates, k=min(per_note, len(templates))):
            values: dict[str, object] = {
                k: rng.choice(v) for k, v in rules["benchmark_pools"].items()
            }
            y, m, d = rng.randint(1950, 2023), rng.randint(1, 12), rng.randint(1, 28)
            values |= {"y": y, "m": m, "d": d, "mm": f"{m:02d}", "dd": f"{d:02d}"}
            values |= {"month": date(y, m, d).strftime("%B"), "age": rng.randint(90, 104)}
            values |= {f"o{i}": rng.randint(0, 255) for i in (1, 2, 3)}
            values |= {"area": rng.randint(201, 989), "p3": rng.randint(200, 999)}
            values |= {"p4": f"{rng.randint(0, 9999):04d}", "n": rng.randint(10, 9999)}
            values |= {"zip": f"{rng.randint(10000, 99999)}", "mrn": f"{rng.randint(0, 10**8):08d}"}
            values |= {"acct": f"{rng.randint(10**5, 10**6 - 1)}-{rng.randint(10, 99)}"}
            sentence = " " + template.format(**values) + " "
            while (match := _MARK.search(sentence)) is not None:
                start = len(text) + match.start()
                gold.append(
                    PHISpan(
                        start, start + len(match.group(2)), PHIType(match.group(1)), match.group(2)
                    )
                )
                sentence = sentence[: match.start()] + match.group(2) + sentence[match.end() :]
            text += sentence
        corpus.append((text + note[cut:], gold))
    return corpus


def evaluate_deid(corpus: Sequence[tuple[str, Sequence[PHISpan]]]) -> dict[str, Scores]:
    """Per-type and overall scores: a gold identifier counts as found when predicted spans
    cover all its alphanumeric characters; a predicted span is correct when it overlaps
    a gold one (so identifiers already in the source notes count against precision)."""
    counts: dict[str, list[int]] = {}
    for text, gold in corpus:
        predicted = find_phi(text)
        covered = [False] * len(text)
        for span in predicted:
            covered[span.start : span.end] = [True] * (span.end - span.start)
        for span in gold:
            found = all(covered[i] for i in range(span.start, span.end) if text[i].isalnum())
            for key in (span.type.value, "ALL"):
                counts.setdefault(key, [0, 0, 0])[0 if found else 2] += 1
        for span in predicted:
            if not any(g.start < span.end and span.start < g.end for g in gold):
                for key in (span.type.value, "ALL"):
                    counts.setdefault(key, [0, 0, 0])[1] += 1
    return {key: Scores(*tally) for key, tally in sorted(counts.items())}
