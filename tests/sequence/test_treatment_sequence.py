from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from clinsight.errors import ModelError
from clinsight.recommend.matrix import build_treatment_data, context_at
from clinsight.recommend.models import rank
from clinsight.recommend.safety import shipped_interactions
from clinsight.recommend.split import index_query, training_episodes
from clinsight.recommend.suggest import suggest
from clinsight.registry.recommendation import (
    load_recommendation_model,
    register_recommendation_model,
)
from clinsight.sequence.treatment_sequence import VisitGruRecommender, make_treatment_recommender
from tests.support.recommend import ARTHRITIS, IBUPROFEN, START, records, treated

TINY = {"hidden": 8.0, "epochs": 2.0}


def test_visit_gru_scores_every_treatment_and_round_trips_its_artifact(tmp_path: Path) -> None:
    data = training_episodes(records(), build_treatment_data(records(), min_patients=2))
    assert data.index_samples is not None
    assert len(data.index_samples) == 27
    validation = [q for q in (index_query(r, seed=1) for r in records()) if q is not None]
    model = make_treatment_recommender("visit_gru", **TINY).fit_validated(data, validation)
    patient = treated("new", [(ARTHRITIS, IBUPROFEN, 0)])
    context = context_at(patient, START + timedelta(days=1))
    assert [v.codes for v in context.visits] == [frozenset({ARTHRITIS.key(), IBUPROFEN.key()})]
    scores = model.scores(context, data)
    assert scores.shape == (len(data.items),)
    assert np.all((scores >= 0) & (scores <= 1))
    ranked = {data.items[i] for i, _ in rank(model, context, data)}
    assert ranked == {"RxNorm|5640", "RxNorm|7258"}  # the candidates of the active condition
    shown = suggest(model, data, context, shipped_interactions())
    assert shown.suggestions
    assert "a GRU over the patient's last 1 visits" in shown.suggestions[0].details[0]
    again = make_treatment_recommender("visit_gru", **TINY).fit_validated(data, validation)
    np.testing.assert_allclose(again.scores(context, data), scores)  # seeded
    version = register_recommendation_model(
        tmp_path, name="gru", model=model, data=data, min_support=2, metrics={},
        training={"data_sha256": "0" * 64}, intended_use="tests",
    )  # fmt: skip
    assert (version.path / "model.safetensors").exists()
    assert not list(version.path.glob("*.pkl"))
    assert not list(version.path.glob("*.pt"))
    loaded, loaded_data = load_recommendation_model(version)
    assert loaded.name == "visit_gru"
    np.testing.assert_allclose(loaded.scores(context, loaded_data), scores, rtol=1e-6)


def test_visit_gru_stops_on_a_fifth_of_the_training_patients_without_validation() -> None:
    plain = build_treatment_data(records(), min_patients=2)
    with pytest.raises(ModelError, match="needs the training episodes"):
        make_treatment_recommender("visit_gru", **TINY).fit(plain)
    model = make_treatment_recommender("visit_gru", **TINY).fit(training_episodes(records(), plain))
    assert isinstance(model, VisitGruRecommender)
    assert model.training_["epochs_run"] == 2
    with pytest.raises(ModelError, match=r"No recommender named .svd.*visit_gru"):
        make_treatment_recommender("svd")
