"""Risk models in the registry: a fitted `RiskModel` as a skops artifact with spec, card, sha256.

Layout, beside the image models (``_risk`` cannot be an image model's name)::

    <registry_dir>/_risk/<name>/stages.json
    <registry_dir>/_risk/<name>/<version>/
        model.skops   the fitted RiskModel (skops: no pickle, loaded with a trusted-type list)
        model.json    task and feature spec (types, units, categories), calibration,
                      thresholds, reference sample for explanations, metrics, training
        card.json  card.md  manifest.json (sha256 of every file; artifact = model.skops)

Versions, the staging folder, locks, manifests and stages work as for image models
(`registry.store`, `registry.stages`). Loading refuses any type stored in the artifact that
is not in `TRUSTED_TYPES`, so a tampered file cannot make the loader build arbitrary objects.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io as sio

from clinsight.data.tabular import FeatureType, TaskSpec
from clinsight.errors import IntegrityError, ModelNotFoundError, RegistryError
from clinsight.registry.cards import render_card_markdown
from clinsight.registry.manifest import (
    MANIFEST_FILE,
    json_ready,
    locked,
    read_json,
    sha256_file,
    verify_manifest,
    write_json,
    write_manifest,
)
from clinsight.registry.stages import (
    Stage,
    StageChange,
    change_stage,
    previous_production,
    read_stages,
    record_stage,
    stage_history,
    utc_now,
    write_stages,
)
from clinsight.registry.store import NAME_PATTERN, SHA256_PATTERN, version_numbers
from clinsight.tabular.models import RiskModel

__all__ = [
    "RISK_ROOT",
    "TRUSTED_TYPES",
    "RiskModelVersion",
    "get_risk_model",
    "list_risk_models",
    "load_risk_model",
    "promote_risk_model",
    "register_risk_model",
    "risk_history",
    "rollback_risk_model",
]

RISK_ROOT, SKOPS_FILE, MODEL_FILE = "_risk", "model.skops", "model.json"
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
class RiskModelVersion:
    """A registered risk model version, as read from its folder (the estimator loads lazily)."""

    name: str
    version: int
    path: Path
    stage: Stage
    task: TaskSpec
    calibration: str
    thresholds: dict[str, float]
    reference: dict[str, list[Any]]
    metrics: dict[str, Any]
    training: dict[str, Any]
    created: str
    artifact_sha256: str

    @property
    def card_path(self) -> Path:
        """The Markdown model card."""
        return self.path / "card.md"

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
            "created": self.created, "task": _task_dict(self.task),
            "calibration": self.calibration, "thresholds": self.thresholds,
            "artifact_sha256": self.artifact_sha256, "metrics": self.metrics,
            "training": self.training,
        }  # fmt: skip


def _task_dict(task: TaskSpec) -> dict[str, Any]:
    return {
        "name": task.name, "target": task.target, "positive": task.positive,
        "positive_label": task.positive_label, "sex_column": task.sex_column,
        "age_column": task.age_column,
        "features": {
            f.name: {"type": f.type.value, "unit": f.unit,
                     "categories": list(f.categories) if f.categories else None,
                     "zero_is_missing": f.zero_is_missing}
            for f in task.features
        },
    }  # fmt: skip


def _root(registry_dir: Path, name: str | None = None) -> Path:
    base = Path(registry_dir) / RISK_ROOT
    return base if name is None else base / name


def _check(name: str, model: RiskModel, task: TaskSpec, training: Mapping[str, Any]) -> None:
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            f"Invalid model name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit."
        )
    if not hasattr(model, "feature_types_"):
        raise RegistryError("Fit the RiskModel before registering it.")
    if list(model.feature_types_) != task.feature_names:
        raise RegistryError(
            f"The model's features {list(model.feature_types_)} differ from the task spec's "
            f"{task.feature_names}; register the spec the model was trained with."
        )
    if not SHA256_PATTERN.match(str(training.get("data_sha256", ""))):
        raise RegistryError(
            "training['data_sha256'] must be the sha256 hex digest of the training data; "
            "every registered model carries it."
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
        "limitations": list(limitations),
        "plots": [],
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
) -> RiskModelVersion:
    """Store a fitted `RiskModel` as the next version of `name` (stage candidate).

    Raises:
        RegistryError: invalid name, unfitted model, features that differ from the task,
            missing training['data_sha256'], thresholds not 0 < warning <= critical < 1,
            or non-JSON metrics/training values.
    """
    _check(name, model, task, training)
    levels = dict(thresholds or DEFAULT_THRESHOLDS)
    if not 0 < levels.get("warning", -1) <= levels.get("critical", -1) < 1:
        raise RegistryError(f"thresholds need 0 < warning <= critical < 1; got {levels}.")
    root = _root(registry_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staging.chmod(0o755)
        sio.dump(model, staging / SKOPS_FILE)
        record: dict[str, Any] = {
            "format": 1, "kind": "risk", "name": name, "task": _task_dict(task),
            "calibration": model.calibration, "thresholds": levels,
            "reference": {k: list(v) for k, v in reference.items()}, "metrics": metrics,
            "training": training, "intended_use": intended_use,
        }  # fmt: skip
        with locked(root):
            versions = version_numbers(root)
            version = versions[-1] + 1 if versions else 1
            record = json_ready({**record, "version": version, "created": utc_now()})
            write_json(staging / MODEL_FILE, record)
            card = _risk_card(record, sha256_file(staging / SKOPS_FILE), limitations)
            write_json(staging / "card.json", card)
            (staging / "card.md").write_text(render_card_markdown(card), encoding="utf-8")
            write_manifest(staging, SKOPS_FILE)
            staging.rename(root / str(version))
            state = read_stages(root)
            record_stage(state, version, Stage.CANDIDATE, "registered")
            write_stages(root, state)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return get_risk_model(registry_dir, name, version, verify=False)


def _load_version(folder: Path, stage: Stage) -> RiskModelVersion:
    record = read_json(folder / MODEL_FILE)
    manifest = read_json(folder / MANIFEST_FILE)
    try:
        task = TaskSpec.from_mapping(record["task"])
        return RiskModelVersion(
            name=record["name"], version=int(folder.name), path=folder, stage=stage, task=task,
            calibration=record["calibration"], thresholds=dict(record["thresholds"]),
            reference=dict(record["reference"]), metrics=record["metrics"],
            training=record["training"], created=record["created"],
            artifact_sha256=manifest["artifact_sha256"],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{folder / MODEL_FILE} is malformed ({exc!r}).") from exc


def list_risk_models(registry_dir: Path, name: str | None = None) -> list[RiskModelVersion]:
    """Every registered risk model version (of `name`, if given), by name then version.

    Raises:
        ModelNotFoundError: `name` is given but not registered.
        IntegrityError: a version's model.json or manifest is missing or malformed.
    """
    base = _root(registry_dir)
    names = sorted(
        p.name for p in base.iterdir() if p.is_dir() and version_numbers(p)
    ) if base.is_dir() else []  # fmt: skip
    if name is not None:
        if name not in names:
            known = ", ".join(names) or "none"
            raise ModelNotFoundError(f"No risk model named {name!r}; registered: {known}.")
        names = [name]
    found = []
    for model_name in names:
        stages = read_stages(base / model_name)["versions"]
        for number in version_numbers(base / model_name):
            stage = Stage(stages.get(str(number), Stage.CANDIDATE))
            found.append(_load_version(base / model_name / str(number), stage))
    return found


def get_risk_model(
    registry_dir: Path,
    name: str,
    version: int | None = None,
    stage: Stage | str | None = None,
    *,
    verify: bool = True,
) -> RiskModelVersion:
    """One version of `name`: by number, else the newest at `stage`, else the newest.

    Raises:
        ModelNotFoundError: no such name, version, or version at that stage.
        IntegrityError: with `verify`, a file is missing, added or changed since registration.
    """
    versions = list_risk_models(registry_dir, name)
    wanted = Stage(stage) if stage is not None else None
    matches = [
        v
        for v in versions
        if (version is None or v.version == version) and (wanted is None or v.stage == wanted)
    ]
    if not matches:
        listing = ", ".join(f"v{v.version} ({v.stage})" for v in versions)
        what = f"version {version}" if version is not None else f"{wanted} version"
        raise ModelNotFoundError(f"Risk model {name!r} has no {what}; it has: {listing}.")
    if verify:
        verify_manifest(matches[-1].path)
    return matches[-1]


def load_risk_model(version: RiskModelVersion) -> RiskModel:
    """The fitted estimator of a version, after checking its files and the types it holds.

    Raises:
        IntegrityError: a file changed since registration, or the artifact holds a type
            outside `TRUSTED_TYPES` (it is not loaded).
    """
    verify_manifest(version.path)
    path = version.path / SKOPS_FILE
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - TRUSTED_TYPES)
    if untrusted:
        raise IntegrityError(
            f"{path} holds types outside the trusted list ({', '.join(untrusted)}); "
            f"it was not loaded. Register the model again from a trusted training run."
        )
    model = sio.load(path, trusted=sorted(TRUSTED_TYPES))
    if not isinstance(model, RiskModel):
        raise IntegrityError(f"{path} holds a {type(model).__name__}, not a RiskModel.")
    return model


def promote_risk_model(
    registry_dir: Path, name: str, version: int, stage: Stage | str, *, note: str = ""
) -> RiskModelVersion:
    """Move a version to `stage`; promoting to production archives the current production one.

    Raises:
        ModelNotFoundError: no such name or version.
        IntegrityError: the version fails verification on its way to production.
    """
    target = Stage(stage)
    get_risk_model(registry_dir, name, version, verify=target is Stage.PRODUCTION)
    change_stage(_root(registry_dir, name), version, target, note)
    return get_risk_model(registry_dir, name, version, verify=False)


def risk_history(registry_dir: Path, name: str) -> list[StageChange]:
    """The stage changes of risk model `name`, oldest first.

    Raises:
        ModelNotFoundError: `name` is not registered.
    """
    list_risk_models(registry_dir, name)
    return stage_history(read_stages(_root(registry_dir, name)))


def rollback_risk_model(registry_dir: Path, name: str) -> RiskModelVersion:
    """Put the previous production version of `name` back into production.

    Raises:
        ModelNotFoundError: no such model or no earlier production version.
    """
    list_risk_models(registry_dir, name)
    version = previous_production(_root(registry_dir, name))
    if version is None:
        raise ModelNotFoundError(f"Risk model {name!r} has no earlier production version.")
    return promote_risk_model(registry_dir, name, version, Stage.PRODUCTION, note="rollback")
