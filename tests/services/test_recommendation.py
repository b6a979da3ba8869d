from __future__ import annotations

from clinsight.data.longitudinal import Cohort, LoadReport
from clinsight.recommend.safety import shipped_interactions
from clinsight.services.recommendation import choose_parameters, prepare
from tests.support.recommend import records


def test_parameters_and_set_size_are_chosen_on_validation() -> None:
    people = tuple(records())
    renamed = []
    for copy in range(6):
        for record in people:
            renamed.append(type(record)(f"{record.patient_id}-{copy}", record.birth_date,
                                        record.sex, events=record.events))  # fmt: skip
    prepared = prepare(Cohort(tuple(renamed), LoadReport("synthetic")), seed=0)
    assert prepared.train_patients + len(prepared.validation) + len(prepared.test) == 72
    grid = [{"prior_weight": 0.0}, {"prior_weight": 1.0}]
    model, size, figures = choose_parameters("item_knn", prepared, shipped_interactions(),
                                             grid=grid)  # fmt: skip
    assert [t["params"] for t in figures["tried"]] == grid
    best = max(figures["tried"], key=lambda t: t["validation_ndcg_at_10"])
    assert figures["chosen"] == best["params"] == {k: model.params[k] for k in best["params"]}
    assert 1 <= size <= 5
    assert figures["validation"]["queries"] == len(prepared.validation)
