"""One typed longitudinal record: a patient, their visits, and time-stamped coded events
and measurements, whatever the source (PhysioNet 2012, OMOP CDM, MIMIC-III, eICU, FHIR).

Every loader returns a `Cohort` of `PatientRecord`s and a `LoadReport` that counts what it
skipped and why (a row with no parameter name, an unknown unit, an implausible value, a
time going backwards), so nothing is dropped silently. Progression tasks
(`data.tasks`) and the recommender read only these types.

Times are `datetime`s. A source that gives only times relative to an admission (PhysioNet
2012: ``HH:MM`` since ICU admission) anchors them at `RELATIVE_EPOCH` and says so with
``PatientRecord.relative_times``; no calendar date is invented for display.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from clinsight.errors import DataError

__all__ = [
    "RELATIVE_EPOCH",
    "Code",
    "Cohort",
    "Event",
    "EventKind",
    "LoadReport",
    "Measurement",
    "PatientRecord",
    "Visit",
    "patient_split",
]

RELATIVE_EPOCH = datetime(2000, 1, 1)
"""The anchor of sources that give times relative to an admission (never shown as a date)."""


class EventKind(StrEnum):
    """What a coded event records."""

    CONDITION = "condition"
    DRUG = "drug"
    PROCEDURE = "procedure"
    ALLERGY = "allergy"
    OBSERVATION = "observation"
    DEATH = "death"


@dataclass(frozen=True)
class Code:
    """A code in a code system (``system`` a URI or an OMOP vocabulary id, e.g. ``RxNorm``)."""

    system: str
    code: str
    display: str | None = None

    def key(self) -> str:
        """``system|code``, the form used as a vocabulary key."""
        return f"{self.system}|{self.code}"


@dataclass(frozen=True)
class Visit:
    """An encounter: an ICU stay, an admission, an outpatient visit."""

    visit_id: str
    start: datetime
    end: datetime | None = None
    kind: str = "unknown"

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise DataError(
                f"visit {self.visit_id}: it ends ({self.end:%Y-%m-%d %H:%M}) before it "
                f"starts ({self.start:%Y-%m-%d %H:%M})."
            )


@dataclass(frozen=True)
class Event:
    """A coded event: a diagnosis, a drug exposure (with its end), a procedure, an allergy."""

    kind: EventKind
    code: Code
    start: datetime
    end: datetime | None = None
    visit_id: str | None = None
    quantity: float | None = None
    """e.g. days' supply or number of refills of a drug exposure, where the source has it."""


@dataclass(frozen=True)
class Measurement:
    """A time-stamped value of a variable (vital sign, lab), in the spec's canonical unit."""

    code: Code
    time: datetime
    value: float
    unit: str | None = None
    visit_id: str | None = None


@dataclass(frozen=True)
class PatientRecord:
    """Everything a source knows about one patient, events and measurements in time order."""

    patient_id: str
    birth_date: date | None = None
    sex: str | None = None
    """``female``, ``male`` or None (not recorded)."""
    visits: tuple[Visit, ...] = ()
    events: tuple[Event, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    static: Mapping[str, float] = field(default_factory=dict)
    """Descriptors recorded once (PhysioNet: age, height, ICU type ...)."""
    outcomes: Mapping[str, float] = field(default_factory=dict)
    """Outcomes the source states (PhysioNet: in-hospital death, SAPS-I, SOFA)."""
    relative_times: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "visits", tuple(sorted(self.visits, key=lambda v: v.start)))
        object.__setattr__(self, "events", tuple(sorted(self.events, key=lambda e: e.start)))
        object.__setattr__(
            self, "measurements", tuple(sorted(self.measurements, key=lambda m: m.time))
        )

    def events_of(self, kind: EventKind) -> tuple[Event, ...]:
        """The events of one kind, in time order."""
        return tuple(event for event in self.events if event.kind is kind)

    def events_before(self, moment: datetime, kind: EventKind | None = None) -> tuple[Event, ...]:
        """Events that started strictly before ``moment`` (optionally of one kind)."""
        return tuple(
            event
            for event in self.events
            if event.start < moment and (kind is None or event.kind is kind)
        )

    def measurements_between(self, start: datetime, end: datetime) -> tuple[Measurement, ...]:
        """Measurements with ``start <= time < end``."""
        return tuple(m for m in self.measurements if start <= m.time < end)

    def age_at(self, moment: datetime | date) -> float | None:
        """Age in years at ``moment`` (from the birth date, else the ``age`` descriptor)."""
        if self.birth_date is None:
            age = self.static.get("age")
            return None if age is None else float(age)
        day = moment.date() if isinstance(moment, datetime) else moment
        return (day - self.birth_date).days / 365.25


@dataclass
class LoadReport:
    """What a loader read and what it skipped, with a count per reason."""

    source: str
    patients: int = 0
    rows_read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, example: str = "") -> None:
        """Count one skipped row; keep the first example of each reason."""
        self.skipped[reason] += 1
        if example and reason not in self.examples:
            self.examples[reason] = example

    def lines(self) -> tuple[str, ...]:
        """One sentence per skip reason, for the CLI and the benchmark."""
        return tuple(
            f"{count} row(s) skipped: {reason}"
            + (f" (first: {self.examples[reason]})" if reason in self.examples else "")
            for reason, count in sorted(self.skipped.items())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "patients": self.patients,
            "rows_read": self.rows_read,
            "skipped": dict(sorted(self.skipped.items())),
            "examples": dict(sorted(self.examples.items())),
        }


@dataclass(frozen=True)
class Cohort:
    """Patient records from one source, with the loader's report."""

    records: tuple[PatientRecord, ...]
    report: LoadReport

    def __post_init__(self) -> None:
        ids = [record.patient_id for record in self.records]
        duplicates = [pid for pid, n in Counter(ids).items() if n > 1]
        if duplicates:
            raise DataError(f"patient {duplicates[0]} appears twice in {self.report.source}.")

    def by_id(self) -> dict[str, PatientRecord]:
        return {record.patient_id: record for record in self.records}

    def subset(self, patient_ids: Iterable[str]) -> Cohort:
        wanted = set(patient_ids)
        return Cohort(tuple(r for r in self.records if r.patient_id in wanted), self.report)


def patient_split(
    patient_ids: Sequence[str],
    fractions: Mapping[str, float],
    seed: int = 0,
) -> dict[str, str]:
    """Assign each patient to a part (e.g. ``{"train": 0.8, "validation": 0.2}``).

    Deterministic from the patient id and the seed (a hash, not the order of the list), so
    a patient stays in the same part when the cohort grows, and every record of a patient
    lands in one part.
    """
    total = sum(fractions.values())
    if not fractions or total <= 0 or any(share < 0 for share in fractions.values()):
        raise DataError("split fractions must be non-negative and add up to more than 0.")
    bounds: list[tuple[float, str]] = []
    cumulative = 0.0
    for part, share in fractions.items():
        cumulative += share / total
        bounds.append((cumulative, part))
    assignment: dict[str, str] = {}
    for pid in patient_ids:
        digest = hashlib.sha256(f"{seed}:{pid}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        assignment[pid] = next((part for bound, part in bounds if position < bound), bounds[-1][1])
    return assignment
