"""Findings of binary models with and without decision thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clinsight.data.medmnist import TaskType
from clinsight.errors import RegistryError
from clinsight.evaluation.thresholds import INDETERMINATE
from clinsight.imaging.networks import NetworkConfig
from clinsight.inference.predictors import ImagePredictor
from clinsight.registry.image import get_model
from tests.support.image_models import band, register_tiny

IMAGE = np.random.default_rng(3).random((64, 64), dtype=np.float32)


def test_a_model_registered_without_thresholds_keeps_the_most_probable_class(
    tmp_path: Path,
) -> None:
    model, _ = register_tiny(tmp_path / "reg")
    assert "decision_thresholds" not in json.loads((model.path / "model.json").read_text())
    assert model.decision_thresholds is None
    prediction = ImagePredictor(model).predict(IMAGE)
    assert prediction.decision == prediction.label
    assert prediction.thresholds is None
    assert prediction.label_probability == prediction.probability
    assert prediction.to_dict()["label_probability"] == prediction.probability


def test_a_probability_inside_the_band_is_indeterminate(tmp_path: Path) -> None:
    model, _ = register_tiny(tmp_path / "reg", decision_thresholds=band(0.0, 1.0))
    stored = get_model(tmp_path / "reg", "tiny", verify=True)
    assert stored.decision_thresholds == band(0.0, 1.0)
    card = json.loads((stored.path / "card.json").read_text())
    assert card["decision_thresholds"] == band(0.0, 1.0).to_dict()
    assert "## Decision thresholds (validation split)" in stored.card_path.read_text()
    prediction = ImagePredictor(model).predict(IMAGE)
    assert prediction.decision == INDETERMINATE
    assert prediction.indeterminate
    assert prediction.label_probability is None
    assert prediction.label in model.labels  # the most probable class stays known
    assert prediction.to_dict()["thresholds"]["low"] == 0.0


@pytest.mark.parametrize(("low", "high", "expected"), [(0.0, 0.0, "class1"), (1.0, 1.0, "class0")])
def test_outside_the_band_the_finding_follows_the_cut(
    tmp_path: Path, low: float, high: float, expected: str
) -> None:
    model, _ = register_tiny(tmp_path / "reg", decision_thresholds=band(low, high))
    prediction = ImagePredictor(model).predict(IMAGE)
    assert prediction.decision == expected
    assert prediction.label_probability == prediction.probabilities[expected]


def test_thresholds_need_a_binary_task(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="need a binary task"):
        register_tiny(tmp_path / "reg", config=NetworkConfig("cnn", 1, 3, width=4),
                      task=TaskType.MULTI_CLASS, decision_thresholds=band(0.2, 0.8))  # fmt: skip
