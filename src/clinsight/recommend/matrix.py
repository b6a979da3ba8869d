"""The patient x treatment data the recommenders learn from, and one patient's context.

Treatments are drug ingredients (``Code.key()``, e.g. ``RxNorm|1191``); a class (ATC 4th
level) is attached where the source's hierarchy gives one. Each patient's exposure to a
treatment is weighted by repeats, total days exposed and persistence (first to last
exposure): ``log1p(n) + log1p(days / 30) + log1p(span / 365)``. With ``outcome_aware``,
an exposure followed within 30 days by an allergy to the same substance or by one of the
given adverse-event conditions, or stopped at under a quarter of that treatment's median
duration, counts a quarter.

The indication table counts, per condition and treatment, the patients who started the
treatment within `indication_days` of the condition's diagnosis: candidates for a patient
are the treatments started for one of their active conditions, and "n patients with this
condition received X" reads from it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from statistics import median

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clinsight.data.longitudinal import Code, Event, EventKind, PatientRecord
from clinsight.data.visit_tasks import CodedVisit, VisitSample, coded_visits
from clinsight.errors import DataError

__all__ = [
    "ACTIVE_DRUG_DAYS",
    "HISTORY_VISITS",
    "PatientContext",
    "TreatmentData",
    "build_treatment_data",
    "context_at",
    "exposure_weight",
]

ACTIVE_DRUG_DAYS = 30
"""A drug exposure without an end date counts as active for this many days."""
HISTORY_VISITS = 30
"""A context keeps the latest this many coded visits (for the sequence recommender)."""
_ADVERSE_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class PatientContext:
    """What the recommender knows of one patient at `moment`: conditions diagnosed up to
    and on that day and still active, drugs started before it (weighted), drugs active at
    it, recorded allergies (coded or free text), age and sex."""

    patient_id: str
    moment: datetime
    conditions: frozenset[str]
    history: Mapping[str, float]
    past_conditions: frozenset[str]
    """Every condition diagnosed up to `moment`, active or not (for patient similarity)."""
    active_drugs: frozenset[str]
    allergies: tuple[Code, ...] = ()
    age: float | None = None
    sex: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    """Display names of the condition and drug keys above."""
    new_conditions: frozenset[str] = frozenset()
    """The active conditions diagnosed on `moment`'s day (the likely indication)."""
    visits: tuple[CodedVisit, ...] = ()
    """The latest `HISTORY_VISITS` visits: conditions diagnosed up to and on `moment`,
    drugs started before it, grouped by visit (by day without one)."""

    @property
    def cold_start(self) -> bool:
        """True when the patient has no treatment history."""
        return not self.history

    def sample(self, started: frozenset[str] = frozenset()) -> VisitSample:
        """The context as a visit sequence (`sequence.visits`), labelled with `started`."""
        return VisitSample(self.patient_id, self.moment, self.visits, self.sex, self.age,
                           label_codes=started)  # fmt: skip


def _duration_days(event: Event) -> float:
    if event.end is not None:
        return max((event.end - event.start).total_seconds() / 86400.0, 1.0)
    return float(event.quantity) if event.quantity else 1.0


def _drug_end(event: Event) -> datetime:
    return event.end if event.end is not None else event.start + timedelta(ACTIVE_DRUG_DAYS)


def exposure_weight(exposures: Sequence[Event], discounts: Sequence[float] = ()) -> float:
    """The weight of one patient's exposures to one treatment (repeats, days, persistence);
    `discounts` multiply each exposure's share (outcome-aware weighting)."""
    if not exposures:
        return 0.0
    factors = list(discounts) or [1.0] * len(exposures)
    n = sum(factors)
    days = sum(_duration_days(e) * f for e, f in zip(exposures, factors, strict=True))
    span = (max(e.start for e in exposures) - min(e.start for e in exposures)).days
    return math.log1p(n) + math.log1p(days / 30.0) + math.log1p(span / 365.0)


def _active_conditions(record: PatientRecord, moment: datetime) -> list[Event]:
    return [
        e
        for e in record.events_of(EventKind.CONDITION)
        if e.start <= moment and (e.end is None or e.end >= moment)
    ]


