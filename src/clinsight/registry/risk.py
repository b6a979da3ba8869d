"""Risk models in the registry: a fitted `RiskModel` as a skops artifact with spec, card, sha256.

Layout, beside the image models (``_risk`` cannot be an image model's name)::

    <registry_dir>/_risk/<name>/stages.json
    <registry_dir>/_risk/<name>/<version>/
        model.skops   the fitted RiskModel (skops: no pickle, loaded with a trusted-type list)
        model.json    task and feature spec (types, units, categories), calibration,
                      thresholds, reference sample for explanations, metrics, training,
                      the validated population (ages, sexes, site; `data.population`)
        card.json  card.md  manifest.json (sha256 of every file; artifact = model.skops)

Versions, the staging folder, locks, manifests and stages work as for every kind
(`registry.versions`). Loading refuses any type stored in the artifact that
is not in `TRUSTED_TYPES`, so a tampered file cannot make the loader build arbitrary objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import skops.io as sio

from clinsight.data.population import ValidatedPopulation
from clinsight.data.tabular import FeatureType, TaskSpec
from clinsight.errors import IntegrityError, RegistryError
from clinsight.registry.manifest import verify_manifest
from clinsight.registry.versions import (
    KindRegistry,
    ModelKind,
    RegisteredVersion,
    check_registration,
    publish_version,
    staging_folder,
)
from clinsight.tabular.models import RiskModel

__all__ = [
    "REGISTRY",
    "RISK_ROOT",
    "TRUSTED_TYPES",
    "RiskModelVersion",
    "get_risk_model",
    "list_risk_models",
    "load_risk_model",
    "load_trusted",
    "register_risk_model",
    "task_dict",
]

T = TypeVar("T")

RISK_ROOT, SKOPS_FILE = "_risk", "model.skops"
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "clinsight.tabular.models.RiskModel",
        "clinsight.tabular.pipeline.FeatureSelector",
        "clinsight.tabular.pipeline.LogOddsClassifier",
        "clinsight.tabular.pipeline.QuantileClipper",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)
"""Types beyond skops' defaults that a risk model artifact may hold."""

DEFAULT_THRESHOLDS = {"warning": 0.2, "critical": 0.5}


@dataclass(frozen=True)
class RiskModelVersion(RegisteredVersion):
    """A registered risk model version, as read from its folder (the estimator loads lazily;
    ``population`` is None for versions registered before it was recorded)."""

    task: TaskSpec
    calibration: str
    thresholds: dict[str, float]
    reference: dict[str, list[Any]]
    population: ValidatedPopulation | None = None

    @property
    def reference_frame(self) -> pd.DataFrame:
        """The stored reference sample (feature quantiles, no patient rows) for explanations."""
        frame = pd.DataFrame(self.reference)
        for feature in self.task.features:
            if feature.type is not FeatureType.CATEGORICAL:
                frame[feature.name] = frame[feature.name].astype(float)
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "created": self.created, "task": task_dict(self.task),
            "calibration": self.calibration, "thresholds": self.thresholds,
            "artifact_sha256": self.artifact_sha256, "metrics": self.metrics,
            "training": self.training,
            "population": self.population.to_dict() if self.population else None,
        }  # fmt: skip


def task_dict(task: TaskSpec) -> dict[str, Any]:
    """The task spec in the JSON form `TaskSpec.from_mapping` reads (also used by survival)."""
    return {
        "name": task.name, "target": task.target, "positive": task.positive,
        "positive_label": task.positive_label, "sex_column": task.sex_column,
        "age_column": task.age_column, "sex_codes": task.sex_codes,
        "population_sex": task.population_sex, "site": task.site,
        "features": {
            f.name: {"type": f.type.value, "unit": f.unit,
                     "categories": list(f.categories) if f.categories else None,
                     "zero_is_missing": f.zero_is_missing,
                     "plausible": f.plausible.to_dict() if f.plausible else None}
            for f in task.features
        },
    }  # fmt: skip


def _from_record(record: dict[str, Any], common: dict[str, Any]) -> RiskModelVersion:
    population = record.get("population")
    return RiskModelVersion(
        **common, task=TaskSpec.from_mapping(record["task"]), calibration=record["calibration"],
        thresholds=dict(record["thresholds"]), reference=dict(record["reference"]),
        population=ValidatedPopulation.from_mapping(population) if population else None,
    )  # fmt: skip


REGISTRY = KindRegistry(
    kind=ModelKind.RISK,
    noun="risk model",
    folder=RISK_ROOT,
    resource="risk_model",
    build=_from_record,
    unknown="No risk model named {name!r}; registered: {known}.",
)
list_risk_models = REGISTRY.versions
get_risk_model = REGISTRY.get


