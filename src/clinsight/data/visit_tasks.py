"""Progression tasks over coded visits, declared as data (``progression_specs/tasks/``).

A record's coded events (an OMOP CDM database read by `data.omop.load_omop`, or any other
loader of `data.longitudinal`) are grouped into `CodedVisit`s by their visit id (events
without one by day). A task file names its kind and parameters, so a new task is one small
JSON file:

- ``onset``: at each visit of an adult (``min_age_years``) before the first diagnosis of a
  condition (``condition.codes``), whether that first diagnosis comes within
  ``horizon_days``. A visit whose follow-up (the record's last event) ends before the
  horizon, with no diagnosis by then, gives no sample and is counted; so does a record
  whose first visit already carries the diagnosis.
- ``next_visit``: at each visit, the codes of ``label_kinds`` (diagnoses) recorded at the
  next visit (multi-label); a next visit recording none gives no sample and is counted.
- ``readmission``: at each admission's discharge (the record's visits with an end), whether
  the patient is admitted again within ``horizon_days``, not counting admissions of a kind
  in ``planned_kinds`` (e.g. elective). Admissions ending in death, admissions without a
  discharge, and discharges followed by death within the horizon without a readmission
  give no sample and are counted. The history holds the codes of the visits up to the
  discharge, this admission's included (MIMIC-III dates its diagnoses at discharge).

The history of a sample is the visits up to and including the prediction visit (at most
``max_history_visits``, the latest), with codes of ``history_kinds``. A patient gives one
sample per eligible visit, so splits are by patient (`data.longitudinal.patient_split`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from clinsight.data.longitudinal import Cohort, EventKind, LoadReport, PatientRecord
from clinsight.errors import DataError, DataNotFoundError

__all__ = [
    "TASK_KINDS",
    "CodedVisit",
    "VisitSample",
    "VisitTask",
    "coded_visits",
    "load_visit_task",
    "visit_task_names",
    "visit_task_samples",
]

TASK_KINDS = ("onset", "next_visit", "readmission")


@dataclass(frozen=True)
class CodedVisit:
    """The codes (``Code.key``) recorded at one visit, at its earliest event's time."""

    visit_id: str
    time: datetime
    codes: frozenset[str]
    label_codes: frozenset[str] = frozenset()
    """The visit's codes of the task's label kinds (next-visit diagnoses)."""


@dataclass(frozen=True)
class VisitSample:
    """One prediction: a patient's visit history and what followed."""

    patient_id: str
    prediction_time: datetime
    visits: tuple[CodedVisit, ...]
    sex: str | None
    age: float | None
    label: int | None = None
    """Onset within the horizon (0/1); None for a multi-label task."""
    label_codes: frozenset[str] = frozenset()
    """The next visit's diagnoses (``Code.key``), for a multi-label task."""


