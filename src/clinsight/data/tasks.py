"""Progression tasks declared as data: input window, prediction time, horizon and label.

A task (PyHealth-style) turns a `PatientRecord` into zero or one `TaskSample`: the
measurements of the input window, the descriptors, and the label. A new task is one
`ProgressionTask(...)` declaration added to `TASKS`; the binning, models, trainer and
metrics read only samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from clinsight.data.longitudinal import Cohort, LoadReport, Measurement, PatientRecord
from clinsight.errors import DataError

__all__ = [
    "IN_HOSPITAL_MORTALITY_48H",
    "TASKS",
    "ProgressionTask",
    "TaskSample",
    "get_task",
    "outcome_label",
    "task_samples",
]


@dataclass(frozen=True)
class TaskSample:
    """What a model sees of one patient for one task, and the label it must predict."""

    patient_id: str
    prediction_time: datetime
    window_start: datetime
    measurements: tuple[Measurement, ...]
    static: Mapping[str, float]
    sex: str | None
    age: float | None
    label: int | None
    """None when predicting (the outcome is not known)."""
    baseline_scores: Mapping[str, float]
    """Scores the source states at the prediction time (PhysioNet: SAPS-I), for baselines."""


LabelRule = Callable[[PatientRecord], int | None]
AnchorRule = Callable[[PatientRecord], datetime | None]


def outcome_label(key: str) -> LabelRule:
    """A label read from the outcome the source states (``record.outcomes[key]``, 0/1)."""

    def label(record: PatientRecord) -> int | None:
        value = record.outcomes.get(key)
        return None if value is None else int(value)

    label.__name__ = f"outcome:{key}"
    return label


def _admission(record: PatientRecord) -> datetime | None:
    return record.visits[0].start if record.visits else None


@dataclass(frozen=True)
class ProgressionTask:
    """One prediction task over longitudinal records.

    The window is ``[anchor + window_start, anchor + prediction_offset)``; the prediction is
    made at its end; `horizon` is how far ahead the label looks (None: until the end of
    the stay, e.g. in-hospital death).
    """

    name: str
    description: str
    window_start: timedelta
    prediction_offset: timedelta
    horizon: timedelta | None
    label: LabelRule
    anchor: AnchorRule = _admission
    baseline_outcomes: tuple[str, ...] = ()
    """Outcome keys that are scores known at prediction time (baselines, never inputs)."""

    def sample(self, record: PatientRecord, *, with_label: bool = True) -> TaskSample | None:
        """The sample of `record`, or None when it has no anchor or (training) no label."""
        anchor = self.anchor(record)
        if anchor is None:
            return None
        label = self.label(record) if with_label else None
        if with_label and label is None:
            return None
        start, end = anchor + self.window_start, anchor + self.prediction_offset
        return TaskSample(
            patient_id=record.patient_id,
            prediction_time=end,
            window_start=start,
            measurements=record.measurements_between(start, end + timedelta(microseconds=1)),
            static=dict(record.static),
            sex=record.sex,
            age=record.age_at(anchor),
            label=label,
            baseline_scores={
                k: record.outcomes[k] for k in self.baseline_outcomes if k in record.outcomes
            },
        )

    def describe(self) -> dict[str, object]:
        """The declaration in words and hours, for the model card."""
        return {
            "name": self.name,
            "description": self.description,
            "window_hours": [self.window_start / timedelta(hours=1),
                             self.prediction_offset / timedelta(hours=1)],
            "horizon": None if self.horizon is None else self.horizon / timedelta(hours=1),
            "label": getattr(self.label, "__name__", "label"),
        }  # fmt: skip


IN_HOSPITAL_MORTALITY_48H = ProgressionTask(
    name="mortality48",
    description=(
        "In-hospital death, predicted at 48 h after ICU admission from the vital signs and "
        "laboratory values of those 48 h and the admission descriptors."
    ),
    window_start=timedelta(0),
    prediction_offset=timedelta(hours=48),
    horizon=None,
    label=outcome_label("in_hospital_death"),
    baseline_outcomes=("saps1", "sofa"),
)

TASKS: dict[str, ProgressionTask] = {IN_HOSPITAL_MORTALITY_48H.name: IN_HOSPITAL_MORTALITY_48H}


def get_task(name: str) -> ProgressionTask:
    """The declared task named `name`.

    Raises:
        DataError: no task has that name.
    """
    if name not in TASKS:
        raise DataError(f"unknown progression task {name!r}; known: {', '.join(TASKS)}.")
    return TASKS[name]


def task_samples(
    task: ProgressionTask, cohort: Cohort, *, with_label: bool = True
) -> tuple[tuple[TaskSample, ...], LoadReport]:
    """The samples of every record of `cohort`, and the cohort's report with records that
    gave no sample counted (no anchor, or no label when labels are wanted)."""
    report = cohort.report
    out: list[TaskSample] = []
    for record in cohort.records:
        sample = task.sample(record, with_label=with_label)
        if sample is None:
            report.skip(f"{task.name}: record without an anchor or a label", record.patient_id)
            continue
        out.append(sample)
    return tuple(out), report