def _check(model: RiskModel, task: TaskSpec) -> None:
    if not hasattr(model, "feature_types_"):
        raise RegistryError("Fit the RiskModel before registering it.")
    if list(model.feature_types_) != task.feature_names:
        raise RegistryError(
            f"The model's features {list(model.feature_types_)} differ from the task spec's "
            f"{task.feature_names}; register the spec the model was trained with."
        )


def _risk_card(
    record: Mapping[str, Any], artifact_sha256: str, limitations: Sequence[str]
) -> dict[str, Any]:
    """The card in the shape `render_card_markdown` renders (as image models' cards)."""
    task = record["task"]
    return {
        "model": {
            "name": record["name"], "version": record["version"], "created": record["created"],
            "architecture": f"{record['training'].get('model', 'risk model')} (scikit-learn)",
            "artifact_sha256": artifact_sha256,
        },
        "intended_use": record["intended_use"],
        "outputs": {
            "task": "binary risk (calibrated probability)",
            "labels": [f"not {task['positive_label']}", task["positive_label"]],
            "positive_label": task["positive_label"],
        },
        "preprocessing": {"features": task["features"], "thresholds": record["thresholds"]},
        "training": record["training"],
        "metrics": record["metrics"],
        "calibration": {"method": record["calibration"]},
        "limitations": list(dict.fromkeys(limitations)),
        "plots": [],
        **({"population": record["population"]} if record.get("population") else {}),
    }  # fmt: skip


def register_risk_model(
    registry_dir: Path,
    *,
    name: str,
    model: RiskModel,
    task: TaskSpec,
    reference: Mapping[str, Sequence[Any]],
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    thresholds: Mapping[str, float] | None = None,
    intended_use: str,
    limitations: Sequence[str] = (),
    population: ValidatedPopulation | None = None,
) -> RiskModelVersion:
    """Store a fitted `RiskModel` as the next version of `name` (stage candidate), with the
    `population` it was trained and validated on (assessments outside it are flagged).

    Raises:
        RegistryError: invalid name, unfitted model, features that differ from the task,
            missing training['data_sha256'], thresholds not 0 < warning <= critical < 1,
            or non-JSON metrics/training values.
    """
    check_registration(name, training)
    _check(model, task)
    levels = dict(thresholds or DEFAULT_THRESHOLDS)
    if not 0 < levels.get("warning", -1) <= levels.get("critical", -1) < 1:
        raise RegistryError(f"thresholds need 0 < warning <= critical < 1; got {levels}.")
    root = REGISTRY.root(registry_dir, name)
    with staging_folder(root) as staging:
        sio.dump(model, staging / SKOPS_FILE)
        record: dict[str, Any] = {
            "format": 1, "kind": "risk", "name": name, "task": task_dict(task),
            "calibration": model.calibration, "thresholds": levels,
            "reference": {k: list(v) for k, v in reference.items()}, "metrics": metrics,
            "training": training, "intended_use": intended_use,
            "population": population.to_dict() if population else None,
        }  # fmt: skip
        version = publish_version(
            root, staging, record, SKOPS_FILE, lambda r, sha: _risk_card(r, sha, limitations)
        )
    return get_risk_model(registry_dir, name, version, verify=False)


def load_risk_model(version: RiskModelVersion) -> RiskModel:
    """The fitted estimator of a version, after checking its files and the types it holds.

    Raises:
        IntegrityError: a file changed since registration, or the artifact holds a type
            outside `TRUSTED_TYPES` (it is not loaded).
    """
    verify_manifest(version.path)
    return load_trusted(version.path / SKOPS_FILE, TRUSTED_TYPES, RiskModel)


def load_trusted(path: Path, trusted: frozenset[str], expected: type[T]) -> T:
    """The `expected` object stored at `path` (skops), loaded only if every type it holds is
    among skops' defaults or `trusted`.

    Raises:
        IntegrityError: the file holds a type outside `trusted` (it is not loaded), or holds
            something other than an `expected`.
    """
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - trusted)
    if untrusted:
        raise IntegrityError(
            f"{path} holds types outside the trusted list ({', '.join(untrusted)}); "
            f"it was not loaded. Register the model again from a trusted training run."
        )
    loaded = sio.load(path, trusted=sorted(trusted))
    if not isinstance(loaded, expected):
        raise IntegrityError(f"{path} holds a {type(loaded).__name__}, not a {expected.__name__}.")
    return loaded