@dataclass(frozen=True)
class VisitTask:
    """A task over coded visits, as its JSON file declares it."""

    name: str
    kind: str
    description: str
    history_kinds: tuple[EventKind, ...]
    max_history_visits: int
    horizon: timedelta | None = None
    min_age_years: float | None = None
    condition: frozenset[str] = frozenset()
    condition_name: str = ""
    label_kinds: tuple[EventKind, ...] = ()
    planned_kinds: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VisitTask:
        """The task of a parsed task file.

        Raises:
            DataError: the kind is unknown, an event kind is unknown, or a field is missing.
        """
        name = str(raw.get("name", "?"))
        try:
            kind = str(raw["kind"])
            if kind not in TASK_KINDS:
                raise DataError(
                    f"task {name!r}: kind {kind!r} is not one of {', '.join(TASK_KINDS)}."
                )
            condition = raw.get("condition") or {}
            horizon = raw.get("horizon_days")
            task = cls(
                name=name,
                kind=kind,
                description=str(raw["description"]),
                history_kinds=tuple(EventKind(k) for k in raw["history_kinds"]),
                max_history_visits=int(raw["max_history_visits"]),
                horizon=None if horizon is None else timedelta(days=float(horizon)),
                min_age_years=raw.get("min_age_years"),
                condition=frozenset(str(c) for c in condition.get("codes", ())),
                condition_name=str(condition.get("name", "")),
                label_kinds=tuple(EventKind(k) for k in raw.get("label_kinds", ())),
                planned_kinds=frozenset(str(k).lower() for k in raw.get("planned_kinds", ())),
            )
        except KeyError as exc:
            missing = exc.args[0]
            raise DataError(f"task {name!r}: the task file lacks the field {missing!r}.") from exc
        except ValueError as exc:
            raise DataError(f"task {name!r}: {exc}; event kinds are "
                            f"{', '.join(k.value for k in EventKind)}.") from exc  # fmt: skip
        if task.kind == "onset" and (not task.condition or task.horizon is None):
            raise DataError(f"onset task {name!r} needs condition codes and horizon_days.")
        if task.kind == "next_visit" and not task.label_kinds:
            raise DataError(f"next-visit task {name!r} needs label_kinds.")
        if task.kind == "readmission" and task.horizon is None:
            raise DataError(f"readmission task {name!r} needs horizon_days.")
        if task.max_history_visits < 1:
            raise DataError(f"task {name!r}: max_history_visits must be at least 1.")
        return task

    def describe(self) -> dict[str, Any]:
        """The declaration in words and days, for the model card and the benchmark."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "history_kinds": [k.value for k in self.history_kinds],
            "max_history_visits": self.max_history_visits,
            "horizon_days": None if self.horizon is None else self.horizon.days,
            "min_age_years": self.min_age_years,
            "condition": sorted(self.condition),
            "label_kinds": [k.value for k in self.label_kinds],
            "planned_kinds": sorted(self.planned_kinds),
        }


def _tasks_folder() -> Any:
    return resources.files("clinsight.data") / "progression_specs" / "tasks"


def visit_task_names() -> tuple[str, ...]:
    """The names of the packaged visit tasks."""
    return tuple(sorted(entry.name.removesuffix(".json") for entry in _tasks_folder().iterdir()
                        if entry.name.endswith(".json")))  # fmt: skip


def load_visit_task(name: str) -> VisitTask:
    """The packaged task ``progression_specs/tasks/<name>.json``.

    Raises:
        DataNotFoundError: no task of that name is packaged.
        DataError: the file is not a valid task.
    """
    entry = _tasks_folder() / f"{name}.json"
    if not entry.is_file():
        raise DataNotFoundError(
            f"no visit task named {name!r}; known: {', '.join(visit_task_names())}."
        )
    return VisitTask.from_dict(json.loads(entry.read_text(encoding="utf-8")))


def coded_visits(
    record: PatientRecord,
    kinds: Sequence[EventKind],
    label_kinds: Sequence[EventKind] = (),
) -> tuple[CodedVisit, ...]:
    """The record's events of `kinds` (and `label_kinds`) grouped by visit, in time order
    (events without a visit id grouped by day)."""
    wanted, labelled = frozenset(kinds), frozenset(label_kinds)
    codes: dict[str, set[str]] = defaultdict(set)
    labels: dict[str, set[str]] = defaultdict(set)
    start: dict[str, datetime] = {}
    for event in record.events:
        if event.kind not in wanted and event.kind not in labelled:
            continue
        key = event.visit_id or f"day:{event.start:%Y-%m-%d}"
        start[key] = min(start.get(key, event.start), event.start)
        if event.kind in wanted:
            codes[key].add(event.code.key())
        if event.kind in labelled:
            labels[key].add(event.code.key())
    return tuple(
        CodedVisit(key, start[key], frozenset(codes[key]), frozenset(labels[key]))
        for key in sorted(start, key=lambda k: (start[k], k))
    )


def _history(visits: Sequence[CodedVisit], index: int, task: VisitTask) -> tuple[CodedVisit, ...]:
    first = max(0, index + 1 - task.max_history_visits)
    return tuple(v for v in visits[first : index + 1] if v.codes)


def _onset(record: PatientRecord, task: VisitTask, report: LoadReport) -> list[VisitSample]:
    assert task.horizon is not None
    visits = coded_visits(record, task.history_kinds)
    diagnosed = [e.start for e in record.events if e.code.key() in task.condition]
    onset = min(diagnosed) if diagnosed else None
    if onset is not None and (not visits or onset <= visits[0].time):
        report.skip(f"{task.name}: the condition is recorded at or before the first visit",
                    record.patient_id)  # fmt: skip
        return []
    follow_up = max((e.start for e in record.events), default=None)
    out: list[VisitSample] = []
    for i, visit in enumerate(visits):
        if onset is not None and visit.time >= onset:
            break
        age = record.age_at(visit.time)
        if task.min_age_years is not None and (age is None or age < task.min_age_years):
            continue
        positive = onset is not None and onset <= visit.time + task.horizon
        if not positive and (follow_up is None or follow_up < visit.time + task.horizon):
            report.skip(f"{task.name}: follow-up shorter than the horizon", record.patient_id)
            continue
        history = _history(visits, i, task)
        if history:
            out.append(VisitSample(record.patient_id, visit.time, history, record.sex, age,
                                   label=int(positive)))  # fmt: skip
    return out


def _next_visit(record: PatientRecord, task: VisitTask, report: LoadReport) -> list[VisitSample]:
    visits = coded_visits(record, task.history_kinds, task.label_kinds)
    out: list[VisitSample] = []
    for i, visit in enumerate(visits[:-1]):
        age = record.age_at(visit.time)
        if task.min_age_years is not None and (age is None or age < task.min_age_years):
            continue
        following = visits[i + 1]
        if task.horizon is not None and following.time > visit.time + task.horizon:
            continue
        if not following.label_codes:
            report.skip(f"{task.name}: the next visit records no diagnosis", record.patient_id)
            continue
        history = _history(visits, i, task)
        if history:
            out.append(VisitSample(record.patient_id, visit.time, history, record.sex, age,
                                   label_codes=following.label_codes))  # fmt: skip
    return out


def _readmission(record: PatientRecord, task: VisitTask, report: LoadReport) -> list[VisitSample]:
    assert task.horizon is not None
    visits = coded_visits(record, task.history_kinds)
    deaths = [e.start for e in record.events if e.kind is EventKind.DEATH]
    died = min(deaths) if deaths else None
    admissions = sorted(record.visits, key=lambda v: v.start)
    out: list[VisitSample] = []
    for i, admission in enumerate(admissions):
        if admission.end is None:
            report.skip(f"{task.name}: admission without a discharge", record.patient_id)
            continue
        discharge = admission.end
        if died is not None and died <= discharge:
            report.skip(f"{task.name}: died during the admission", record.patient_id)
            continue
        readmitted = any(
            discharge <= later.start <= discharge + task.horizon
            and later.kind.lower() not in task.planned_kinds
            for later in admissions[i + 1 :]
        )
        if not readmitted and died is not None and died <= discharge + task.horizon:
            report.skip(f"{task.name}: died within the horizon without a readmission",
                        record.patient_id)  # fmt: skip
            continue
        age = record.age_at(discharge)
        if task.min_age_years is not None and (age is None or age < task.min_age_years):
            continue
        upto = [index for index, visit in enumerate(visits) if visit.time <= discharge]
        history = _history(visits, upto[-1], task) if upto else ()
        if not history:
            report.skip(f"{task.name}: no coded history at discharge", record.patient_id)
            continue
        out.append(VisitSample(record.patient_id, discharge, history, record.sex, age,
                               label=int(readmitted)))  # fmt: skip
    return out


_BUILDERS = {"onset": _onset, "next_visit": _next_visit, "readmission": _readmission}


def visit_task_samples(
    task: VisitTask, cohort: Cohort
) -> tuple[tuple[VisitSample, ...], LoadReport]:
    """Every sample of every record of `cohort` for `task`, and the cohort's report with
    the visits that gave none counted per reason.

    Raises:
        DataError: the cohort gives no sample at all.
    """
    report = cohort.report
    build = _BUILDERS[task.kind]
    samples = tuple(s for record in cohort.records for s in build(record, task, report))
    if not samples:
        raise DataError(
            f"{report.source} gives no sample for task {task.name!r}: no patient has a "
            "visit that fits it (check the condition codes and the database's dates)."
        )
    return samples, report
