"""Survival models in the registry: a fitted `SurvivalModel` as data, with spec, card, sha256.

Layout, beside the other kinds::

    <registry_dir>/_survival/<name>/stages.json
    <registry_dir>/_survival/<name>/<version>/
        model.skops          the fitted SurvivalModel (skops, loaded with a trusted-type list)
        network.safetensors  the DeepSurv network's weights (neural_cox only; the skops file
                             then holds the model without them)
        model.json           task spec, population (rows, events, censoring, follow-up,
                             feature ranges, Kaplan-Meier curve), horizons, reference values,
                             proportional-hazards check, metrics, training
        card.json  card.md  manifest.json

Loading verifies the manifest and refuses any stored type outside `TRUSTED_TYPES`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio

from clinsight.data.tabular import TaskSpec
from clinsight.errors import IntegrityError, RegistryError
from clinsight.registry.manifest import verify_manifest
from clinsight.registry.risk import TRUSTED_TYPES as RISK_TRUSTED_TYPES
from clinsight.registry.risk import load_trusted, task_dict
from clinsight.registry.versions import (
    KindRegistry,
    ModelKind,
    RegisteredVersion,
    check_registration,
    publish_version,
    staging_folder,
)
from clinsight.tabular.survival import SurvivalModel
from clinsight.tabular.survival_estimators import NeuralCoxSurvival

__all__ = [
    "REGISTRY",
    "SURVIVAL_ROOT",
    "TRUSTED_TYPES",
    "SurvivalModelVersion",
    "get_survival_model",
    "list_survival_models",
    "load_survival_model",
    "register_survival_model",
]

SURVIVAL_ROOT, SKOPS_FILE, WEIGHTS_FILE = "_survival", "model.skops", "network.safetensors"
TRUSTED_TYPES: frozenset[str] = RISK_TRUSTED_TYPES | frozenset(
    {
        "clinsight.tabular.pipeline.SkewedLog1p",
        "clinsight.tabular.survival.SurvivalModel",
        "clinsight.tabular.survival_estimators.CoxnetCV",
        "clinsight.tabular.survival_estimators.NeuralCoxSurvival",
        "clinsight.tabular.survival_estimators.RankEnsembleSurvival",
        "sksurv.ensemble.boosting.GradientBoostingSurvivalAnalysis",
        "sksurv.ensemble.forest.RandomSurvivalForest",
        "sksurv.ensemble.survival_loss.CoxPH",
        "sksurv.functions.StepFunction",
        "sksurv.linear_model.coxnet.CoxnetSurvivalAnalysis",
        "sksurv.linear_model.coxph.BreslowEstimator",
        "sksurv.linear_model.coxph.CoxPHSurvivalAnalysis",
        "sksurv.tree.tree.SurvivalTree",
    }
)
"""Types beyond skops' defaults that a survival model artifact may hold."""


@dataclass(frozen=True)
class SurvivalModelVersion(RegisteredVersion):
    """A registered survival model version (the estimator loads lazily)."""

    task: TaskSpec
    population: dict[str, Any]
    horizons_years: tuple[float, ...]
    max_horizon_days: float
    reference: dict[str, Any]
    proportional_hazards: dict[str, Any] | None

    @property
    def event_label(self) -> str:
        """What the event is (e.g. ``recurrence or death``)."""
        return self.task.positive_label

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "created": self.created, "task": task_dict(self.task),
            "population": {k: v for k, v in self.population.items() if k != "kaplan_meier"},
            "horizons_years": list(self.horizons_years),
            "max_horizon_days": self.max_horizon_days,
            "proportional_hazards": self.proportional_hazards,
            "artifact_sha256": self.artifact_sha256, "metrics": self.metrics,
            "training": self.training,
        }  # fmt: skip


def _from_record(record: dict[str, Any], common: dict[str, Any]) -> SurvivalModelVersion:
    return SurvivalModelVersion(
        **common, task=TaskSpec.from_mapping(record["task"]),
        population=dict(record["population"]),
        horizons_years=tuple(float(h) for h in record["horizons_years"]),
        max_horizon_days=float(record["max_horizon_days"]), reference=dict(record["reference"]),
        proportional_hazards=record.get("proportional_hazards"),
    )  # fmt: skip


REGISTRY = KindRegistry(
    kind=ModelKind.SURVIVAL,
    noun="survival model",
    folder=SURVIVAL_ROOT,
    resource="survival_model",
    build=_from_record,
    unknown="No survival model named {name!r}; registered: {known}.",
)
list_survival_models = REGISTRY.versions
get_survival_model = REGISTRY.get


def _architecture(model: str) -> str:
    if model == "neural_cox":
        return "neural_cox (DeepSurv, PyTorch; weights in safetensors)"
    return f"{model} (scikit-survival)"


