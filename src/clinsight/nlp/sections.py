"""Section detection: headings such as "PAST MEDICAL HISTORY:" split a note into sections.

A heading is a known title (rules/sections.json) followed by a colon, or alone on an
upper-case line, placed at the start of a line, after a sentence end or after two
spaces. Each section carries assertion defaults (family history → family, past
medical history → historical) that the ConText component applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from spacy.language import Language
from spacy.tokens import Doc, Span

from clinsight.errors import DataError
from clinsight.nlp import load_rules

__all__ = ["Section", "SectionRules", "Sectionizer", "find_sections", "section_of"]

_CAPS_PREFIX = re.compile(r"(?:\b[A-Z][A-Z']* )+$")
_LEAD = re.compile(r"(?:[.;:!?,][ \t]+|\S[ \t]{2,})$")


@dataclass(frozen=True)
class Section:
    """A section of a note: its category, heading text and character extent."""

    category: str
    title: str
    start: int
    body_start: int
    end: int
    attributes: Mapping[str, bool] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SectionRules:
    """Titles (lower case) by category, and each category's assertion defaults."""

    titles: Mapping[str, str]
    attributes: Mapping[str, Mapping[str, bool]]

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SectionRules:
        """Build from the `rules/sections.json` structure.

        Raises:
            DataError: an entry lacks its category or titles, or a title is repeated.
        """
        titles: dict[str, str] = {}
        attributes: dict[str, Mapping[str, bool]] = {}
        for entry in data.get("sections", []):  # type: ignore[attr-defined]
            if "category" not in entry or not entry.get("titles"):
                raise DataError(f"Section rule {entry!r} needs 'category' and 'titles'.")
            attributes[entry["category"]] = MappingProxyType(dict(entry.get("attributes", {})))
            for title in entry["titles"]:
                if title.lower() in titles:
                    raise DataError(f"Section title {title!r} is listed twice.")
                titles[title.lower()] = entry["category"]
        return cls(MappingProxyType(titles), MappingProxyType(attributes))

    @classmethod
    def default(cls) -> SectionRules:
        """The rules in `rules/sections.json`.

        Raises:
            DataError: the rule file is missing or malformed.
        """
        return cls.from_json(load_rules("sections"))

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """Regex matching any title (longest first) followed by a colon or an end of line."""
        alternatives = "|".join(
            re.escape(t).replace(r"\ ", r"\s+") for t in sorted(self.titles, key=len, reverse=True)
        )
        return re.compile(
            rf"\b(?P<title>{alternatives})(?:\s*\((?:e?s)\))?(?P<colon>[ \t]*:|[ \t]*(?=\n|$))",
            re.IGNORECASE,
        )


def find_sections(text: str, rules: SectionRules | None = None) -> list[Section]:
    """The sections of `text`, in order; text before the first heading is in no section."""
    rules = rules if rules is not None else SectionRules.default()
    heads: list[tuple[int, int, str, str]] = []
    for match in rules.pattern.finditer(text):
        title = match.group("title")
        window_start = max(0, match.start() - 60)
        before = text[window_start : match.start()]
        if title.isupper() and match.group("colon").strip():
            before = _CAPS_PREFIX.sub("", before)
        lines = before.rsplit("\n", 1)
        at_line_start = not lines[-1].strip() and (len(lines) > 1 or window_start == 0)
        if not (at_line_start or _LEAD.search(before)):
            continue
        if not match.group("colon").strip() and not (at_line_start and title.isupper()):
            continue
        category = rules.titles[re.sub(r"\s+", " ", title.lower())]
        heads.append((match.start(), match.end(), title, category))
    sections = []
    for index, (start, body_start, title, category) in enumerate(heads):
        end = heads[index + 1][0] if index + 1 < len(heads) else len(text)
        attributes = rules.attributes.get(category, {})
        sections.append(Section(category, title, start, body_start, end, attributes))
    return sections


def section_of(span: Span) -> Section | None:
    """The section a span of a processed doc starts in, or None outside any section."""
    for section in span.doc._.sections:
        if section.start <= span.start_char < section.end:
            return section  # type: ignore[no-any-return]
    return None


class Sectionizer:
    """spaCy component: sets `doc._.sections` (a list of `Section`)."""

    def __init__(self, rules: SectionRules | None = None) -> None:
        self.rules = rules if rules is not None else SectionRules.default()

    def __call__(self, doc: Doc) -> Doc:
        doc._.sections = find_sections(doc.text, self.rules)
        return doc


if not Doc.has_extension("sections"):
    Doc.set_extension("sections", default=None)
if not Span.has_extension("section"):
    Span.set_extension("section", getter=section_of)


@Language.factory("clinical_sections")
def make_clinical_sections(nlp: Language, name: str) -> Sectionizer:
    """Factory of the sectionizer (rules from `rules/sections.json`)."""
    return Sectionizer()
