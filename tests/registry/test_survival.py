"""Survival models in the registry: data artifacts (skops, safetensors), card, tampering."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from clinsight.data.survival import load_survival_dataset
from clinsight.errors import IntegrityError, RegistryError
from clinsight.registry.kinds import StageAction, change_stage, kind_registry
from clinsight.registry.survival import (
    get_survival_model,
    load_survival_model,
    register_survival_model,
)
from clinsight.registry.versions import ModelKind
from clinsight.tabular.survival import SurvivalModel
from tests.support.survival_models import SURVIVAL_MODEL

SHA = "0" * 64


@pytest.fixture
def registry(survival_registry: Path) -> Path:
    return survival_registry


def test_the_card_carries_population_follow_up_censoring_and_the_ph_check(registry: Path) -> None:
    version = get_survival_model(registry, SURVIVAL_MODEL)
    assert version.population["rows"] == 686
    assert version.population["censoring_rate"] == pytest.approx(0.5641)
    assert version.max_horizon_days == 2195.0
    assert version.proportional_hazards is not None
    assert "tgrade" in version.proportional_hazards["features"]
    card = version.card_path.read_text()
    assert "Population / Censoring rate | 0.5641" in card
    assert "Proportional hazards check / Meaning" in card
    assert kind_registry("survival") is kind_registry(ModelKind.SURVIVAL)
    model = load_survival_model(version)
    data = load_survival_dataset("gbsg2")
    assert model.predict_survival(data.X.iloc[:2], [365.25]).shape == (2, 1)


def test_a_tampered_artifact_is_not_loaded(registry: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(registry, copy)
    version = get_survival_model(copy, SURVIVAL_MODEL, verify=False)
    with (version.path / "model.skops").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(IntegrityError):
        load_survival_model(version)


def test_stage_changes_work_for_the_survival_kind(registry: Path, tmp_path: Path) -> None:
    copy = tmp_path / "stages"
    shutil.copytree(registry, copy)
    changed = change_stage(copy, ModelKind.SURVIVAL, SURVIVAL_MODEL, StageAction.ARCHIVE, 1)
    assert str(changed.stage) == "archived"
    assert str(get_survival_model(registry, SURVIVAL_MODEL).stage) == "production"


def test_the_neural_model_is_stored_as_safetensors(tmp_path: Path) -> None:
    data = load_survival_dataset("gbsg2")
    model = SurvivalModel("neural_cox", data.spec.feature_types, params={"max_epochs": 20})
    model.fit(data.X.iloc[:200], data.y[:200])
    with pytest.raises(RegistryError, match="data_sha256"):
        register_survival_model(
            tmp_path, name="deep", model=model, task=data.spec, population={},
            max_horizon_days=1000, reference={}, metrics={}, training={}, intended_use="test",
        )  # fmt: skip
    version = register_survival_model(
        tmp_path, name="deep", model=model, task=data.spec, population={},
        max_horizon_days=1000, reference={}, metrics={}, training={"data_sha256": SHA},
        intended_use="test",
    )  # fmt: skip
    assert (version.path / "network.safetensors").is_file()
    loaded = load_survival_model(get_survival_model(tmp_path, "deep"))
    expected = model.predict_survival(data.X.iloc[:3], [500.0])
    assert np.allclose(loaded.predict_survival(data.X.iloc[:3], [500.0]), expected)


def test_an_ensemble_is_stored_and_loaded_with_trusted_types(tmp_path: Path) -> None:
    data = load_survival_dataset("gbsg2")
    members = {"members": [{"model": "coxnet"}, {"model": "gradient_boosting"}]}
    model = SurvivalModel("ensemble", data.spec.feature_types, params=members, n_trees=5)
    model.fit(data.X.iloc[:200], data.y[:200])
    version = register_survival_model(
        tmp_path, name="ensemble", model=model, task=data.spec, population={},
        max_horizon_days=1000, reference={}, metrics={}, training={"data_sha256": SHA},
        intended_use="test",
    )  # fmt: skip
    loaded = load_survival_model(get_survival_model(tmp_path, "ensemble"))
    expected = model.predict_survival(data.X.iloc[:3], [500.0])
    assert np.allclose(loaded.predict_survival(data.X.iloc[:3], [500.0]), expected)
    assert np.allclose(loaded.predict(data.X.iloc[:3]), model.predict(data.X.iloc[:3]))
    assert version.artifact_sha256
