"""One patient's treatment suggestions: ranked, passed through the safety filter, each
with its explanation and its support (how many patients it rests on).

A patient with no treatment history gets the most common treatments for their active
conditions (cold start), and the list says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from clinsight.data.longitudinal import Code
from clinsight.errors import DataError
from clinsight.recommend.matrix import PatientContext, TreatmentData
from clinsight.recommend.models import (
    AlsRecommender,
    EpisodeKnnRecommender,
    ItemKnnRecommender,
    MostPopularRecommender,
    Recommender,
    UserKnnRecommender,
    rank,
)
from clinsight.recommend.safety import InteractionTable, Removal, check_treatments

__all__ = ["Suggestion", "SuggestionList", "check_treatment_code", "suggest"]

COLD_START_NOTE = (
    "No treatment history: these are the treatments most often started for the active "
    "conditions (most-popular), not a personalised suggestion."
)


@dataclass(frozen=True)
class Suggestion:
    """A proposed treatment, why, and how many patients support it."""

    treatment: str
    display: str
    score: float
    support: int
    """Training patients who started it for one of the active conditions."""
    conditions: tuple[str, ...]
    """The active conditions it was started for, most supported first."""
    explanation: str
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "treatment": self.treatment, "display": self.display,
            "score": round(self.score, 6), "support": self.support,
            "conditions": list(self.conditions), "explanation": self.explanation,
            "details": list(self.details),
        }  # fmt: skip


@dataclass(frozen=True)
class SuggestionList:
    """The suggestions for one patient, what the safety filter removed and why, and the
    allergies recorded only as free text (shown, never ignored)."""

    patient_id: str
    model: str
    suggestions: tuple[Suggestion, ...]
    removed: tuple[Removal, ...]
    unchecked_allergies: tuple[str, ...]
    cold_start: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id, "model": self.model, "cold_start": self.cold_start,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "removed": [r.to_dict() for r in self.removed],
            "unchecked_allergies": list(self.unchecked_allergies), "notes": list(self.notes),
        }  # fmt: skip


def check_treatment_code(key: str, data: TreatmentData, table: InteractionTable) -> str:
    """`key` if the model or the interaction table knows it.

    Raises:
        DataError: the code is malformed or unknown to both.
    """
    system, _, code = key.partition("|")
    if not code or not system:
        raise DataError(f"{key!r} is not a drug code; write it as RxNorm|<ingredient code>.")
    if key not in data.names and not (system == "RxNorm" and code in table.codes()):
        raise DataError(
            f"The drug code {key} is unknown: neither the recommender's training data nor "
            f"the interaction table has it. Give the RxNorm code of the ingredient (e.g. "
            f"RxNorm|1191 for aspirin), not of a product or pack."
        )
    return key


def _support(data: TreatmentData, context: PatientContext, item: int) -> list[tuple[str, int]]:
    at = data.condition_index()
    found = [(c, int(data.indication[at[c], item])) for c in context.conditions if c in at]
    return sorted((f for f in found if f[1] > 0), key=lambda f: -f[1])


def _details(
    model: Recommender, context: PatientContext, data: TreatmentData, item: int
) -> list[str]:
    name = data.names.get(data.items[item], data.items[item])
    if isinstance(model, UserKnnRecommender):
        top, _ = model.neighbours(context, data)
        received = data.received_for(context.conditions)[top, item].toarray().ravel()
        shared = np.asarray(data.user_conditions[top].sum(axis=0)).ravel()
        common = [data.conditions[c] for c in np.argsort(-shared)[:3] if shared[c] > 0]
        return [
            f"{int(received.sum())} of the {len(top)} most similar patients (conditions, "
            f"age, sex) received {name} for these conditions",
            "their most shared conditions: " + ", ".join(data.names.get(c, c) for c in common),
        ]
    if isinstance(model, EpisodeKnnRecommender) and data.index_started is not None:
        top, _ = model.neighbours(context, data)
        started = int(data.index_started[top, item].sum()) if len(top) else 0
        return [
            f"{started} of the {len(top)} most similar patient episodes (conditions active "
            f"and newly diagnosed, age) started {name} within the following 90 days"
        ]
    if isinstance(model, ItemKnnRecommender):
        column = model.similarity_[:, item]
        keys = [*data.items, *data.conditions]
        near = [keys[j] for j in np.argsort(-column)[:3] if column[j] > 0]
        return ["most similar treatments and conditions: "
                + ", ".join(data.names.get(k, k) for k in near)]  # fmt: skip
    if isinstance(model, AlsRecommender):
        factors = model.item_factors_[: len(data.items)]
        norms = np.linalg.norm(factors, axis=1) + 1e-12
        cosine = factors @ factors[item] / (norms * norms[item])
        cosine[item] = -np.inf
        near = [data.items[j] for j in np.argsort(-cosine)[:3]]
        return ["nearest treatments in the latent factors: "
                + ", ".join(data.names.get(k, k) for k in near)]  # fmt: skip
    return model.explain(context, data, item)


def suggest(
    model: Recommender,
    data: TreatmentData,
    context: PatientContext,
    table: InteractionTable,
    *,
    size: int = 5,
    min_support: int = 2,
    extra_active: Iterable[str] = (),
    extra_allergies: Iterable[Code] = (),
    classes: Mapping[str, Code] | None = None,
    explain: bool = True,
) -> SuggestionList:
    """Up to `size` safe suggestions for the patient, with the removals and their reasons
    (and, with `explain`, the model's own explanation of each).

    Raises:
        DataError: an extra active drug's code is malformed or unknown.
    """
    extra = [check_treatment_code(k, data, table) for k in extra_active]
    context = replace(
        context, active_drugs=context.active_drugs | frozenset(extra),
        allergies=(*context.allergies, *extra_allergies),
    )  # fmt: skip
    notes: list[str] = []
    used = model
    if context.cold_start and not isinstance(model, MostPopularRecommender):
        used = MostPopularRecommender()
        notes.append(COLD_START_NOTE)
    ranked = rank(used, context, data, min_support=min_support)
    if not context.conditions:
        notes.append("No active condition is recorded, so no treatment is drawn for one.")
    elif not ranked:
        notes.append("No treatment was started often enough for the active conditions.")
    names = {**data.names, **context.names}
    safety = check_treatments(
        [data.items[i] for i, _ in ranked], active=context.active_drugs,
        allergies=context.allergies, table=table, names=names,
        classes=classes if classes is not None else data.classes,
    )  # fmt: skip
    scores = {data.items[i]: (i, s) for i, s in ranked}
    suggestions = []
    for key in safety.kept[:size]:
        item, score = scores[key]
        support = _support(data, context, item)
        display = names.get(key, key)
        top = support[0] if support else (None, 0)
        total = int(data.condition_patients[data.condition_index()[top[0]]]) if top[0] else 0
        text = (
            f"{top[1]} of {total} patients with {names.get(top[0], top[0])} received {display}"
            if top[0]
            else f"{display} was started for these conditions"
        )
        suggestions.append(
            Suggestion(
                key,
                display,
                score,
                sum(n for _, n in support),
                tuple(names.get(c, c) for c, _ in support),
                text,
                tuple(_details(used, context, data, item)) if explain else (),
            )
        )
    return SuggestionList(
        context.patient_id, used.name, tuple(suggestions), safety.removed,
        safety.unchecked_allergies, context.cold_start, tuple(notes),
    )  # fmt: skip