def context_at(
    record: PatientRecord, moment: datetime, *, systems: Sequence[str] = ("RxNorm",)
) -> PatientContext:
    """The patient's context at `moment` (conditions up to and on it, drugs before it)."""
    names: dict[str, str] = {}
    conditions, new = set(), set()
    for event in _active_conditions(record, moment):
        conditions.add(event.code.key())
        names[event.code.key()] = event.code.display or event.code.code
        if event.start.date() == moment.date():
            new.add(event.code.key())
    exposures: dict[str, list[Event]] = defaultdict(list)
    active = set()
    for event in record.events_before(moment, EventKind.DRUG):
        if event.code.system not in systems:
            continue
        key = event.code.key()
        exposures[key].append(event)
        names[key] = event.code.display or event.code.code
        if _drug_end(event) >= moment:
            active.add(key)
    allergies = tuple(e.code for e in record.events_of(EventKind.ALLERGY) if e.start <= moment)
    past = frozenset(
        e.code.key() for e in record.events_of(EventKind.CONDITION) if e.start <= moment
    )
    seen = tuple(
        e for e in record.events
        if (e.kind is EventKind.CONDITION and e.start <= moment)
        or (e.kind is EventKind.DRUG and e.start < moment and e.code.system in systems)
    )  # fmt: skip
    visits = coded_visits(replace(record, events=seen), (EventKind.CONDITION, EventKind.DRUG))
    return PatientContext(
        patient_id=record.patient_id, moment=moment, conditions=frozenset(conditions),
        history={k: exposure_weight(v) for k, v in exposures.items()}, past_conditions=past,
        active_drugs=frozenset(active), allergies=allergies, age=record.age_at(moment),
        sex=record.sex, names=names, new_conditions=frozenset(new),
        visits=visits[-HISTORY_VISITS:],
    )  # fmt: skip


@dataclass
class TreatmentData:
    """Training patients x treatments (weights) and x conditions (0/1), the indication
    counts, and what the explanations need."""

    items: list[str]
    conditions: list[str]
    names: dict[str, str]
    user_items: sp.csr_matrix
    user_conditions: sp.csr_matrix
    indication: NDArray[np.float64]
    """conditions x items: patients who started the item while the condition was active."""
    condition_patients: NDArray[np.float64]
    ages: NDArray[np.float64]
    sexes: NDArray[np.float64]
    """1 female, 0 male, 0.5 not recorded."""
    episodes: sp.csr_matrix | None = None
    """patients x (conditions * items): 1 where the patient started the item while the
    condition was active (column ``condition * len(items) + item``)."""
    classes: dict[str, Code] = field(default_factory=dict)
    index_conditions: sp.csr_matrix | None = None
    """Training episodes x conditions (see `recommend.split.training_episodes`): 1 where
    the condition was active on the episode's diagnosis day."""
    index_new: sp.csr_matrix | None = None
    """Episodes x conditions: 1 where the condition was diagnosed on that day."""
    index_started: sp.csr_matrix | None = None
    """Episodes x items: 1 where the item was newly started within the horizon."""
    index_ages: NDArray[np.float64] | None = None
    """The patient's age on each episode's day (NaN unknown)."""
    index_samples: tuple[VisitSample, ...] | None = None
    """Each episode's visit history, labelled with the items it started (for the sequence
    recommender's training; not stored with a registered model)."""

    def received_for(self, conditions: Iterable[str]) -> sp.csr_matrix:
        """patients x items: 1 where the patient started the item for one of `conditions`."""
        at, n = self.condition_index(), len(self.items)
        if self.episodes is None:
            raise DataError("These treatment data hold no per-condition episodes.")
        total = sp.csr_matrix((self.episodes.shape[0], n))
        for key in conditions:
            if key in at:
                c = at[key]
                total = total + self.episodes[:, c * n : (c + 1) * n]
        return sp.csr_matrix((total > 0).astype(np.float64))

    def item_index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.items)}

    def condition_index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.conditions)}


def _discounts(
    exposures: Sequence[Event],
    record: PatientRecord,
    medians: Mapping[str, float],
    adverse: frozenset[str],
) -> list[float]:
    allergies = [e for e in record.events_of(EventKind.ALLERGY)]
    harms = [e for e in record.events_of(EventKind.CONDITION) if e.code.key() in adverse]
    factors = []
    for event in exposures:
        key = event.code.key()
        after = [
            e
            for e in (*[a for a in allergies if a.code.key() == key], *harms)
            if event.start <= e.start <= event.start + _ADVERSE_WINDOW
        ]
        early = _duration_days(event) < 0.25 * medians.get(key, 0.0)
        factors.append(0.25 if after or early else 1.0)
    return factors


