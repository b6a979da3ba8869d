"""The time-ordered evaluation split: per patient, the history up to an index day and the
treatments newly started within `horizon_days` after it. `training_episodes` draws the same
kind of case from the training patients (several index days each), for the episode model.

An index day is a day on which a condition is diagnosed (Eunomia's ``visit_occurrence``
holds only inpatient and emergency visits, so a diagnosis is the encounter). The history
holds conditions up to and on the index day and drugs started before it; the held-out
truth is the treatments started on it or within the horizon after it that were not active
on it, so a refill or continuation of an active treatment is never a hit.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import scipy.sparse as sp

from clinsight.data.longitudinal import EventKind, PatientRecord
from clinsight.data.visit_tasks import VisitSample
from clinsight.recommend.matrix import PatientContext, TreatmentData, context_at

__all__ = ["Query", "index_query", "new_treatments", "training_episodes"]


@dataclass(frozen=True)
class Query:
    """One evaluation case: the patient's context at the index day and the held-out truth."""

    context: PatientContext
    truth: frozenset[str]


def new_treatments(
    record: PatientRecord,
    moment: datetime,
    context: PatientContext,
    horizon_days: int,
    systems: Sequence[str] = ("RxNorm",),
) -> frozenset[str]:
    """Treatments started in ``[moment, moment + horizon]`` and not active at `moment`."""
    end = moment + timedelta(days=horizon_days)
    return frozenset(
        e.code.key()
        for e in record.events_of(EventKind.DRUG)
        if moment <= e.start <= end
        and e.code.system in systems
        and e.code.key() not in context.active_drugs
    )


def index_query(
    record: PatientRecord,
    *,
    horizon_days: int = 90,
    seed: int = 0,
    systems: Sequence[str] = ("RxNorm",),
    known: frozenset[str] | None = None,
    last: bool = False,
) -> Query | None:
    """One query per patient: a diagnosis day, drawn at random (seeded by patient; with
    `last`, the latest), with at least one new treatment (among `known`, if given) within
    the horizon; None when the patient has no such day."""
    days = sorted({e.start for e in record.events_of(EventKind.CONDITION)})
    if last:
        days.reverse()
    else:
        random.Random(f"{seed}:{record.patient_id}").shuffle(days)
    for moment in days:
        context = context_at(record, moment, systems=systems)
        truth = new_treatments(record, moment, context, horizon_days, systems)
        if known is not None:
            truth = truth & known
        if truth and context.conditions:
            return Query(context, truth)
    return None


def _multi_hot(rows: Sequence[Sequence[int]], width: int) -> sp.csr_matrix:
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [j for row in rows for j in row]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), width))


def training_episodes(
    records: Iterable[PatientRecord],
    data: TreatmentData,
    *,
    horizon_days: int = 90,
    per_patient: int = 15,
    seed: int = 0,
    systems: Sequence[str] = ("RxNorm",),
) -> TreatmentData:
    """`data` with the training patients' episodes: up to `per_patient` diagnosis days each
    (drawn at random, seeded by patient), the conditions active and new on that day, and the
    treatments of `data` newly started within the horizon (refills are not starts), and its
    visit history labelled with them (`PatientContext.sample`)."""
    items, conds = data.item_index(), data.condition_index()
    known = frozenset(data.items)
    active: list[list[int]] = []
    new: list[list[int]] = []
    started: list[list[int]] = []
    ages: list[float] = []
    samples: list[VisitSample] = []
    for record in records:
        days = sorted({e.start for e in record.events_of(EventKind.CONDITION)})
        random.Random(f"{seed}:{record.patient_id}").shuffle(days)
        for moment in days[:per_patient]:
            context = context_at(record, moment, systems=systems)
            if not context.conditions:
                continue
            truth = new_treatments(record, moment, context, horizon_days, systems) & known
            active.append([conds[k] for k in sorted(context.conditions) if k in conds])
            new.append([conds[k] for k in sorted(context.new_conditions) if k in conds])
            started.append([items[k] for k in sorted(truth)])
            ages.append(np.nan if context.age is None else context.age)
            samples.append(context.sample(truth))
    width = len(data.conditions)
    return replace(
        data, index_conditions=_multi_hot(active, width), index_new=_multi_hot(new, width),
        index_started=_multi_hot(started, len(data.items)),
        index_ages=np.asarray(ages, dtype=np.float64), index_samples=tuple(samples),
    )  # fmt: skip
