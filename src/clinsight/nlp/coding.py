"""ICD-10-CM coding of clinical concepts with the open code list of `simple-icd-10-cm`.

A concept is coded from the code its vocabulary entry carries (the entity's
`ent_id_`), else by an exact match of its normalised text against the code
descriptions ("Hypothyroidism, unspecified" answers "hypothyroidism"). No match
means no code: a wrong code is worse than none on a problem list.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import cache

with warnings.catch_warnings():  # the package reads its data with deprecated importlib calls
    warnings.simplefilter("ignore", DeprecationWarning)
    import simple_icd_10_cm as icd  # type: ignore[import-untyped]

from clinsight.errors import DataError

__all__ = ["ICDCode", "code_concept", "icd10_code"]

_UNSPECIFIED = re.compile(r",?\s*\b(unspecified|not elsewhere classified|nos)\b.*$")
_PARENS = re.compile(r"\s*\([^)]*\)")
_NON_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ICDCode:
    """An ICD-10-CM code with its official description."""

    code: str
    description: str


def _normalise(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


@cache
def _description_index() -> dict[str, str]:
    """Normalised description (and its short forms) → billable code; first code wins."""
    index: dict[str, str] = {}
    for code in icd.get_all_codes(with_dots=True):
        if not icd.is_category_or_subcategory(code) or not icd.is_leaf(code):
            continue
        description = icd.get_description(code).lower()
        short = _UNSPECIFIED.sub("", _PARENS.sub("", description))
        for key in (description, short, _PARENS.sub("", description)):
            index.setdefault(_normalise(key), code)
    return index


def icd10_code(code: str) -> ICDCode:
    """The ICD-10-CM code `code` (with or without the dot) and its description.

    Raises:
        DataError: the code is not in ICD-10-CM.
    """
    if not icd.is_valid_item(code):
        raise DataError(f"{code!r} is not an ICD-10-CM code; check the code list (e.g. 'I10').")
    dotted = icd.add_dot(code) if "." not in code else code
    return ICDCode(dotted, icd.get_description(dotted))


def code_concept(text: str, concept_id: str = "") -> ICDCode | None:
    """ICD-10-CM code of a concept: its vocabulary code if valid, else an exact description."""
    if concept_id and icd.is_valid_item(concept_id):
        return icd10_code(concept_id)
    code = _description_index().get(_normalise(text))
    return icd10_code(code) if code is not None else None
