"""Progression use cases on real stays: train and register, evaluate a set, predict a stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.errors import DataError
from clinsight.inference.progression import ProgressionPredictor
from clinsight.registry.progression import get_progression_model
from clinsight.services.progression import evaluate_progression, predict_progression
from tests.support.progression import set_a, tiny_set, train_tiny


@pytest.fixture(scope="module")
def predictor(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ProgressionPredictor:
    root = tmp_path_factory.mktemp("progression-service")
    train_tiny(data_dir, root / "registry", root)
    return ProgressionPredictor(get_progression_model(root / "registry", "tiny"))


def test_training_records_validation_metrics(predictor: ProgressionPredictor) -> None:
    metrics = predictor.version.metrics["validation"]
    assert set(metrics["values"]) == {"auroc", "auprc", "brier", "ece"}
    assert metrics["bootstrap_replicates"] == 20
    assert set(metrics["subgroups"]) == {"sex", "age_band"}
    assert predictor.version.training["train_stays"] + predictor.version.training[
        "validation_stays"] == 36  # fmt: skip


def test_evaluate_any_set_in_the_layout(predictor: ProgressionPredictor, data_dir: Path,
                                        tmp_path: Path) -> None:  # fmt: skip
    folder, outcomes = tiny_set(data_dir, tmp_path, survivors=6, deaths=3)
    report = evaluate_progression(predictor, folder, outcomes, bootstrap=10)
    assert (report["set"], report["n"], report["positives"]) == ("set-x", 9, 3)
    assert 0.0 <= report["values"]["auroc"] <= 1.0


def test_predict_one_stay_with_drivers(predictor: ProgressionPredictor, data_dir: Path) -> None:
    folder, _ = set_a(data_dir)
    result = predict_progression(predictor, folder / "132539.txt")
    assert result.patient_id == "132539"
    assert 0.0 < result.risk < 1.0
    assert len(result.heat) == 48
    assert len(result.heat[0]) == 37
    assert result.method == "integrated gradients"
    assert 1 <= len(result.drivers) <= 5
    assert result.to_dict()["drivers"][0]["variable"] in result.variables
    assert "descriptor Height -1 (not recorded)" in result.skipped[0]


def test_predict_refuses_a_stay_going_back_in_time(predictor: ProgressionPredictor,
                                                   tmp_path: Path) -> None:  # fmt: skip
    stay = tmp_path / "1.txt"
    stay.write_text("Time,Parameter,Value\n00:00,RecordID,1\n05:00,HR,80\n04:00,HR,82\n")
    with pytest.raises(DataError, match="goes backwards"):
        predict_progression(predictor, stay)
