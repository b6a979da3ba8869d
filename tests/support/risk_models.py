"""A small real risk model (Pima, the four features Synthea supplies) shared by the risk tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clinsight.data.tabular import load_dataset
from clinsight.registry.risk import REGISTRY, RiskModelVersion
from clinsight.registry.stages import Stage
from clinsight.services.risk_training import subset_features, train_risk_model
from tests.support.data import shared_data

SYNTHEA = shared_data() / "fhir" / "synthea-r4"
PIMA_FHIR_FEATURES = ["Glucose", "BloodPressure", "BMI", "Age"]
MODEL_NAME = "pima-synthea"
LOGISTIC = {"logistic": {"model": "logistic"}}


def train_pima_synthea(registry_dir: Path, *, production: bool = True) -> RiskModelVersion:
    """Logistic regression on Pima's Glucose, BloodPressure, BMI, Age; 3-fold CV, one repeat."""
    data_dir = shared_data()
    if not (data_dir / "tabular" / "pima").is_dir():
        pytest.skip("Pima is not in the shared data directory")
    data = subset_features(load_dataset("pima", data_dir), PIMA_FHIR_FEATURES)
    outcome = train_risk_model(
        data, registry_dir=registry_dir, name=MODEL_NAME, candidates=LOGISTIC,
        n_splits=3, n_repeats=1,
    )  # fmt: skip
    assert outcome.version is not None
    if not production:
        return outcome.version
    return REGISTRY.promote(registry_dir, MODEL_NAME, outcome.version.version, Stage.PRODUCTION)


def copy_registry(source: Path, target: Path) -> Path:
    """A private copy of a registry folder for one test."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def synthea_file(index: int = 0) -> Path:
    """One Synthea patient bundle (sorted by name)."""
    if not SYNTHEA.is_dir():
        pytest.skip("the Synthea bundles are not in the shared data directory")
    return sorted(p for p in SYNTHEA.glob("*_*-*.json"))[index]
