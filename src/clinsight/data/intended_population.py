"""The population a model was made for (an age range at the study date) and a patient's age.

Image models carry their training data's population in model.json (`intended_population`),
so a prediction for a patient outside it can be flagged. Ages are whole years, as a
clinician states them: a child is "5" until their sixth birthday.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from clinsight.errors import DataError

__all__ = ["IntendedPopulation", "age_in_years"]


@dataclass(frozen=True)
class IntendedPopulation:
    """Who a model is for: ages `min_age_years` to `max_age_years` inclusive, and where that
    comes from (the dataset's provenance)."""

    min_age_years: int
    max_age_years: int
    description: str
    source: str

    def __post_init__(self) -> None:
        if not 0 <= self.min_age_years <= self.max_age_years:
            raise DataError(
                f"An intended age range needs 0 <= min <= max; got {self.min_age_years}-"
                f"{self.max_age_years} years."
            )

    def contains(self, age_years: int) -> bool:
        """Whether a patient of this age (whole years) belongs to the population."""
        return self.min_age_years <= age_years <= self.max_age_years

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (model.json and the card)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntendedPopulation:
        """Read the stored form.

        Raises:
            DataError: a field is missing or malformed.
        """
        try:
            return cls(
                min_age_years=int(data["min_age_years"]),
                max_age_years=int(data["max_age_years"]),
                description=str(data.get("description", "")),
                source=str(data.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Malformed intended population {data!r}: {exc}") from exc


def age_in_years(birth_date: date, on: date) -> int:
    """Completed years of age on `on` (negative when `on` precedes the birth)."""
    years = on.year - birth_date.year
    return years - 1 if (on.month, on.day) < (birth_date.month, birth_date.day) else years
