"""The population a risk model was trained and validated on, and the check of one patient.

Recorded at training from the columns the task spec marks as age (``age_column``) and sex
(``sex_column``, coded by ``sex_codes``; or ``population_sex`` when every row has one sex
and the table has no sex column, as Pima's women): the age range (min–max and the
2.5th–97.5th percentiles), the sex distribution and the site (data set) name. An
assessment whose patient is older or younger than every training patient, or of a sex the
training data did not hold, carries a `PopulationWarning`: the risk is an extrapolation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clinsight.errors import DataError

__all__ = [
    "DEFAULT_SEX_CODES",
    "SEXES",
    "AgeRange",
    "PopulationWarning",
    "ValidatedPopulation",
    "parse_sex",
    "population_of",
]

SEXES = ("female", "male", "other")
"""Sexes a population counts (``unknown`` is never outside a population)."""
DEFAULT_SEX_CODES = {"0": "female", "1": "male"}
"""How a 0/1 sex column is read when the spec gives no ``sex_codes``."""


def _number(value: float) -> str:
    return f"{value:g}"


def parse_sex(value: object, codes: Mapping[str, str] | None = None) -> str | None:
    """A sex word (``female``, ``male``, ``other``) from a word or a column code; None when
    unknown or not given."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = _number(float(value))
    else:
        text = str(value).strip()
    table = codes or DEFAULT_SEX_CODES
    word = table.get(text, table.get(text.lower(), text.lower()))
    return {"f": "female", "m": "male"}.get(word, word) if word in (*SEXES, "f", "m") else None


@dataclass(frozen=True)
class AgeRange:
    """Ages of the training rows (years): observed limits and the central 95 %."""

    low: float
    high: float
    p2_5: float
    p97_5: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return {"min": self.low, "max": self.high, "p2_5": self.p2_5, "p97_5": self.p97_5}


@dataclass(frozen=True)
class PopulationWarning:
    """Why a patient lies outside a model's validated population."""

    population: str
    reasons: tuple[str, ...]

    code = "outside_validated_population"

    @property
    def message(self) -> str:
        """One sentence for a card, a page or the terminal."""
        return (
            f"Outside the validated population ({self.population}): "
            f"{'; '.join(self.reasons)}. The risk is an extrapolation; do not rely on it."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's ``warnings`` entry)."""
        return {
            "code": self.code, "message": self.message, "population": self.population,
            "reasons": list(self.reasons),
        }  # fmt: skip


@dataclass(frozen=True)
class ValidatedPopulation:
    """Site, size, ages and sexes of the rows a model was trained and validated on
    (``age``/``sexes`` None: not recorded, so not checked)."""

    site: str
    rows: int
    age: AgeRange | None = None
    sexes: dict[str, int] | None = None

    def describe(self) -> str:
        """``female, age 21–81`` (the recorded parts, sexes in order of frequency)."""
        parts = []
        if self.sexes:
            parts.append(" and ".join(s for s, _ in sorted(self.sexes.items(), key=_by_count)))
        if self.age is not None:
            parts.append(f"age {_number(self.age.low)}–{_number(self.age.high)}")
        return ", ".join(parts) or "not recorded"

    def check(self, *, age: float | None, sex: str | None) -> PopulationWarning | None:
        """The warning for a patient of this `age` (years) and `sex` word, if outside."""
        reasons = []
        if age is not None and self.age is not None and not self.age.low <= age <= self.age.high:
            reasons.append(
                f"age {age:.0f} is outside the training ages "
                f"{_number(self.age.low)}–{_number(self.age.high)}"
            )
        if sex in SEXES and self.sexes is not None and not self.sexes.get(str(sex)):
            held = " and ".join(sorted(self.sexes))
            reasons.append(f"sex {sex} is not in the training population ({held} only)")
        if not reasons:
            return None
        return PopulationWarning(f"{self.describe()}; {self.site}", tuple(reasons))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as `from_mapping` reads it."""
        return {
            "site": self.site, "rows": self.rows, "description": self.describe(),
            "age": self.age.to_dict() if self.age else None, "sex": self.sexes,
        }  # fmt: skip

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ValidatedPopulation:
        """Read the stored form.

        Raises:
            DataError: a part is malformed.
        """
        try:
            age = data.get("age")
            ages = AgeRange(
                float(age["min"]), float(age["max"]), float(age["p2_5"]), float(age["p97_5"])
            ) if age else None  # fmt: skip
            sexes = {str(k): int(v) for k, v in data["sex"].items()} if data.get("sex") else None
            return cls(str(data["site"]), int(data["rows"]), ages, sexes)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"the stored validated population is malformed: {exc}") from exc


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def population_of(
    frame: pd.DataFrame,
    *,
    site: str,
    age_column: str | None,
    sex_column: str | None,
    sex_codes: Mapping[str, str] | None = None,
    population_sex: str | None = None,
) -> ValidatedPopulation:
    """The population of training rows `frame` (see the module docstring).

    Raises:
        DataError: a named column is absent, ``population_sex`` is not a sex word, or the
            sex column holds a code that `sex_codes` does not map.
    """
    for column in (age_column, sex_column):
        if column is not None and column not in frame.columns:
            raise DataError(f"population column {column!r} is not in the data.")
    age = None
    if age_column is not None:
        values = pd.to_numeric(frame[age_column], errors="coerce").dropna().to_numpy(float)
        if values.size:
            low, high = np.percentile(values, [2.5, 97.5])
            age = AgeRange(float(values.min()), float(values.max()), float(low), float(high))
    sexes: dict[str, int] | None = None
    if sex_column is not None:
        sexes = {}
        for value in frame[sex_column].dropna():
            word = parse_sex(value, sex_codes)
            if word is None:
                raise DataError(
                    f"sex column {sex_column!r} holds {value!r}, which sex_codes "
                    f"{dict(sex_codes or DEFAULT_SEX_CODES)} does not map to {SEXES}."
                )
            sexes[word] = sexes.get(word, 0) + 1
    elif population_sex is not None:
        word = parse_sex(population_sex)
        if word is None:
            raise DataError(f"population_sex {population_sex!r} is not one of {SEXES}.")
        sexes = {word: len(frame)}
    return ValidatedPopulation(site, len(frame), age, sexes)