def _card(record: Mapping[str, Any], sha: str, limitations: Sequence[str]) -> dict[str, Any]:
    task, population = record["task"], record["population"]
    shown = {k: v for k, v in population.items() if k not in ("kaplan_meier", "ranges")}
    return {
        "model": {
            "name": record["name"], "version": record["version"], "created": record["created"],
            "architecture": _architecture(str(record["training"].get("model", "survival model"))),
            "artifact_sha256": sha,
        },
        "intended_use": record["intended_use"],
        "outputs": {
            "task": "time to event: survival curve, risk by 1, 3 and 5 years",
            "labels": [f"free of {task['positive_label']}", task["positive_label"]],
            "positive_label": task["positive_label"],
        },
        "preprocessing": {"features": task["features"]},
        "training": {**record["training"], "population": shown,
                     "longest_supported_horizon_days": record["max_horizon_days"]},
        "metrics": {**record["metrics"],
                    "proportional_hazards_check": record.get("proportional_hazards")},
        "calibration": record["metrics"].get("calibration_slope", {}),
        "limitations": list(limitations),
        "plots": [],
    }  # fmt: skip


def register_survival_model(
    registry_dir: Path,
    *,
    name: str,
    model: SurvivalModel,
    task: TaskSpec,
    population: Mapping[str, Any],
    max_horizon_days: float,
    reference: Mapping[str, Any],
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    intended_use: str,
    proportional_hazards: Mapping[str, Any] | None = None,
    horizons_years: Sequence[float] = (1, 3, 5),
    limitations: Sequence[str] = (),
) -> SurvivalModelVersion:
    """Store a fitted `SurvivalModel` as the next version of `name` (stage candidate).

    Raises:
        RegistryError: invalid name, unfitted model, features that differ from the task,
            missing training['data_sha256'], or non-JSON values.
    """
    check_registration(name, training)
    if not hasattr(model, "feature_types_"):
        raise RegistryError("Fit the SurvivalModel before registering it.")
    if list(model.feature_types_) != task.feature_names:
        raise RegistryError(
            f"The model's features {list(model.feature_types_)} differ from the task spec's "
            f"{task.feature_names}; register the spec the model was trained with."
        )
    root = REGISTRY.root(registry_dir, name)
    with staging_folder(root) as staging:
        artifact = _dump(model, staging)
        record: dict[str, Any] = {
            "format": 1, "kind": "survival", "name": name, "task": task_dict(task),
            "population": dict(population), "horizons_years": list(horizons_years),
            "max_horizon_days": max_horizon_days, "reference": dict(reference),
            "proportional_hazards": proportional_hazards, "metrics": metrics,
            "training": training, "intended_use": intended_use, "artifact": artifact,
        }  # fmt: skip
        version = publish_version(
            root, staging, record, artifact, lambda r, sha: _card(r, sha, limitations)
        )
    return get_survival_model(registry_dir, name, version, verify=False)


def _networks(model: SurvivalModel) -> list[NeuralCoxSurvival]:
    pipelines = [model.pipeline_, *model.band_]
    found = [p.named_steps["model"] for p in pipelines]
    return [n for n in found if isinstance(n, NeuralCoxSurvival)]


def _dump(model: SurvivalModel, staging: Path) -> str:
    """Write model.skops (and the networks' weights as safetensors); return the artifact."""
    from safetensors.numpy import save_file

    stored = copy.deepcopy(model)
    networks = _networks(stored)
    if networks:
        tensors = {f"{i}.{k}": np.ascontiguousarray(v)
                   for i, net in enumerate(networks) for k, v in net.weights_.items()}  # fmt: skip
        save_file(tensors, str(staging / WEIGHTS_FILE))
        for net in networks:
            net.weights_ = {k: np.zeros(0, dtype=np.float32) for k in net.weights_}
    sio.dump(stored, staging / SKOPS_FILE)
    return WEIGHTS_FILE if networks else SKOPS_FILE


def load_survival_model(version: SurvivalModelVersion) -> SurvivalModel:
    """The fitted estimator of a version, after checking its files and the types it holds.

    Raises:
        IntegrityError: a file changed since registration, the artifact holds a type outside
            `TRUSTED_TYPES` (it is not loaded), or the network weights do not fit.
    """
    verify_manifest(version.path)
    model = load_trusted(version.path / SKOPS_FILE, TRUSTED_TYPES, SurvivalModel)
    networks = _networks(model)
    if networks:
        from safetensors.numpy import load_file

        tensors = load_file(str(version.path / WEIGHTS_FILE))
        try:
            for i, net in enumerate(networks):
                net.weights_ = {k: tensors[f"{i}.{k}"] for k in net.weights_}
        except KeyError as exc:
            raise IntegrityError(f"{version.path / WEIGHTS_FILE} lacks {exc}.") from exc
    return model
