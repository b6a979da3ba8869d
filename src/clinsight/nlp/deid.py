"""De-identification of the HIPAA Safe Harbor identifiers in a note, with consistent surrogates.

Detectors (`phi_detect`) use context cues, shapes and packaged gazetteers: names
(after titles, labels, "seen by", relations, before credentials or "is a 70-year-old",
census given + family names) and every later mention of a found name; dates in any
written form (shifted by a per-key number of days and written back in their own format
where it can be parsed); ages over 89 (→ "90+"); phone and fax numbers, national and
international; e-mail addresses; street addresses, cities, postcodes, highways;
hospitals, clinics and other facilities (LOCATION); record, account, licence, device
and other ID numbers; URLs; IP addresses. Surrogates are chosen by HMAC of a caller key,
so the same identifier gets the same surrogate within a note and, with the same
key, across a patient's notes.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache

from clinsight.nlp import Scores, load_rules
from clinsight.nlp.phi_detect import NAME_WORD, candidates, not_names

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
_MON = r"(?P<mon>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"  # noqa: E501
_DATE_PATTERNS = (
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
    re.compile(r"\b(?P<m>\d{1,2})(?P<sep>[/-])(?P<d>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})\b"),
    re.compile(rf"\b{_MON}\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y>\d{{4}}))?\b"),
    re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MON}\.?,?\s+(?P<y>\d{{4}})\b"),
    re.compile(rf"\b{_MON}\.?,?\s+(?P<y>\d{{4}})\b"),
    re.compile(
        r"(?i:\b(?:on|since|from|until|dated?|seen|admitted|discharged)\s+)(?P<value>(?P<m>\d{1,2})/(?P<d>\d{1,2}))\b"
    ),
)
_MONTH_DAY = re.compile(r"\b(?P<m>\d{1,2})/(?P<d>\d{1,2})\b")


def find_phi(text: str) -> list[PHISpan]:
    """Identifiers in `text`, non-overlapping, in order (earlier detectors win overlaps;
    within one detector family the longer span wins)."""
    found = [(s, e, PHIType(k)) for s, e, k in candidates(text) if e > s]
    names = {
        w
        for s, e, k in found
        if k is PHIType.NAME
        for w in re.findall(NAME_WORD, text[s:e])
        if len(w) >= 3 and w not in not_names()
    }
    for word in names:
        found.extend(
            (m.start(), m.end(), PHIType.NAME)
            for m in re.finditer(rf"(?<![\w'-]){re.escape(word)}(?![\w'-])", text)
        )
    taken = [False] * len(text)
    spans = []
    for start, end, kind in found:
        if not any(taken[start:end]):
            taken[start:end] = [True] * (end - start)
            spans.append(PHISpan(start, end, kind, text[start:end]))
    return sorted(spans, key=lambda s: s.start)


def _digest(key: str, *parts: str) -> int:
    message = "\x1f".join(parts).encode()
    return int.from_bytes(hmac.new(key.encode(), message, hashlib.sha256).digest()[:8], "big")


def _shift_date(text: str, days: int) -> str:
    for pattern in (*_DATE_PATTERNS[:-1], _MONTH_DAY):
        match = pattern.search(text)
        if match is None:
            continue
        found = match.groupdict()
        month = int(found["m"]) if found.get("m") else _MONTHS.index(found["mon"][:3].lower()) + 1
        year = int(found["y"]) if found.get("y") else 2000
        year += (1900 if year > 30 else 2000) if found.get("y") and len(found["y"]) == 2 else 0
        try:
            shifted = date(year, month, int(found["d"]) if found.get("d") else 1) + timedelta(days)
        except ValueError:
            return "[DATE]"
        pieces = {
            "y": f"{shifted.year:04d}",
            "m": f"{shifted.month:0{len(found['m'] or '')}d}" if found.get("m") else "",
            "d": f"{shifted.day:0{len(found['d'] or '')}d}" if found.get("d") else "",
        }
        if found.get("y") and len(found["y"]) == 2:
            pieces["y"] = f"{shifted.year % 100:02d}"
        if found.get("mon"):
            pieces["mon"] = shifted.strftime("%B" if len(found["mon"]) > 3 else "%b")
        out, last = [], match.start()
        for group in ("y", "m", "d", "mon"):
            if found.get(group):
                out.append((match.start(group), match.end(group), pieces[group]))
        result = text[: match.start()]
        for start, end, value in sorted(out):
            result += text[last:start] + value
            last = end
        return result + text[last:]
    return "[DATE]"


def _surrogate(span: PHISpan, key: str, days: int) -> str:
    rules = load_rules("deid")
    n = _digest(key, span.type.value, span.text.lower())
    digits = "".join(str((n >> (4 * i)) % 10) for i in range(16))
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
        PHIType.ADDRESS: lambda: (
            f"{n % 900 + 100} {rules['surrogate_streets'][n % len(rules['surrogate_streets'])]}"
            if span.text[:1].isdigit()
            else f"{rules['surrogate_cities'][n % len(rules['surrogate_cities'])]}, ST 00000"
        ),
    }
    return replacements[span.type]()


def _name_word(word: str, key: str, rules: dict[str, list[str]]) -> str:
    bare = word.strip(".,'")
    given = bare.lower() in set(rules["given_names"])
    pool = rules["surrogate_given_names" if given else "surrogate_family_names"]
    return word.replace(bare, pool[_digest(key, "NAME", bare.lower()) % len(pool)])


def deidentify(text: str, key: str = "", *, date_shift_days: int | None = None) -> DeidResult:
    """Replace every identifier found by `find_phi` with a consistent surrogate.

    `key` (a per-patient secret) makes surrogates and the date shift repeatable across
    notes; the shift is 1-365 days back unless `date_shift_days` fixes it.
    """
    days = -(_digest(key, "date-shift") % 365 + 1) if date_shift_days is None else date_shift_days
    spans = find_phi(text)
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
