"""Treatment recommenders behind one interface, each scoring every treatment for a
`PatientContext`; `rank` draws the candidates for the patient's active conditions.

- ``most_popular``: per condition, the share of its patients who started the treatment
  while it was active, summed over the patient's active conditions (also the cold-start
  answer); `new_weight` > 0 adds that many times the sum over the conditions diagnosed on
  the day (a reference for what the indication alone carries; 0, the default, is the
  issue's baseline).
- ``cooccurrence``: raw counts of patients who had both the treatment and one of the
  patient's past treatments (the plain baseline).
- ``item_knn``: item-based kNN, cosine similarity of BM25-weighted patient x (treatment +
  condition) columns, so conditions count as neighbours of treatments.
- ``user_knn``: user-based kNN, patients similar on BM25-weighted conditions and
  treatments, age (Gaussian, `age_scale` years) and sex.
- ``als``: implicit-feedback matrix factorisation (the ``implicit`` package, ALS) on the
  same BM25-weighted matrix; a new patient's factors are solved from their row (fold-in).
- ``episode_knn``: user-based kNN over training episodes (`recommend.split.
  training_episodes`: a training patient's diagnosis day, the conditions active and newly
  diagnosed on it, the treatments newly started within the horizon); episodes are similar
  on IDF-weighted conditions, the day's new ones (the indication) weighted `new_weight`,
  and age; a treatment scores the similarity-weighted count of neighbour episodes that
  started it.

Collaborative scores are blended with the per-condition prior by `prior_weight` (chosen on
validation; 0 is pure collaborative filtering). Fitted state is a dict of arrays, stored
as safetensors by the registry (never pickle).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clinsight.errors import ModelError
from clinsight.recommend.matrix import PatientContext, TreatmentData
from clinsight.recommend.split import Query

__all__ = [
    "MODELS",
    "AlsRecommender",
    "BlendedRecommender",
    "CooccurrenceRecommender",
    "EpisodeKnnRecommender",
    "ItemKnnRecommender",
    "MostPopularRecommender",
    "Recommender",
    "UserKnnRecommender",
    "candidate_mask",
    "condition_prior",
    "make_recommender",
    "rank",
]

Array = NDArray[np.float64]


def condition_prior(context: PatientContext, data: TreatmentData) -> Array:
    """Per-condition popularity summed over the patient's active conditions."""
    at = data.condition_index()
    rows = [at[c] for c in context.conditions if c in at]
    if not rows:
        return np.zeros(len(data.items))
    shares = data.indication[rows] / np.maximum(data.condition_patients[rows, None], 1.0)
    return np.asarray(shares.sum(axis=0), dtype=np.float64)


def candidate_mask(context: PatientContext, data: TreatmentData, min_support: int) -> NDArray[Any]:
    """Treatments started by at least `min_support` patients for one of the active conditions."""
    at = data.condition_index()
    rows = [at[c] for c in context.conditions if c in at]
    if not rows:
        return np.zeros(len(data.items), dtype=bool)
    return np.asarray(data.indication[rows].max(axis=0) >= min_support)


