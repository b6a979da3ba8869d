"""Phone numbers of any country, by Google's libphonenumber (the `phonenumbers` package).

`phone_numbers` runs `phonenumbers.PhoneNumberMatcher` once for each region in
`PhoneSettings.regions` and keeps a match of six digits or more when the number is valid
for its region and written in groups, or when a phone cue word (rules/phi_cues.json
``phone_cues``: "tel", "call", "mobile") stands just before it; never numbers joined by
slashes ("151/102"). A run of seven digits or more is an ID to `phi_detect` anyway. The regions,
the leniency, the cue window and the digits needed were chosen on the tuning sets of
``benchmarks/deid_tune.py`` only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from clinsight.nlp import load_rules

__all__ = ["PhoneSettings", "phone_numbers"]


class PhoneSettings:
    """What `phone_numbers` accepts (chosen on the tuning sets, see the module docstring)."""

    regions = (
        "US", "GB", "DE", "FR", "IT", "ES", "NL", "BE", "CH", "AT", "PL", "CZ", "SE", "NO",
        "DK", "FI", "EE", "HU", "RO", "PT", "IE", "AU", "NZ", "IN", "BR", "MX", "TR", "NG",
        "VN", "JP", "CA", "ZA",
    )  # fmt: skip
    leniency = Leniency.POSSIBLE
    """How strictly the matcher reads a candidate (POSSIBLE: a plausible length)."""
    cue_window = 24
    """Characters before a number searched for a phone cue word."""
    min_digits = 6
    """Fewer digits are not a phone number here (emergency and short service numbers)."""


_DIGITS = re.compile(r"\d(?:[\s().+/-]{0,3}\d){5}")
_FRACTION = re.compile(r"\d{1,3}(?:\.\d+)?(?:/\d{1,3}(?:\.\d+)?)+")
"""Numbers joined by slashes: a blood pressure ("151/102"), a ratio ("1.25/250"), repeated
measures ("42/40/40"), which some regions' numbering plans would accept."""
_EXTENSION = re.compile(r"\s*(?i:x|ext\.?|extension)\s*\d{1,6}\b")


@cache
def _cue() -> re.Pattern[str]:
    cues = sorted(load_rules("phi_cues")["phone_cues"], key=len, reverse=True)
    return re.compile(rf"(?i:\b(?:{'|'.join(re.escape(c) for c in cues)}))(?![\w])")


def phone_numbers(text: str) -> Iterator[tuple[int, int]]:
    """Spans of phone numbers in `text` (with an extension after them): valid numbers of a
    region, or possible ones after a phone cue."""
    if not _DIGITS.search(text):  # cheap: no six digits close together, no number
        return
    seen: set[tuple[int, int]] = set()
    for region in PhoneSettings.regions:
        for match in PhoneNumberMatcher(text, region, leniency=PhoneSettings.leniency):
            span = (match.start, match.end)
            digits = sum(c.isdigit() for c in match.raw_string)
            short = digits < PhoneSettings.min_digits
            if span in seen or short or _FRACTION.fullmatch(match.raw_string):
                continue
            cue = _cue().search(text, max(0, match.start - PhoneSettings.cue_window), match.start)
            grouped = not match.raw_string.isdigit()  # "152000" alone is a count, not a number
            if (grouped and phonenumbers.is_valid_number(match.number)) or cue:
                seen.add(span)
                extension = _EXTENSION.match(text, match.end)
                yield match.start, extension.end() if extension else match.end
