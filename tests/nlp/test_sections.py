"""Section detection: headings with colons, upper-case heading lines, inline headings."""

from __future__ import annotations

import pytest
import spacy

from clinsight.errors import DataError
from clinsight.nlp.sections import Section, SectionRules, find_sections

NOTE = (
    "HISTORY OF PRESENT ILLNESS:\nThe patient has a history: none.\n"
    "PAST MEDICAL HISTORY\n1. Hypertension.\n"
    "Family history: mother with breast cancer.  ALLERGIES:  NKDA.\n"
    "HIS SOCIAL HISTORY:, Denies tobacco. Plan: follow up."
)


def test_sections_of_a_note() -> None:
    found = [(s.category, s.title, s.start, s.body_start, s.end) for s in find_sections(NOTE)]
    assert found == [
        ("history_of_present_illness", "HISTORY OF PRESENT ILLNESS", 0, 27, 61),
        ("past_medical_history", "PAST MEDICAL HISTORY", 61, 81, 99),
        ("family_history", "Family history", 99, 114, 143),
        ("allergies", "ALLERGIES", 143, 153, 165),
        ("social_history", "SOCIAL HISTORY", 165, 180, 198),
        ("plan", "Plan", 198, 203, 214),
    ]
    sections = find_sections(NOTE)
    assert dict(sections[1].attributes) == {"is_historical": True}
    assert dict(sections[2].attributes) == {"is_family": True}


def test_titles_inside_prose_are_not_headings() -> None:
    text = (
        "He has a past medical history of CHF and the plan is unclear. Family history is negative."
    )
    assert find_sections(text) == []
    lower_line = "plan\nrest"
    assert find_sections(lower_line) == []


def test_rules_validation_and_component() -> None:
    with pytest.raises(DataError, match="listed twice"):
        SectionRules.from_json({"sections": [{"category": "a", "titles": ["x", "X"]}]})
    with pytest.raises(DataError, match="needs 'category' and 'titles'"):
        SectionRules.from_json({"sections": [{"category": "a"}]})
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_sections")
    doc = nlp("ALLERGIES: penicillin.")
    assert doc._.sections == [Section("allergies", "ALLERGIES", 0, 10, 22)]
    assert doc[2:3]._.section.category == "allergies"