def bm25(matrix: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """BM25 weighting of a patient x column matrix (rows are documents)."""
    m = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    n = max(m.shape[0], 1)
    df = np.bincount(m.indices, minlength=m.shape[1])
    idf = np.log(n) - np.log1p(df)
    lengths = np.asarray(m.sum(axis=1)).ravel()
    avg = lengths.mean() if lengths.size and lengths.mean() > 0 else 1.0
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    norm = k1 * (1.0 - b + b * lengths[rows] / avg)
    m.data = m.data * (k1 + 1.0) / (norm + m.data) * np.maximum(idf[m.indices], 0.0)
    return m


def _query_row(context: PatientContext, data: TreatmentData, idf: Array | None) -> Array:
    """The patient as a (treatments + conditions) row, weighted like the training rows."""
    items, conds = data.item_index(), data.condition_index()
    row = np.zeros(len(data.items) + len(data.conditions))
    for key, weight in context.history.items():
        if key in items:
            row[items[key]] = weight
    for key in context.past_conditions:
        if key in conds:
            row[len(data.items) + conds[key]] = 1.0
    if idf is not None:
        row = row * np.maximum(idf, 0.0)
    return row


def _combined(data: TreatmentData) -> sp.csr_matrix:
    return sp.csr_matrix(sp.hstack([data.user_items, data.user_conditions]).tocsr())


def _idf(data: TreatmentData) -> Array:
    combined = _combined(data)
    df = np.bincount(combined.indices, minlength=combined.shape[1])
    return np.asarray(np.log(max(combined.shape[0], 1)) - np.log1p(df), dtype=np.float64)


class Recommender(ABC):
    """Scores every treatment of the training data for one patient."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, float]] = {}

    def __init__(self, **params: float) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ModelError(
                f"{self.name} takes {sorted(self.defaults) or 'no parameters'}; got {unknown}."
            )
        self.params = {**self.defaults, **params}

    @abstractmethod
    def fit(self, data: TreatmentData) -> Recommender:
        """Learn from the training data; return self."""

    def fit_validated(self, data: TreatmentData, validation: Sequence[Query]) -> Recommender:
        """`fit`, for a model that stops training early on the validation queries (the
        others ignore them); return self."""
        return self.fit(data)

    @abstractmethod
    def scores(self, context: PatientContext, data: TreatmentData) -> Array:
        """A score per treatment of `data.items` (higher is better)."""

    def explain(self, context: PatientContext, data: TreatmentData, item: int) -> list[str]:
        """The model's own reasons for treatment `item` (none unless a model gives them)."""
        return []

    def state(self) -> dict[str, NDArray[Any]]:
        """The fitted arrays (stored as safetensors)."""
        return {}

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> Recommender:
        """Restore fitted arrays written by `state`; return self."""
        return self


class MostPopularRecommender(Recommender):
    name = "most_popular"
    defaults: ClassVar[dict[str, float]] = {"new_weight": 0.0}

    def fit(self, data: TreatmentData) -> Recommender:
        return self

    def scores(self, context: PatientContext, data: TreatmentData) -> Array:
        score = condition_prior(context, data)
        weight = float(self.params["new_weight"])
        new = context.new_conditions & context.conditions
        if weight > 0 and new:
            score = score + weight * condition_prior(replace(context, conditions=new), data)
        return score


class CooccurrenceRecommender(Recommender):
    name = "cooccurrence"

    def fit(self, data: TreatmentData) -> Recommender:
        binary = (data.user_items > 0).astype(np.float64)
        self.cooc_ = np.asarray((binary.T @ binary).toarray(), dtype=np.float64)
        np.fill_diagonal(self.cooc_, 0.0)
        return self

    def scores(self, context: PatientContext, data: TreatmentData) -> Array:
        at = data.item_index()
        rows = [at[k] for k in context.history if k in at]
        return self.cooc_[rows].sum(axis=0) if rows else np.zeros(len(data.items))

    def state(self) -> dict[str, NDArray[Any]]:
        return {"cooc": self.cooc_}

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> Recommender:
        self.cooc_ = np.asarray(state["cooc"], dtype=np.float64)
        return self


class BlendedRecommender(Recommender):
    """A collaborative score blended with the per-condition prior."""

    def scores(self, context: PatientContext, data: TreatmentData) -> Array:
        cf = self.collaborative(context, data)
        weight = float(self.params.get("prior_weight", 0.0))
        return (1.0 - weight) * _unit(cf) + weight * _unit(condition_prior(context, data))

    @abstractmethod
    def collaborative(self, context: PatientContext, data: TreatmentData) -> Array:
        """The collaborative score alone."""


def _unit(x: Array) -> Array:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return x / top if top > 0 else x


class ItemKnnRecommender(BlendedRecommender):
    name = "item_knn"
    defaults: ClassVar[dict[str, float]] = {"prior_weight": 0.5, "neighbours": 50.0}

    def fit(self, data: TreatmentData) -> Recommender:
        m = bm25(_combined(data))
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        sim = np.asarray((m.T @ m).toarray()) / np.outer(norms, norms)
        sim = sim[:, : len(data.items)]
        n_items = len(data.items)
        sim[np.arange(n_items), np.arange(n_items)] = 0.0
        k = int(self.params["neighbours"])
        if k < sim.shape[0]:
            cut = -np.sort(-sim, axis=0)[k - 1 : k]
            sim = np.where(sim >= cut, sim, 0.0)
        self.similarity_ = sim
        self.idf_ = _idf(data)
        return self

    def collaborative(self, context: PatientContext, data: TreatmentData) -> Array:
        row = _query_row(context, data, self.idf_)
        return np.asarray(row @ self.similarity_, dtype=np.float64)

    def state(self) -> dict[str, NDArray[Any]]:
        return {"similarity": self.similarity_, "idf": self.idf_}

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> Recommender:
        self.similarity_ = np.asarray(state["similarity"], dtype=np.float64)
        self.idf_ = np.asarray(state["idf"], dtype=np.float64)
        return self


class UserKnnRecommender(BlendedRecommender):
    name = "user_knn"
    defaults: ClassVar[dict[str, float]] = {
        "prior_weight": 0.5, "neighbours": 50.0, "age_scale": 15.0, "other_sex": 0.8,
        "for_condition": 1.0,
    }  # fmt: skip

    def fit(self, data: TreatmentData) -> Recommender:
        m = bm25(_combined(data)).toarray()
        norms = np.linalg.norm(m, axis=1)
        self.profiles_ = m / np.where(norms > 0, norms, 1.0)[:, None]
        self.idf_ = _idf(data)
        self.received_ = (data.user_items > 0).astype(np.float64).toarray()
        self.ages_, self.sexes_ = data.ages, data.sexes
        return self

    def neighbours(
        self, context: PatientContext, data: TreatmentData
    ) -> tuple[NDArray[Any], Array]:
        """The indices and similarities of the most similar training patients."""
        row = _query_row(context, data, self.idf_)
        norm = np.linalg.norm(row)
        sim = self.profiles_ @ (row / norm) if norm > 0 else np.zeros(len(self.profiles_))
        if context.age is not None:
            gap = np.nan_to_num(self.ages_ - context.age, nan=self.params["age_scale"])
            sim = sim * np.exp(-((gap / self.params["age_scale"]) ** 2))
        sex = {"female": 1.0, "male": 0.0}.get(context.sex or "")
        if sex is not None:
            sim = sim * np.where(self.sexes_ == sex, 1.0, self.params["other_sex"])
        k = min(int(self.params["neighbours"]), len(sim))
        top = np.argsort(-sim)[:k]
        top = top[sim[top] > 0]
        return top, sim[top]

    def collaborative(self, context: PatientContext, data: TreatmentData) -> Array:
        top, sim = self.neighbours(context, data)
        if data.episodes is not None and self.params["for_condition"] > 0:
            received = data.received_for(context.conditions)[top].toarray()
        else:
            received = self.received_[top]
        return np.asarray(sim @ received, dtype=np.float64)

    def state(self) -> dict[str, NDArray[Any]]:
        return {"profiles": self.profiles_, "idf": self.idf_, "received": self.received_,
                "ages": self.ages_, "sexes": self.sexes_}  # fmt: skip

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> Recommender:
        self.profiles_, self.idf_ = np.asarray(state["profiles"]), np.asarray(state["idf"])
        self.received_ = np.asarray(state["received"])
        self.ages_, self.sexes_ = np.asarray(state["ages"]), np.asarray(state["sexes"])
        return self


class AlsRecommender(BlendedRecommender):
    name = "als"
    defaults: ClassVar[dict[str, float]] = {
        "prior_weight": 0.5, "factors": 32.0, "regularization": 0.05, "alpha": 2.0,
        "iterations": 15.0, "seed": 0.0,
    }  # fmt: skip

    def fit(self, data: TreatmentData) -> Recommender:
        from implicit.cpu.als import AlternatingLeastSquares

        weighted = bm25(_combined(data)).astype(np.float32)
        model = AlternatingLeastSquares(
            factors=int(self.params["factors"]), regularization=self.params["regularization"],
            alpha=self.params["alpha"], iterations=int(self.params["iterations"]),
            random_state=int(self.params["seed"]), num_threads=1,
        )  # fmt: skip
        model.fit(sp.csr_matrix(weighted), show_progress=False)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float64)
        self.idf_ = _idf(data)
        return self

    def user_factors(self, context: PatientContext, data: TreatmentData) -> Array:
        """The patient's factors solved from their row (the ALS normal equations)."""
        row = _query_row(context, data, self.idf_)
        y = self.item_factors_
        seen = np.flatnonzero(row > 0)
        confidence = self.params["alpha"] * row[seen]
        a = y.T @ y + self.params["regularization"] * np.eye(y.shape[1])
        a += (y[seen].T * confidence) @ y[seen]
        b = ((1.0 + confidence)[:, None] * y[seen]).sum(axis=0)
        return np.asarray(np.linalg.solve(a, b), dtype=np.float64)

    def collaborative(self, context: PatientContext, data: TreatmentData) -> Array:
        x = self.user_factors(context, data)
        return np.asarray(self.item_factors_[: len(data.items)] @ x, dtype=np.float64)

    def state(self) -> dict[str, NDArray[Any]]:
        return {"item_factors": self.item_factors_, "idf": self.idf_}

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> Recommender:
        self.item_factors_ = np.asarray(state["item_factors"], dtype=np.float64)
        self.idf_ = np.asarray(state["idf"], dtype=np.float64)
        return self


