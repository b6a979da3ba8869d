from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from clinsight.errors import DataError, ModelError
from clinsight.recommend.matrix import build_treatment_data, context_at, exposure_weight
from clinsight.recommend.models import MODELS, make_recommender, rank
from clinsight.recommend.split import index_query, training_episodes
from tests.support.recommend import (
    AMOXICILLIN,
    ARTHRITIS,
    IBUPROFEN,
    SINUSITIS,
    START,
    records,
    treated,
)


def test_matrix_counts_indications_and_weights_exposures() -> None:
    data = build_treatment_data(records(), min_patients=2)
    assert data.items == ["RxNorm|11289", "RxNorm|3640", "RxNorm|5640", "RxNorm|723",
                          "RxNorm|7258"]  # fmt: skip
    at, items = data.condition_index(), data.item_index()
    assert data.indication[at["SNOMED|36971009"], items["RxNorm|723"]] == 8
    assert data.indication[at["SNOMED|49436004"], items["RxNorm|11289"]] == 4
    repeated = records()[-1].events_of(records()[-1].events[1].kind)
    assert exposure_weight(repeated) == pytest.approx(np.log1p(2) + np.log1p(20 / 30)
                                                      + np.log1p(40 / 365))  # fmt: skip
    with pytest.raises(DataError, match="No treatment was given to 50 or more"):
        build_treatment_data(records(), min_patients=50)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_ranks_the_candidates_of_the_active_condition(name: str) -> None:
    data = training_episodes(records(), build_treatment_data(records(), min_patients=2))
    model = make_recommender(name, **({"factors": 4.0} if name == "als" else {})).fit(data)
    patient = treated("new", [(ARTHRITIS, IBUPROFEN, 0)])
    context = context_at(patient, START + timedelta(days=1))
    ranked = [data.items[i] for i, _ in rank(model, context, data)]
    assert set(ranked) == {"RxNorm|5640", "RxNorm|7258"}
    restored = make_recommender(name, **model.params).load_state(model.state())
    np.testing.assert_allclose(restored.scores(context, data), model.scores(context, data))


def test_unknown_model_or_parameter() -> None:
    with pytest.raises(ModelError, match="No recommender named 'svd'"):
        make_recommender("svd")
    with pytest.raises(ModelError, match="item_knn takes"):
        make_recommender("item_knn", depth=3)


def test_index_query_holds_out_new_treatments_not_refills() -> None:
    patient = records()[-1]
    query = index_query(patient, seed=0)
    assert query is not None
    assert query.truth == frozenset({"RxNorm|11289"})
    assert query.context.moment == START
    assert not query.context.history
    latest = index_query(patient, last=True)
    assert latest is not None
    assert latest.context.moment == START + timedelta(days=40)
    assert latest.truth == frozenset({"RxNorm|11289"})  # the first course ended on day 10


def test_episodes_hold_the_conditions_of_the_day_and_the_treatments_started_after() -> None:
    data = training_episodes(records(), build_treatment_data(records(), min_patients=2))
    assert data.index_conditions is not None
    assert data.index_new is not None
    assert data.index_started is not None
    assert data.index_ages is not None
    assert data.index_conditions.shape == (27, 3)  # 8 x 2 + 3 x 3 + w0's two afib days
    at, items = data.condition_index(), data.item_index()
    sinusitis = np.flatnonzero(data.index_new[:, at[SINUSITIS.key()]].toarray().ravel())
    started = data.index_started[sinusitis].toarray().sum(axis=0)
    assert started[items[AMOXICILLIN.key()]] == 8
    assert started[items["RxNorm|3640"]] == 3
    assert started[items["RxNorm|11289"]] == 3  # the d patients' warfarin, day 50 (horizon 90)
    assert started.sum() == 14
    assert data.index_started[-2:].toarray().sum() == 2  # w0's first course ended on day 10
    np.testing.assert_allclose(sorted(data.index_ages[-2:]), [55.0, 55.11], atol=0.01)


def test_episode_knn_ranks_for_the_newly_diagnosed_condition() -> None:
    data = training_episodes(records(), build_treatment_data(records(), min_patients=2))
    patient = treated("new", [(SINUSITIS, AMOXICILLIN, 0)])
    arthritis = treated("x", [(ARTHRITIS, IBUPROFEN, 5)]).events[0]
    both = replace(patient, events=tuple(sorted((*patient.events, arthritis),
                                                key=lambda e: e.start)))  # fmt: skip
    context = context_at(both, START + timedelta(days=5))
    assert context.new_conditions == frozenset({ARTHRITIS.key()})
    assert context.conditions == frozenset({ARTHRITIS.key(), SINUSITIS.key()})
    model = make_recommender("episode_knn", new_weight=3.0).fit(data)
    ranked = [data.items[i] for i, _ in rank(model, context, data)]
    assert ranked[:2] == [IBUPROFEN.key(), AMOXICILLIN.key()]  # naproxen: older men only
    popular = make_recommender("most_popular", new_weight=1.0)
    scores = popular.scores(context, data)
    at = data.item_index()
    assert scores[at[IBUPROFEN.key()]] == pytest.approx(2 * 8 / 11)  # arthritis, new that day
    assert scores[at[AMOXICILLIN.key()]] == pytest.approx(8 / 11)
    plain = build_treatment_data(records(), min_patients=2)
    with pytest.raises(ModelError, match="episode_knn needs the training episodes"):
        make_recommender("episode_knn").fit(plain)
    with pytest.raises(ModelError, match=r"needs 1 or more neighbours, not 0\.0"):
        make_recommender("episode_knn", neighbours=0.0).fit(data)
