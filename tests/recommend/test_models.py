from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from clinsight.errors import DataError, ModelError
from clinsight.recommend.matrix import build_treatment_data, context_at, exposure_weight
from clinsight.recommend.models import MODELS, make_recommender, rank
from clinsight.recommend.split import index_query
from tests.support.recommend import ARTHRITIS, IBUPROFEN, START, records, treated


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
    data = build_treatment_data(records(), min_patients=2)
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