class EpisodeKnnRecommender(BlendedRecommender):
    name = "episode_knn"
    defaults: ClassVar[dict[str, float]] = {
        "prior_weight": 0.0, "neighbours": 100.0, "new_weight": 3.0, "age_scale": 15.0,
    }  # fmt: skip
    profiles_: sp.csr_matrix | None = None

    def _episodes(self, data: TreatmentData) -> tuple[sp.csr_matrix, sp.csr_matrix, Array]:
        if data.index_conditions is None or data.index_new is None or data.index_started is None:
            raise ModelError(
                "episode_knn needs the training episodes (recommend.split.training_episodes); "
                "these treatment data hold none."
            )
        ages = data.index_ages if data.index_ages is not None else np.full(
            data.index_conditions.shape[0], np.nan
        )  # fmt: skip
        return data.index_conditions, data.index_new, ages

    def fit(self, data: TreatmentData) -> Recommender:
        if self.params["neighbours"] < 1:
            raise ModelError(
                f"episode_knn needs 1 or more neighbours, not {self.params['neighbours']}."
            )
        active = self._episodes(data)[0]
        n = max(active.shape[0], 1)
        df = np.bincount(sp.csr_matrix(active).indices, minlength=active.shape[1])
        self.idf_ = np.maximum(np.log(n) - np.log1p(df), 0.0)
        self.profiles_ = self._profiles(data)
        return self

    def _profiles(self, data: TreatmentData) -> sp.csr_matrix:
        active, new, _ = self._episodes(data)
        weights = np.concatenate([self.idf_, self.params["new_weight"] * self.idf_])
        rows = sp.csr_matrix(sp.hstack([active, new]).tocsr() @ sp.diags(weights))
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        return sp.csr_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ rows)

    def neighbours(
        self, context: PatientContext, data: TreatmentData
    ) -> tuple[NDArray[Any], Array]:
        """The indices and similarities of the most similar training episodes."""
        if self.profiles_ is None:  # after load_state: built once from the stored episodes
            self.profiles_ = self._profiles(data)
        at, width = data.condition_index(), len(data.conditions)
        query = np.zeros(2 * width)
        for key in context.conditions:
            if key in at:
                query[at[key]] = self.idf_[at[key]]
        for key in context.new_conditions & context.conditions:
            if key in at:
                query[width + at[key]] = self.params["new_weight"] * self.idf_[at[key]]
        norm = np.linalg.norm(query)
        if norm == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        sim = np.asarray(self.profiles_ @ (query / norm), dtype=np.float64).ravel()
        ages = self._episodes(data)[2]
        if context.age is not None and self.params["age_scale"] > 0:
            gap = np.nan_to_num(ages - context.age, nan=self.params["age_scale"])
            sim = sim * np.exp(-((gap / self.params["age_scale"]) ** 2))
        k = min(int(self.params["neighbours"]), len(sim))
        top = np.argpartition(-sim, k - 1)[:k] if k < len(sim) else np.arange(len(sim))
        top = top[np.argsort(-sim[top])]
        top = top[sim[top] > 0]
        return top, sim[top]

    def collaborative(self, context: PatientContext, data: TreatmentData) -> Array:
        top, sim = self.neighbours(context, data)
        started = data.index_started
        if started is None or not len(top):
            return np.zeros(len(data.items))
        return np.asarray(sim @ started[top].toarray(), dtype=np.float64)

    def state(self) -> dict[str, NDArray[Any]]:
        return {"idf": self.idf_}

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> Recommender:
        self.idf_ = np.asarray(state["idf"], dtype=np.float64)
        self.profiles_ = None
        return self


MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        MostPopularRecommender,
        CooccurrenceRecommender,
        ItemKnnRecommender,
        UserKnnRecommender,
        AlsRecommender,
        EpisodeKnnRecommender,
    )
}


def make_recommender(name: str, **params: float) -> Recommender:
    """A recommender by name.

    Raises:
        ModelError: unknown name or parameter.
    """
    if name not in MODELS:
        raise ModelError(f"No recommender named {name!r}; choose one of {sorted(MODELS)}.")
    return MODELS[name](**params)


def rank(
    model: Recommender, context: PatientContext, data: TreatmentData, *, min_support: int = 2
) -> list[tuple[int, float]]:
    """Candidate treatments for the active conditions as (item index, score), best first;
    ties broken by the per-condition prior, then by overall popularity."""
    mask = candidate_mask(context, data, min_support)
    if not mask.any():
        return []
    score = model.scores(context, data)
    prior = condition_prior(context, data)
    popularity = np.asarray((data.user_items > 0).sum(axis=0)).ravel()
    idx = np.flatnonzero(mask)
    order = np.lexsort((-popularity[idx], -prior[idx], -score[idx]))
    return [(int(idx[i]), float(score[idx[i]])) for i in order]
