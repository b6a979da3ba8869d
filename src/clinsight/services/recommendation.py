"""Use cases of treatment recommendation: train (choose parameters on validation, register),
evaluate (the held-out part, once) and suggest for one person of an OMOP CDM database.

Patients are split by id (`patient_split`: 60 % train, 20 % validation, 20 % test); the
model learns from the training patients' full records and is scored on one time-ordered
query per validation or test patient (`recommend.split`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from clinsight.data.longitudinal import Cohort, PatientRecord, patient_split
from clinsight.data.omop import drug_classes, load_omop
from clinsight.errors import DataError
from clinsight.evaluation.recommendation import rank_queries, ranking_metrics, set_metrics
from clinsight.recommend.matrix import (
    PatientContext,
    TreatmentData,
    build_treatment_data,
    context_at,
)
from clinsight.recommend.models import Recommender
from clinsight.recommend.safety import InteractionTable, load_interaction_csv, shipped_interactions
from clinsight.recommend.split import Query, index_query, training_episodes
from clinsight.recommend.suggest import SuggestionList, check_treatment_code, suggest
from clinsight.registry.recommendation import (
    RecommendationModelVersion,
    get_recommendation_model,
    list_recommendation_models,
    load_recommendation_model,
    register_recommendation_model,
)
from clinsight.registry.stages import Stage
from clinsight.sequence.treatment_sequence import make_treatment_recommender

__all__ = [
    "GRIDS",
    "LIMITATIONS",
    "Prepared",
    "choose_parameters",
    "evaluate_recommendation",
    "interaction_table",
    "person_context",
    "prepare",
    "suggest_for_person",
    "train_recommendation",
]

SPLIT = {"train": 0.6, "validation": 0.2, "test": 0.2}
GRIDS: dict[str, list[dict[str, float]]] = {
    "most_popular": [{}],
    "cooccurrence": [{}],
    "item_knn": [{"prior_weight": w} for w in (0.0, 0.5, 0.8, 0.9)],
    "user_knn": [
        {"prior_weight": w, "neighbours": k} for w in (0.0, 0.5, 0.8, 0.9) for k in (50.0, 200.0)
    ],
    "als": [{"prior_weight": w, "factors": f} for w in (0.0, 0.5, 0.8, 0.9) for f in (16.0, 32.0)],
    "episode_knn": [
        {"new_weight": n, "neighbours": k, "prior_weight": w}
        for n in (1.0, 3.0)
        for k in (100.0, 300.0)
        for w in (0.0, 0.3)
    ],
    "visit_gru": [{"hidden": h, "prior_weight": w} for h in (32.0, 64.0) for w in (0.0, 0.3)],
}
"""The parameters compared on validation, per recommender."""
LIMITATIONS = (
    "Suggests what similar patients received, not what works: the record says little of "
    "outcomes, so a frequent treatment is not thereby an effective one.",
    "The interaction table shipped is a small demonstration set; a hospital adds its "
    "licensed drug knowledge base (--interactions FILE.csv, CLINSIGHT_INTERACTIONS_CSV), "
    "whose pairs take precedence.",
    "Allergies recorded only as free text are shown with every list but matched by name "
    "only; a clinician must check them.",
    "The artifact holds the training patients' treatment and condition matrices (no "
    "identifiers), as neighbourhood models need them; store it like patient data.",
)


@dataclass(frozen=True)
class Prepared:
    """The split cohort: training matrices and the validation and test queries."""

    data: TreatmentData
    validation: tuple[Query, ...]
    test: tuple[Query, ...]
    train_patients: int
    data_sha256: str
    source: str


def _cohort_sha(records: Sequence[PatientRecord]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(record.patient_id.encode())
        for event in record.events:
            digest.update(f"{event.kind}|{event.code.key()}|{event.start:%Y%m%d}".encode())
    return digest.hexdigest()


def prepare(
    cohort: Cohort,
    *,
    seed: int = 0,
    horizon_days: int = 90,
    min_patients: int = 3,
    outcome_aware: bool = False,
    classes: Mapping[str, Any] | None = None,
    systems: Sequence[str] = ("RxNorm",),
    last_query: bool = False,
) -> Prepared:
    """Split by patient, build the training matrices over the drugs of `systems` and one
    query per held-out patient (a random diagnosis day; with `last_query`, the latest).

    Raises:
        DataError: too few patients or treatments to learn from.
    """
    parts = patient_split([r.patient_id for r in cohort.records], SPLIT, seed=seed)
    train = [r for r in cohort.records if parts[r.patient_id] == "train"]
    data = build_treatment_data(
        train, systems=systems, min_patients=min_patients, outcome_aware=outcome_aware,
        classes=classes,
    )  # fmt: skip
    data = training_episodes(train, data, horizon_days=horizon_days, seed=seed, systems=systems)
    known = frozenset(data.items)

    def queries(part: str) -> tuple[Query, ...]:
        found = (
            index_query(
                r,
                horizon_days=horizon_days,
                seed=seed,
                systems=systems,
                known=known,
                last=last_query,
            )
            for r in cohort.records
            if parts[r.patient_id] == part
        )
        return tuple(q for q in found if q is not None)

    return Prepared(data, queries("validation"), queries("test"), len(train),
                    _cohort_sha(train), cohort.report.source)  # fmt: skip


def interaction_table(path: Path | None = None) -> InteractionTable:
    """The shipped demonstration table, with the hospital's file at `path` laid over it
    (its pairs win; each cites its file and line). Read again when the file changes.

    Raises:
        DataError: the file cannot be read or is malformed (see `load_interaction_csv`).
    """
    if path is None:
        return shipped_interactions()
    try:
        stat = Path(path).stat()
    except OSError as exc:
        raise DataError(
            f"Cannot read the hospital interaction file {str(path)!r} (set by "
            "CLINSIGHT_INTERACTIONS_CSV or --interactions): check the path and permissions."
        ) from exc
    return _merged_table(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _merged_table(path: str, mtime_ns: int, size: int) -> InteractionTable:
    del mtime_ns, size  # part of the cache key only
    try:
        hospital = load_interaction_csv(path)
    except DataError as exc:
        raise DataError(
            f"The hospital interaction file (CLINSIGHT_INTERACTIONS_CSV or --interactions) "
            f"cannot be used: {exc}"
        ) from exc
    return shipped_interactions().merged(hospital)


def choose_parameters(
    recommender: str,
    prepared: Prepared,
    table: InteractionTable,
    *,
    grid: Sequence[Mapping[str, float]] | None = None,
    min_support: int = 2,
) -> tuple[Recommender, int, dict[str, Any]]:
    """Fit each parameter set, keep the best validation NDCG@10, then the set size (1-5)
    with the best validation Jaccard; return the fitted model, the size and its figures."""
    best: tuple[float, Recommender, dict[str, float]] | None = None
    tried = []
    for params in grid if grid is not None else GRIDS.get(recommender, [{}]):
        model = make_treatment_recommender(recommender, **params).fit_validated(
            prepared.data, prepared.validation
        )
        lists = rank_queries(model, prepared.data, prepared.validation, table,
                             min_support=min_support)  # fmt: skip
        score = ranking_metrics(lists, table, size=5, catalogue=len(prepared.data.items),
                                replicates=0)["ndcg_at_10"]["value"] or 0.0  # fmt: skip
        tried.append({"params": dict(params), "validation_ndcg_at_10": score})
        if best is None or score > best[0]:
            best = (score, model, dict(params))
    if best is None:
        raise DataError(f"No parameter set to try for {recommender}.")
    _, model, params = best
    lists = rank_queries(model, prepared.data, prepared.validation, table, min_support=min_support)
    size = max(range(1, 6), key=lambda s: (set_metrics(lists, table, s), -s))
    figures = ranking_metrics(lists, table, size=size, catalogue=len(prepared.data.items),
                              replicates=200)  # fmt: skip
    return model, size, {"chosen": params, "tried": tried, "validation": figures}


def train_recommendation(
    registry_dir: Path,
    url: str,
    *,
    name: str,
    recommender: str = "episode_knn",
    schema: str | None = None,
    seed: int = 0,
    interactions: Path | None = None,
    min_support: int = 2,
) -> RecommendationModelVersion:
    """Load the OMOP database, choose parameters on validation and register the model.

    Raises:
        DataError: the database cannot be read or holds too little to learn from.
        RegistryError: the name is invalid.
    """
    cohort = load_omop(url, schema=schema)
    prepared = prepare(cohort, seed=seed, classes=drug_classes(url, schema=schema))
    table = interaction_table(interactions)
    model, size, figures = choose_parameters(recommender, prepared, table,
                                             min_support=min_support)  # fmt: skip
    validation = figures["validation"]
    metrics = {
        "validation": {k: v["value"] if isinstance(v, dict) and "value" in v else v
                       for k, v in validation.items()},
        "validation_intervals": validation, "set_size": size, "tried": figures["tried"],
    }  # fmt: skip
    training = {
        "data_sha256": prepared.data_sha256, "source": prepared.source, "seed": seed,
        "split": SPLIT, "train_patients": prepared.train_patients,
        "validation_queries": len(prepared.validation), "horizon_days": 90,
        "interaction_table": table.source, "model": recommender,
    }  # fmt: skip
    return register_recommendation_model(
        registry_dir, name=name, model=model, data=prepared.data, min_support=min_support,
        metrics=metrics, training=training,
        intended_use="Decision support for clinicians choosing a drug treatment: what "
                     "similar patients received for the same active conditions, after a "
                     "safety check. Not a prescription; every suggestion needs review.",
        limitations=LIMITATIONS,
    )  # fmt: skip


def _version(registry_dir: Path, name: str, version: int | None) -> RecommendationModelVersion:
    if version is not None:
        return get_recommendation_model(registry_dir, name, version)
    if any(v.stage is Stage.PRODUCTION for v in list_recommendation_models(registry_dir, name)):
        return get_recommendation_model(registry_dir, name, stage=Stage.PRODUCTION)
    return get_recommendation_model(registry_dir, name)


def evaluate_recommendation(
    registry_dir: Path,
    url: str,
    *,
    name: str,
    version: int | None = None,
    schema: str | None = None,
    interactions: Path | None = None,
) -> dict[str, Any]:
    """The registered model on the held-out test patients of the same split (read once)."""
    found = _version(registry_dir, name, version)
    model, data = load_recommendation_model(found)
    cohort = load_omop(url, schema=schema)
    prepared = prepare(cohort, seed=int(found.training.get("seed", 0)))
    table = interaction_table(interactions)
    lists = rank_queries(model, data, prepared.test, table, min_support=found.min_support)
    size = int(found.metrics.get("set_size", 3))
    return ranking_metrics(lists, table, size=size, catalogue=len(data.items), names=data.names)


def person_context(
    url: str, person_id: int, *, schema: str | None = None
) -> tuple[PatientRecord, PatientContext]:
    """One person of the database and their context at the end of their record.

    Raises:
        DataError: no such person, or the person has no recorded event.
    """
    cohort = load_omop(url, schema=schema, person_ids=[person_id])
    if not cohort.records:
        raise DataError(f"No person {person_id} in the OMOP database.")
    record = cohort.records[0]
    moment = max((e.start for e in record.events), default=None)
    if moment is None:
        raise DataError(f"Person {person_id} has no recorded events to suggest from.")
    return record, context_at(record, moment)


def suggest_for_person(
    registry_dir: Path,
    url: str,
    person_id: int,
    *,
    name: str,
    version: int | None = None,
    schema: str | None = None,
    interactions: Path | None = None,
    active: Sequence[str] = (),
    size: int = 5,
) -> SuggestionList:
    """Suggestions for one person of the database, at the end of their record.

    Raises:
        DataError: no such person, or an unknown drug code among `active`.
    """
    found = _version(registry_dir, name, version)
    model, data = load_recommendation_model(found)
    table = interaction_table(interactions)
    for key in active:
        check_treatment_code(key, data, table)
    _, context = person_context(url, person_id, schema=schema)
    return suggest(model, data, context, table, size=size, min_support=found.min_support,
                   extra_active=active)  # fmt: skip
