"""Ranking metrics of treatment suggestions, over time-ordered queries, with bootstrap
intervals: precision@5, recall@10, NDCG@10, Jaccard of the proposed set (the model's
chosen size, drawn by `proposed_set`), catalogue coverage, and the DDI rate of the
proposed sets against an interaction table (SafeDrug's definition: the share of drug pairs
within a set that interact, averaged over sets of two drugs or more; ``truth_ddi_rate``
is the same over the held-out truth sets, ``set5_ddi_rate`` over sets of five drawn the
same way whatever the chosen size, ``top5_ddi_rate`` over the top five ranked
alternatives as listed, before `proposed_set` skips interacting ones; ``set_skips`` and
``set5_skips`` count the treatments skipped). Every list is scored after the safety filter, as a
clinician would see it; `filtered_proposals` counts proposals the filter would still
remove (zero when the filter is applied).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from clinsight.evaluation.metrics import bootstrap_weights, json_float, percentile_interval
from clinsight.recommend.matrix import TreatmentData
from clinsight.recommend.models import Recommender
from clinsight.recommend.safety import InteractionTable, check_treatments, proposed_set
from clinsight.recommend.split import Query
from clinsight.recommend.suggest import suggest

__all__ = [
    "RankedLists",
    "ddi_rate",
    "paired_difference",
    "rank_queries",
    "ranking_metrics",
    "set_metrics",
]


@dataclass(frozen=True)
class RankedLists:
    """The safe ranked list (up to 10) of each query, with its truth and active drugs."""

    lists: tuple[tuple[str, ...], ...]
    truths: tuple[frozenset[str], ...]
    active: tuple[frozenset[str], ...]


def rank_queries(
    model: Recommender,
    data: TreatmentData,
    queries: Sequence[Query],
    table: InteractionTable,
    *,
    min_support: int = 2,
    depth: int = 10,
) -> RankedLists:
    """Each query's suggestions (after the safety filter), best first."""
    lists = []
    for query in queries:
        found = suggest(model, data, query.context, table, size=depth,
                        min_support=min_support, explain=False)  # fmt: skip
        lists.append(tuple(s.treatment for s in found.suggestions))
    return RankedLists(
        tuple(lists), tuple(q.truth for q in queries),
        tuple(q.context.active_drugs for q in queries),
    )  # fmt: skip


def ddi_rate(proposed: Sequence[str], table: InteractionTable) -> float:
    """The share of pairs within one set that the table lists (NaN for fewer than 2 drugs);
    every pair counts, though only pairs of RxNorm ingredients can be listed."""
    pairs = list(itertools.combinations(sorted(set(proposed)), 2))
    if not pairs:
        return math.nan
    hits = 0
    for a, b in pairs:
        (system_a, _, code_a), (system_b, _, code_b) = a.partition("|"), b.partition("|")
        hits += system_a == system_b == "RxNorm" and table.between(code_a, code_b) is not None
    return hits / len(pairs)


def _per_query(
    lists: RankedLists, size: int, table: InteractionTable
) -> dict[str, NDArray[np.float64]]:
    rows: dict[str, list[float]] = {k: [] for k in
                                    ("precision_at_5", "recall_at_10", "ndcg_at_10", "jaccard",
                                     "ddi_rate", "set5_ddi_rate", "top5_ddi_rate",
                                     "truth_ddi_rate")}  # fmt: skip
    for ranked, truth in zip(lists.lists, lists.truths, strict=True):
        hits = [item in truth for item in ranked[:10]]
        rows["precision_at_5"].append(sum(hits[:5]) / 5.0)
        rows["recall_at_10"].append(sum(hits) / len(truth))
        gain = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(truth))))
        rows["ndcg_at_10"].append(gain / ideal)
        proposed = set(proposed_set(ranked, size, table).treatments)
        union = proposed | truth
        rows["jaccard"].append(len(proposed & truth) / len(union) if union else 0.0)
        rows["ddi_rate"].append(ddi_rate(sorted(proposed), table))
        rows["set5_ddi_rate"].append(ddi_rate(proposed_set(ranked, 5, table).treatments, table))
        rows["top5_ddi_rate"].append(ddi_rate(ranked[:5], table))
        rows["truth_ddi_rate"].append(ddi_rate(sorted(truth), table))
    return {k: np.asarray(v, dtype=np.float64) for k, v in rows.items()}


def _summary(values: NDArray[np.float64], weights: Sequence[NDArray[np.float64]]) -> dict[str, Any]:
    finite = np.isfinite(values)
    mean = float(values[finite].mean()) if finite.any() else math.nan
    samples = []
    clean = np.where(finite, values, 0.0)
    for w in weights:
        wf = w * finite
        samples.extend((wf @ clean) / np.maximum(wf.sum(axis=1), 1e-12))
    low, high = percentile_interval(samples) if samples else (math.nan, math.nan)
    return {"value": json_float(mean), "interval": [json_float(low), json_float(high)],
            "n": int(finite.sum())}  # fmt: skip


def ranking_metrics(
    lists: RankedLists,
    table: InteractionTable,
    *,
    size: int,
    catalogue: int,
    replicates: int = 1000,
    seed: int = 0,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The metrics with 95 % bootstrap intervals (queries resampled)."""
    values = _per_query(lists, size, table)
    n = len(lists.lists)
    weights = list(bootstrap_weights(n, replicates, seed)) if n else []
    out: dict[str, Any] = {k: _summary(v, weights) for k, v in values.items()}
    out["coverage"] = {
        "value": json_float(
            len({item for ranked in lists.lists for item in ranked[:10]}) / max(catalogue, 1)
        )
    }
    for key, at in (("set_skips", size), ("set5_skips", 5)):
        out[key] = sum(len(proposed_set(ranked, at, table).skipped) for ranked in lists.lists)
    out["filtered_proposals"] = sum(
        len(check_treatments(proposed_set(ranked, size, table).treatments, active=active,
                             allergies=(), table=table, names=names or {}).removed)
        for ranked, active in zip(lists.lists, lists.active, strict=True)
    )  # fmt: skip
    out["set_size"], out["queries"], out["bootstrap_replicates"] = size, n, replicates
    return out


def set_metrics(lists: RankedLists, table: InteractionTable, size: int) -> float:
    """Mean Jaccard of the proposed sets of `size` (to choose the size on validation)."""
    return float(np.mean(_per_query(lists, size, table)["jaccard"])) if lists.lists else 0.0


def paired_difference(
    better: RankedLists,
    worse: RankedLists,
    table: InteractionTable,
    *,
    metric: str = "ndcg_at_10",
    replicates: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The mean per-query difference of `metric` (better minus worse), paired bootstrap."""
    a = _per_query(better, 5, table)[metric]
    b = _per_query(worse, 5, table)[metric]
    diff = a - b
    return _summary(diff, list(bootstrap_weights(len(diff), replicates, seed)))
