"""Train → evaluate → register, and the registered model re-evaluated through ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clinsight.data.medmnist import Split, TaskType, load_medmnist
from clinsight.imaging.transforms import Preprocess
from clinsight.services.training import (
    ImageTrainingOutcome,
    evaluate_registered_model,
    split_logits,
    validation_thresholds,
)
from tests.support.data import shared_data


def test_outcome_is_registered_with_card_metrics_and_provenance(
    trained: ImageTrainingOutcome,
) -> None:
    model = trained.model
    assert model is not None
    assert (model.name, model.version, str(model.stage)) == ("breastmnist", 1, "candidate")
    assert model.labels == ("malignant", "normal, benign")
    assert model.positive_index == 0
    assert model.training["data_sha256"] == trained.train.data_sha256
    assert model.training["splits"] == {"train": 546, "val": 78, "test": 156}
    assert model.temperature == pytest.approx(trained.report.temperature)
    card = model.card_path.read_text()
    assert "malignant" in card
    assert "95%" in card
    saved = json.loads((trained.run_dir / "evaluation.json").read_text())
    assert saved["evaluation"]["metrics"]["n"] == 156
    for plot in ("roc.png", "reliability.png"):
        assert (trained.run_dir / plot).stat().st_size > 1000


def test_onnx_evaluation_reproduces_the_training_time_figures(
    trained: ImageTrainingOutcome, tmp_path: Path
) -> None:
    assert trained.model is not None
    registry = trained.model.path.parent.parent
    model, report = evaluate_registered_model(
        shared_data(), registry, "breastmnist", out_dir=tmp_path, n_bootstrap=50
    )
    assert model.version == 1
    for name, value in trained.report.metrics.values.items():
        assert report.metrics.values[name] == pytest.approx(value, abs=1e-3, nan_ok=True)
    assert report.temperature == pytest.approx(trained.report.temperature, rel=1e-3)
    assert np.isfinite(report.ece_after)
    assert (tmp_path / "roc.png").exists()


def test_binary_models_are_registered_with_thresholds_chosen_on_validation(
    trained: ImageTrainingOutcome,
) -> None:
    model = trained.model
    assert model is not None
    data = load_medmnist(shared_data(), "breastmnist", 28)
    val_logits, val_labels = split_logits(
        trained.train.network, data, Preprocess(trained.train.preprocess), Split.VAL
    )
    assert model.calibration is not None
    expected = validation_thresholds(val_logits, val_labels, model.calibration, TaskType.BINARY, 0)
    assert expected is not None
    assert model.decision_thresholds == expected
    assert (expected.n_positive, expected.n_negative) == (21, 57)  # malignant is positive
    assert expected.sensitivity >= 0.95
    assert expected.specificity >= 0.95
    saved = json.loads((trained.run_dir / "evaluation.json").read_text())
    assert saved["decision_thresholds"] == model.to_dict()["decision_thresholds"]
    assert (
        validation_thresholds(val_logits, val_labels, model.calibration, TaskType.MULTI_CLASS, 0)
        is None
    )


def test_the_card_records_the_choices_made_on_validation(trained: ImageTrainingOutcome) -> None:
    model = trained.model
    assert model is not None
    assert model.calibration is not None
    assert model.decision_rule is not None
    assert model.calibration == trained.report.calibrator
    assert set(model.calibration.evidence["ece"]) == {"none", "temperature", "vector"}
    assert model.decision_rule.name in model.decision_rule.evidence["scores"]
    weighting = model.training["class_weighting"]
    assert set(weighting["validation_auc"]) == {"none", "inverse", "effective"}
    assert model.training["early_stopping"].startswith("stop after max(10, 0.25 x planned)")
    card = json.loads((model.path / "card.json").read_text())
    assert card["decision_rule"]["name"] == model.decision_rule.name
    assert card["calibration"]["parameters"]["method"] == model.calibration.method
    assert "balanced_accuracy" in card["metrics"]["metrics"]["values"]
