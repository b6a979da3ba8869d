"""Risk models in the registry: skops artifact, spec, card, manifest, trusted types, stages."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from clinsight.data.tabular import PIMA_RANGES, load_dataset
from clinsight.errors import IntegrityError, ModelNotFoundError, RegistryError
from clinsight.registry.image import list_models
from clinsight.registry.risk import (
    REGISTRY,
    get_risk_model,
    list_risk_models,
    load_risk_model,
    register_risk_model,
)
from clinsight.registry.stages import Stage
from clinsight.services.risk_training import reference_sample, subset_features
from clinsight.tabular.models import RiskModel
from tests.support.data import shared_data
from tests.support.risk_models import MODEL_NAME, PIMA_FHIR_FEATURES, train_pima_synthea


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("risk-registry")
    train_pima_synthea(root, production=False)
    return root


def test_version_folder_holds_artifact_spec_card_and_manifest(registry: Path) -> None:
    version = get_risk_model(registry, MODEL_NAME, 1)
    files = sorted(p.name for p in version.path.iterdir())
    assert files == ["card.json", "card.md", "manifest.json", "model.json", "model.skops"]
    record = json.loads((version.path / "model.json").read_text())
    assert record["kind"] == "risk"
    assert record["task"]["features"]["Glucose"] == {
        "type": "numeric", "unit": "mg/dL (2-h OGTT)", "categories": None,
        "zero_is_missing": True, "plausible": PIMA_RANGES["Glucose"].to_dict(),
    }  # fmt: skip
    assert version.task.features[0].plausible == PIMA_RANGES["Glucose"]  # read back
    assert record["thresholds"] == {"warning": 0.2, "critical": 0.5}
    assert record["calibration"] == "sigmoid"
    assert len(record["training"]["data_sha256"]) == 64
    assert version.task.feature_names == PIMA_FHIR_FEATURES
    assert version.stage is Stage.CANDIDATE


def test_card_reports_cv_metrics_with_intervals_subgroups_and_limitations(registry: Path) -> None:
    version = get_risk_model(registry, MODEL_NAME, 1)
    card = version.card_path.read_text()
    assert "| At threshold / AUC | 0.8" in card
    assert "(95% CI 0." in card
    assert "| Cross validation / ECE / Mean |" in card
    assert "| Subgroups / Age band / <40 / AUC |" in card
    assert "## Limitations" in card
    assert "validated externally" in card
    assert f"`{version.artifact_sha256}`" in card
    metrics = version.metrics
    assert metrics["cross_validation"]["auc"]["mean"] > 0.8
    assert metrics["cross_validation"]["ece"]["mean"] < 0.06


def test_the_card_states_the_validated_population(registry: Path) -> None:
    version = get_risk_model(registry, MODEL_NAME, 1)
    assert version.population is not None
    assert version.population.describe() == "female, age 21–81"
    card = version.card_path.read_text()
    assert ("## Validated population\n\nTrained and validated on: **female, age 21–81**.") in card
    assert "| Age (years), min–max | 21–81 |" in card
    assert "| Age (years), 2.5th–97.5th percentile | 21–63 |" in card
    assert "| Sex | female 768 (100%) |" in card
    assert "| Site / data set | Pima Indians diabetes (NIDDK; women of Pima heritage" in card
    assert "like those of Pima Indians diabetes" in card  # the intended use names it
    record = json.loads((version.path / "card.json").read_text())
    assert record["population"]["sex"] == {"female": 768}
    assert version.to_dict()["population"]["description"] == "female, age 21–81"


def test_loaded_model_predicts_like_the_trained_one(registry: Path) -> None:
    data = subset_features(load_dataset("pima", shared_data()), PIMA_FHIR_FEATURES)
    model = load_risk_model(get_risk_model(registry, MODEL_NAME, 1))
    refit = RiskModel(**model.get_params()).fit(data.X, data.y.to_numpy())
    np.testing.assert_allclose(
        model.predict_proba(data.X.head(20)), refit.predict_proba(data.X.head(20)), atol=1e-12
    )


def test_reference_sample_holds_quantiles_not_patients(registry: Path) -> None:
    data = subset_features(load_dataset("pima", shared_data()), PIMA_FHIR_FEATURES)
    sample = reference_sample(data.X, data.spec, size=5)
    assert sample["Age"] == pytest.approx(
        data.X["Age"].quantile([0.1, 0.3, 0.5, 0.7, 0.9]).tolist()
    )
    empty = reference_sample(data.X.assign(BMI=float("nan")), data.spec, size=3)
    assert empty["BMI"] == [None, None, None]
    frame = get_risk_model(registry, MODEL_NAME, 1).reference_frame
    assert list(frame.columns) == PIMA_FHIR_FEATURES
    assert len(frame) == 25


def test_a_changed_artifact_is_refused(registry: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "reg"
    shutil.copytree(registry, copy)
    version = get_risk_model(copy, MODEL_NAME, 1, verify=False)
    with (version.path / "model.skops").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match="changed after registration"):
        load_risk_model(version)


class HomeMadeClassifier(LogisticRegression):  # type: ignore[misc]
    """A class skops does not know: the loader must not build it."""


def test_an_artifact_with_an_untrusted_type_is_not_loaded(tmp_path: Path) -> None:
    data = subset_features(load_dataset("pima", shared_data()), PIMA_FHIR_FEATURES)
    model = RiskModel(feature_types=data.feature_types, model=HomeMadeClassifier())
    model.fit(data.X.head(200), data.y.to_numpy()[:200])
    version = register_risk_model(
        tmp_path, name="svc", model=model, task=data.spec, reference={}, metrics={},
        training={"data_sha256": data.sha256}, intended_use="test",
    )  # fmt: skip
    assert version.population is None  # none given: not recorded, so never checked
    assert "## Validated population" not in version.card_path.read_text()
    with pytest.raises(
        IntegrityError,
        match=r"outside the trusted list \(tests\.registry\.test_risk\.HomeMadeClassifier\)",
    ):
        load_risk_model(version)


def test_registration_refuses_bad_requests(registry: Path, tmp_path: Path) -> None:
    model = load_risk_model(get_risk_model(registry, MODEL_NAME, 1))
    data = subset_features(load_dataset("pima", shared_data()), PIMA_FHIR_FEATURES)
    register = partial(
        register_risk_model, tmp_path, model=model, reference={}, metrics={}, intended_use="test"
    )
    good = {"data_sha256": data.sha256}
    with pytest.raises(RegistryError, match="Invalid model name 'Bad Name'"):
        register(name="Bad Name", task=data.spec, training=good)
    with pytest.raises(RegistryError, match="data_sha256"):
        register(name="x", task=data.spec, training={})
    other = subset_features(data, ["Glucose", "BMI"]).spec
    with pytest.raises(RegistryError, match="differ from the task spec"):
        register(name="x", task=other, training=good)
    with pytest.raises(RegistryError, match="0 < warning <= critical < 1"):
        register(
            name="x", task=data.spec, training=good, thresholds={"warning": 0.6, "critical": 0.5}
        )


def test_stages_promotion_and_rollback_like_image_models(registry: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "reg"
    shutil.copytree(registry, root)
    v1 = get_risk_model(root, MODEL_NAME, 1)
    model = load_risk_model(v1)
    register_risk_model(
        root, name=MODEL_NAME, model=model, task=v1.task, reference=v1.reference,
        metrics=v1.metrics, training=v1.training, intended_use="v2",
    )  # fmt: skip
    REGISTRY.promote(root, MODEL_NAME, 1, Stage.PRODUCTION)
    REGISTRY.promote(root, MODEL_NAME, 2, Stage.PRODUCTION)
    assert [(v.version, v.stage) for v in list_risk_models(root)] == [
        (1, Stage.ARCHIVED), (2, Stage.PRODUCTION),
    ]  # fmt: skip
    assert REGISTRY.rollback(root, MODEL_NAME).version == 1
    assert get_risk_model(root, MODEL_NAME, stage=Stage.PRODUCTION).version == 1
    assert [(c.version, c.to_stage) for c in REGISTRY.history(root, MODEL_NAME)][-2:] == [
        (2, Stage.ARCHIVED), (1, Stage.PRODUCTION),
    ]  # fmt: skip
    assert list_models(root) == []  # image listings do not see risk models
    with pytest.raises(ModelNotFoundError, match="No risk model named 'nope'"):
        get_risk_model(root, "nope")
