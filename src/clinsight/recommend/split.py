"""The time-ordered evaluation split: per patient, the history up to an index day and the
treatments newly started within `horizon_days` after it.

An index day is a day on which a condition is diagnosed (Eunomia's ``visit_occurrence``
holds only inpatient and emergency visits, so a diagnosis is the encounter). The history
holds conditions up to and on the index day and drugs started before it; the held-out
truth is the treatments started on it or within the horizon after it that were not active
on it, so a refill or continuation of an active treatment is never a hit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from clinsight.data.longitudinal import EventKind, PatientRecord
from clinsight.recommend.matrix import PatientContext, context_at

__all__ = ["Query", "index_query", "new_treatments"]


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
) -> Query | None:
    """One query per patient: a diagnosis day, drawn at random (seeded by patient), with
    at least one new treatment (among `known`, if given) within the horizon; None when
    the patient has no such day."""
    days = sorted({e.start for e in record.events_of(EventKind.CONDITION)})
    rng = random.Random(f"{seed}:{record.patient_id}")
    rng.shuffle(days)
    for moment in days:
        context = context_at(record, moment, systems=systems)
        truth = new_treatments(record, moment, context, horizon_days, systems)
        if known is not None:
            truth = truth & known
        if truth and context.conditions:
            return Query(context, truth)
    return None
