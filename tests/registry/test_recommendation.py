from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from clinsight.errors import IntegrityError, RegistryError
from clinsight.recommend.matrix import build_treatment_data, context_at
from clinsight.recommend.models import make_recommender
from clinsight.recommend.split import training_episodes
from clinsight.registry.recommendation import (
    ARRAYS_FILE,
    get_recommendation_model,
    load_recommendation_model,
    register_recommendation_model,
)
from tests.support.recommend import ARTHRITIS, IBUPROFEN, START, records, register_tiny, treated


def test_round_trip_gives_the_same_scores(tmp_path: Path) -> None:
    register_tiny(tmp_path)
    version = get_recommendation_model(tmp_path, "tiny")
    assert (version.recommender, version.min_support, version.items) == ("user_knn", 2, 5)
    assert version.params["neighbours"] == 5.0
    model, data = load_recommendation_model(version)
    fresh = build_treatment_data(records(), min_patients=2)
    reference = make_recommender("user_knn", neighbours=5.0).fit(fresh)
    context = context_at(treated("n", [(ARTHRITIS, IBUPROFEN, 0)]), START + timedelta(days=1))
    np.testing.assert_allclose(model.scores(context, data), reference.scores(context, fresh))
    assert "treatment recommender" in (version.path / "card.md").read_text()
    assert not list(version.path.glob("*.pkl"))
    assert (version.path / ARRAYS_FILE).is_file()


def test_tampered_arrays_are_refused(tmp_path: Path) -> None:
    register_tiny(tmp_path)
    version = get_recommendation_model(tmp_path, "tiny")
    path = version.path / ARRAYS_FILE
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError):
        load_recommendation_model(version)


def test_registration_needs_the_data_hash(tmp_path: Path) -> None:
    data = build_treatment_data(records(), min_patients=2)
    with pytest.raises(RegistryError, match="data_sha256"):
        register_recommendation_model(
            tmp_path, name="x", model=make_recommender("most_popular").fit(data), data=data,
            min_support=2, metrics={}, training={}, intended_use="tests",
        )  # fmt: skip


def test_the_episode_model_round_trips_with_its_episodes(tmp_path: Path) -> None:
    fresh = training_episodes(records(), build_treatment_data(records(), min_patients=2))
    model = make_recommender("episode_knn", neighbours=10.0).fit(fresh)
    register_recommendation_model(
        tmp_path, name="ep", model=model, data=fresh, min_support=2, metrics={},
        training={"data_sha256": "0" * 64}, intended_use="tests",
    )  # fmt: skip
    loaded, data = load_recommendation_model(get_recommendation_model(tmp_path, "ep"))
    assert data.index_started is not None
    assert data.index_started.shape == (27, 5)
    context = context_at(treated("n", [(ARTHRITIS, IBUPROFEN, 0)]), START + timedelta(days=1))
    np.testing.assert_allclose(loaded.scores(context, data), model.scores(context, fresh))