def build_treatment_data(
    records: Iterable[PatientRecord],
    *,
    systems: Sequence[str] = ("RxNorm",),
    min_patients: int = 3,
    indication_days: int = 30,
    outcome_aware: bool = False,
    adverse_conditions: Iterable[str] = (),
    classes: Mapping[str, Code] | None = None,
) -> TreatmentData:
    """The training matrices from full patient records.

    Raises:
        DataError: no treatment reaches `min_patients` patients.
    """
    people = list(records)
    adverse = frozenset(adverse_conditions)
    names: dict[str, str] = {}
    drug_users: dict[str, set[int]] = defaultdict(set)
    durations: dict[str, list[float]] = defaultdict(list)
    for u, record in enumerate(people):
        for event in record.events:
            names.setdefault(event.code.key(), event.code.display or event.code.code)
            if event.kind is EventKind.DRUG and event.code.system in systems:
                drug_users[event.code.key()].add(u)
                durations[event.code.key()].append(_duration_days(event))
    items = sorted(k for k, users in drug_users.items() if len(users) >= min_patients)
    if not items:
        raise DataError(
            f"No treatment was given to {min_patients} or more patients in the training "
            f"records; a recommender needs more patients or a lower minimum."
        )
    medians = {k: median(v) for k, v in durations.items()}
    item_at = {k: i for i, k in enumerate(items)}
    condition_keys = sorted(
        {e.code.key() for r in people for e in r.events if e.kind is EventKind.CONDITION}
    )
    cond_at = {k: i for i, k in enumerate(condition_keys)}
    ui_rows, ui_cols, ui_vals, uc_rows, uc_cols = [], [], [], [], []
    pairs: set[tuple[int, int, int]] = set()
    window = timedelta(days=indication_days)
    ages, sexes = [], []
    for u, record in enumerate(people):
        exposures: dict[str, list[Event]] = defaultdict(list)
        for event in record.events_of(EventKind.DRUG):
            if event.code.key() in item_at:
                exposures[event.code.key()].append(event)
        conds = record.events_of(EventKind.CONDITION)
        for key, found in exposures.items():
            factors = _discounts(found, record, medians, adverse) if outcome_aware else []
            ui_rows.append(u)
            ui_cols.append(item_at[key])
            ui_vals.append(exposure_weight(found, factors))
            for event in found:
                for cond in conds:
                    if event.start - window <= cond.start <= event.start:
                        pairs.add((cond_at[cond.code.key()], item_at[key], u))
        for key in {c.code.key() for c in conds}:
            uc_rows.append(u)
            uc_cols.append(cond_at[key])
        last = record.events[-1].start if record.events else None
        age = record.age_at(last) if last is not None else None
        ages.append(np.nan if age is None else age)
        sexes.append({"female": 1.0, "male": 0.0}.get(record.sex or "", 0.5))
    indication = np.zeros((len(condition_keys), len(items)))
    for c, i, _ in pairs:
        indication[c, i] += 1
    ordered = sorted(pairs, key=lambda p: (p[2], p[0] * len(items) + p[1]))
    episodes = sp.csr_matrix(
        (np.ones(len(ordered)), ([p[2] for p in ordered],
                                  [p[0] * len(items) + p[1] for p in ordered])),
        shape=(len(people), len(condition_keys) * len(items)),
    )  # fmt: skip
    shape = (len(people), len(items))
    user_conditions = sp.csr_matrix(
        (np.ones(len(uc_rows)), (uc_rows, uc_cols)), shape=(len(people), len(condition_keys))
    )
    return TreatmentData(
        items=items, conditions=condition_keys, names=names,
        user_items=sp.csr_matrix((ui_vals, (ui_rows, ui_cols)), shape=shape),
        user_conditions=user_conditions, indication=indication,
        condition_patients=np.asarray(user_conditions.sum(axis=0)).ravel(),
        ages=np.asarray(ages, dtype=np.float64), sexes=np.asarray(sexes),
        episodes=episodes, classes={k: v for k, v in (classes or {}).items() if k in item_at},
    )  # fmt: skip
