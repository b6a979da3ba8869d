"""Visit tasks declared as data: loading, coded visits, onset and next-visit samples."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from clinsight.data.longitudinal import (
    Code,
    Cohort,
    Event,
    EventKind,
    LoadReport,
    PatientRecord,
    Visit,
)
from clinsight.data.visit_tasks import (
    VisitTask,
    coded_visits,
    load_visit_task,
    visit_task_names,
    visit_task_samples,
)
from clinsight.errors import DataError, DataNotFoundError

CAD = Code("SNOMED", "53741008", "Coronary arteriosclerosis")
SINUSITIS = Code("SNOMED", "36971009", "Sinusitis")
ASPIRIN = Code("RxNorm", "1191", "Aspirin")


def _event(kind: EventKind, code: Code, day: str, visit: str | None) -> Event:
    return Event(kind, code, datetime.fromisoformat(day), visit_id=visit)


def _record(pid: str, born: date, *events: Event) -> PatientRecord:
    return PatientRecord(pid, birth_date=born, sex="male", events=events)


def _cohort(*records: PatientRecord) -> Cohort:
    return Cohort(records, LoadReport(source="test"))


CASE = _record(
    "1", date(1950, 1, 1),
    _event(EventKind.CONDITION, SINUSITIS, "1960-05-01", "v0"),  # a child: no sample
    _event(EventKind.CONDITION, SINUSITIS, "2000-01-01", "v1"),
    _event(EventKind.DRUG, ASPIRIN, "2001-06-01", "v2"),
    _event(EventKind.CONDITION, SINUSITIS, "2001-06-02", "v2"),
    _event(EventKind.CONDITION, CAD, "2002-03-01", "v3"),
    _event(EventKind.DRUG, ASPIRIN, "2004-01-01", None),
)  # fmt: skip


def test_packaged_tasks_load() -> None:
    assert set(visit_task_names()) >= {"onset_coronary_arteriosclerosis", "next_visit_diagnoses"}
    onset = load_visit_task("onset_coronary_arteriosclerosis")
    assert (onset.kind, onset.horizon.days if onset.horizon else None) == ("onset", 365)
    assert onset.condition == frozenset({CAD.key()})
    assert onset.history_kinds == (EventKind.CONDITION, EventKind.DRUG)
    nxt = load_visit_task("next_visit_diagnoses")
    assert (nxt.kind, nxt.label_kinds, nxt.horizon) == ("next_visit", (EventKind.CONDITION,), None)
    with pytest.raises(DataNotFoundError, match="no visit task named 'nope'; known: "):
        load_visit_task("nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "survival"}, "kind 'survival' is not one of onset, next_visit"),
        ({"history_kinds": ["lab"]}, "'lab' is not a valid EventKind; event kinds are"),
        ({"horizon_days": None}, "needs condition codes and horizon_days"),
        ({"max_history_visits": 0}, "max_history_visits must be at least 1"),
    ],
)
def test_bad_task_files_are_refused(change: dict[str, object], message: str) -> None:
    path = "onset_coronary_arteriosclerosis.json"
    from importlib import resources

    raw = json.loads((resources.files("clinsight.data") / "progression_specs" / "tasks" / path)
                     .read_text(encoding="utf-8"))  # fmt: skip
    with pytest.raises(DataError, match=message):
        VisitTask.from_dict({**raw, **change})
    del raw["description"]
    with pytest.raises(DataError, match="lacks the field 'description'"):
        VisitTask.from_dict(raw)


def test_coded_visits_group_by_visit_then_day() -> None:
    visits = coded_visits(CASE, (EventKind.DRUG,), (EventKind.CONDITION,))
    assert [(v.visit_id, v.time.date().isoformat()) for v in visits] == [
        ("v0", "1960-05-01"), ("v1", "2000-01-01"), ("v2", "2001-06-01"),
        ("v3", "2002-03-01"), ("day:2004-01-01", "2004-01-01"),
    ]  # fmt: skip
    assert visits[2].codes == frozenset({ASPIRIN.key()})
    assert visits[2].label_codes == frozenset({SINUSITIS.key()})
    assert visits[1].codes == frozenset()


def test_onset_samples_label_the_year_before_the_first_diagnosis() -> None:
    task = load_visit_task("onset_coronary_arteriosclerosis")
    healthy = _record("2", date(1950, 1, 1),
                      _event(EventKind.CONDITION, SINUSITIS, "2010-01-01", "w1"),
                      _event(EventKind.CONDITION, SINUSITIS, "2010-06-01", "w2"),
                      _event(EventKind.DRUG, ASPIRIN, "2011-02-01", "w3"))  # fmt: skip
    at_first = _record("3", date(1950, 1, 1), _event(EventKind.CONDITION, CAD, "2010-01-01", "x"))
    samples, report = visit_task_samples(task, _cohort(CASE, healthy, at_first))
    assert [(s.patient_id, s.prediction_time.date().isoformat(), s.label) for s in samples] == [
        ("1", "2000-01-01", 0), ("1", "2001-06-01", 1), ("2", "2010-01-01", 0),
    ]  # fmt: skip
    assert [v.visit_id for v in samples[1].visits] == ["v0", "v1", "v2"]
    assert samples[1].visits[-1].codes == frozenset({ASPIRIN.key(), SINUSITIS.key()})
    assert round(samples[0].age or 0, 1) == 50.0
    name = "onset_coronary_arteriosclerosis"
    # 2010-06-01 and 2011-02-01: the record ends within a year of them
    assert report.skipped[f"{name}: follow-up shorter than the horizon"] == 2
    assert report.skipped[f"{name}: the condition is recorded at or before the first visit"] == 1


def test_next_visit_samples_and_the_history_limit() -> None:
    task = load_visit_task("next_visit_diagnoses")
    samples, report = visit_task_samples(task, _cohort(CASE))
    assert [(s.prediction_time.date().isoformat(), sorted(s.label_codes)) for s in samples] == [
        ("1960-05-01", [SINUSITIS.key()]), ("2000-01-01", [SINUSITIS.key()]),
        ("2001-06-01", [CAD.key()]),
    ]  # fmt: skip
    assert report.skipped["next_visit_diagnoses: the next visit records no diagnosis"] == 1
    short = VisitTask.from_dict({**task.describe(), "max_history_visits": 2,
                                 "horizon_days": None})  # fmt: skip
    samples, _ = visit_task_samples(short, _cohort(CASE))
    assert [v.visit_id for v in samples[-1].visits] == ["v1", "v2"]


def test_a_cohort_without_samples_is_an_error() -> None:
    task = load_visit_task("onset_coronary_arteriosclerosis")
    with pytest.raises(DataError, match="gives no sample for task 'onset_coronary"):
        visit_task_samples(task, _cohort(_record("9", date(2010, 1, 1))))


def _admission(vid: str, start: str, end: str | None, kind: str = "emergency") -> Visit:
    return Visit(vid, datetime.fromisoformat(start),
                 None if end is None else datetime.fromisoformat(end), kind)  # fmt: skip


def test_readmission_labels_unplanned_returns_within_the_horizon() -> None:
    task = load_visit_task("readmission_30d")
    record = PatientRecord(
        "r1", birth_date=date(1950, 1, 1), sex="female",
        visits=(
            _admission("a1", "2020-01-01", "2020-01-05"),
            _admission("a2", "2020-01-20", "2020-01-25", "elective"),  # planned: not counted
            _admission("a3", "2020-03-01", "2020-03-04"),
            _admission("a4", "2020-03-20", "2020-03-22"),
            _admission("a5", "2020-06-01", None),
        ),
        events=(
            _event(EventKind.CONDITION, CAD, "2020-01-05", "a1"),
            _event(EventKind.CONDITION, CAD, "2020-01-25", "a2"),
            _event(EventKind.CONDITION, SINUSITIS, "2020-03-04", "a3"),
            _event(EventKind.CONDITION, CAD, "2020-03-22", "a4"),
        ),
    )  # fmt: skip
    died = Event(EventKind.DEATH, Code("urn:clinsight:event", "death"),
                 datetime(2020, 2, 3))  # fmt: skip
    dead = PatientRecord("r2", birth_date=date(1940, 1, 1), sex="male",
                         visits=(_admission("b1", "2020-01-01", "2020-01-10"),),
                         events=(_event(EventKind.CONDITION, CAD, "2020-01-10", "b1"),
                                 died))  # fmt: skip
    samples, report = visit_task_samples(task, _cohort(record, dead))
    labels = {s.prediction_time.date().isoformat(): s.label for s in samples}
    assert labels == {"2020-01-05": 0, "2020-01-25": 0, "2020-03-04": 1, "2020-03-22": 0}
    third = next(s for s in samples if s.label == 1)
    assert [v.visit_id for v in third.visits] == ["a1", "a2", "a3"]
    assert report.skipped["readmission_30d: admission without a discharge"] == 1
    assert report.skipped["readmission_30d: died within the horizon without a readmission"] == 1
