"""Image models in the registry: versioned, checksummed ONNX models with stages and history.

Layout of ``registry_dir``::

    <name>/stages.json          current stage of every version + history of changes
    <name>/<version>/           1, 2, ...; immutable once written
        model.onnx  weights.safetensors  model.json  card.json  card.md  plots/*.png
        baseline.json           validation statistics for drift monitoring (`evaluation.drift`)
        gate.safetensors        the intended-use gate's means and precisions (if fitted)
        manifest.json           sha256 of every other file; artifact sha256 (model.onnx)

Versions, the staging folder, locks and stages work as for every kind (`registry.versions`):
readers never see half a version and concurrent registrations get distinct numbers. Stages
live in stages.json (not model.json) because version folders are hashed and never change.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from torch import nn

from clinsight.data.intended_population import IntendedPopulation
from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError, ModelError, RegistryError
from clinsight.evaluation.drift import Baseline
from clinsight.evaluation.ood import IntendedUseGate
from clinsight.evaluation.selection import Calibrator, DecisionRule
from clinsight.evaluation.thresholds import DecisionThresholds
from clinsight.imaging.features import feature_layers
from clinsight.imaging.networks import NetworkConfig
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.registry.cards import build_card
from clinsight.registry.export import (
    FEATURES_NAME,
    INPUT_NAME,
    ONNX_OPSET,
    OUTPUT_NAME,
    export_onnx,
    save_weights,
)
from clinsight.registry.manifest import write_json
from clinsight.registry.stages import Stage, StageChange
from clinsight.registry.versions import (
    NAME_PATTERN,
    SHA256_PATTERN,
    KindRegistry,
    ModelKind,
    RegisteredVersion,
    check_registration,
    publish_version,
    staging_folder,
    version_numbers,
)

__all__ = [
    "NAME_PATTERN",
    "REGISTRY",
    "SHA256_PATTERN",
    "ModelVersion",
    "Stage",
    "StageChange",
    "copy_plots",
    "get_model",
    "list_models",
    "read_baseline",
    "register_model",
    "verify",
    "version_numbers",
]

ONNX_FILE, WEIGHTS_FILE = "model.onnx", "weights.safetensors"
BASELINE_FILE, GATE_FILE = "baseline.json", "gate.safetensors"


@dataclass(frozen=True)
class ModelVersion(RegisteredVersion):
    """A registered image model version, as read from its folder."""

    network_config: NetworkConfig
    preprocess: PreprocessSpec
    labels: tuple[str, ...]
    task: TaskType
    positive_index: int
    temperature: float
    # Binary models registered with decision thresholds; None for older ones (argmax).
    decision_thresholds: DecisionThresholds | None = None
    # The ages the training data covers, where its provenance states them; None: unknown.
    intended_population: IntendedPopulation | None = None
    # The intended-use gate's JSON part; None for versions registered before gates.
    gate_summary: dict[str, Any] | None = None

    @cached_property
    def intended_use_gate(self) -> IntendedUseGate | None:
        """The intended-use gate stored with the version (None: registered before gates).

        Raises:
            RegistryError: the gate's record or its safetensors file is malformed.
        """
        if self.gate_summary is None:
            return None
        try:
            fitted = self.gate_summary.get("features") or self.gate_summary.get("inputs")
            tensors = load_file(str(self.path / GATE_FILE)) if fitted else None
            return IntendedUseGate.from_parts(self.gate_summary, tensors)
        except (DataError, SafetensorError, OSError) as exc:
            raise RegistryError(
                f"The intended-use gate of {self.name} v{self.version} cannot be read ({exc}); "
                "register the model again."
            ) from exc

    # Chosen on validation; None for older models (temperature scaling, arg-max).
    calibration: Calibrator | None = None
    decision_rule: DecisionRule | None = None

    @property
    def onnx_path(self) -> Path:
        """The ONNX graph ("image" → "logits")."""
        return self.path / ONNX_FILE

    @property
    def weights_path(self) -> Path:
        """The PyTorch state_dict as safetensors."""
        return self.path / WEIGHTS_FILE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "path": str(self.path), "created": self.created, "task": str(self.task),
            "labels": list(self.labels), "positive_index": self.positive_index,
            "temperature": self.temperature, "network": self.network_config.to_dict(),
            "preprocess": self.preprocess.to_dict(), "artifact_sha256": self.artifact_sha256,
            "metrics": self.metrics, "training": self.training,
            "decision_thresholds": (
                self.decision_thresholds.to_dict() if self.decision_thresholds else None
            ),
            "intended_population": (
                self.intended_population.to_dict() if self.intended_population else None
            ),
            "intended_use_gate": self.gate_summary,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "decision_rule": self.decision_rule.to_dict() if self.decision_rule else None,
        }  # fmt: skip


def _thresholds(record: dict[str, Any]) -> DecisionThresholds | None:
    stored = record.get("decision_thresholds")
    if stored is None:
        return None
    try:
        return DecisionThresholds.from_dict(stored)
    except DataError as exc:
        raise RegistryError(f"model.json of {record.get('name')!r}: {exc}") from exc


def _population(record: dict[str, Any]) -> IntendedPopulation | None:
    stored = record.get("intended_population")
    if stored is None:
        return None
    try:
        return IntendedPopulation.from_dict(stored)
    except DataError as exc:
        raise RegistryError(f"model.json of {record.get('name')!r}: {exc}") from exc


def _choices(record: dict[str, Any]) -> tuple[Calibrator | None, DecisionRule | None]:
    calibration, rule = record.get("calibration"), record.get("decision_rule")
    try:
        return (
            None if calibration is None else Calibrator.from_dict(calibration),
            None if rule is None else DecisionRule.from_dict(rule),
        )
    except DataError as exc:
        raise RegistryError(f"model.json of {record.get('name')!r}: {exc}") from exc


def read_baseline(model: ModelVersion) -> Baseline | None:
    """The validation baseline saved with the version; None for a version without one.

    Raises:
        RegistryError: baseline.json is malformed.
    """
    path = model.path / BASELINE_FILE
    if not path.is_file():
        return None
    try:
        return Baseline.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, DataError) as exc:
        raise RegistryError(f"baseline.json of {model.name} v{model.version}: {exc}") from exc


def _from_record(record: dict[str, Any], common: dict[str, Any]) -> ModelVersion:
    calibration, rule = _choices(record)
    return ModelVersion(
        **common, network_config=NetworkConfig.from_dict(record["network"]),
        preprocess=PreprocessSpec.from_dict(record["preprocess"]),
        labels=tuple(record["labels"]), task=TaskType(record["task"]),
        positive_index=int(record["positive_index"]), temperature=float(record["temperature"]),
        decision_thresholds=_thresholds(record), intended_population=_population(record),
        gate_summary=record.get("intended_use_gate"), calibration=calibration, decision_rule=rule,
    )  # fmt: skip


REGISTRY = KindRegistry(
    kind=ModelKind.IMAGE,
    noun="model",
    folder="",
    resource="model",
    build=_from_record,
    unknown=(
        "No model named {name!r} in {base}; registered models: {known}. Train one with "
        "`clinsight train image --dataset NAME` (or let `clinsight serve` bootstrap the "
        "default model)."
    ),
)
list_models = REGISTRY.versions
get_model = REGISTRY.get


def _check_request(
    config: NetworkConfig,
    preprocess: PreprocessSpec,
    labels: Sequence[str],
    positive_index: int,
    temperature: float,
) -> None:
    if len(labels) != config.num_classes or config.in_channels != preprocess.channels:
        raise ModelError(
            f"Inconsistent model: {len(labels)} labels for {config.num_classes} outputs, "
            f"{preprocess.channels} preprocessed channels for {config.in_channels} inputs."
        )
    if not 0 <= positive_index < len(labels):
        raise ModelError(f"positive_index {positive_index} is outside 0..{len(labels) - 1}.")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ModelError(f"Temperature must be a positive finite number, got {temperature}.")


def copy_plots(plots: Sequence[Path], folder: Path) -> list[str]:
    """Copy the plot files into `folder` of a staging version; their relative paths.

    Raises:
        RegistryError: names repeat or a plot does not exist.
    """
    names = [Path(p).name for p in plots]
    if len(set(names)) != len(names):
        raise RegistryError(f"Plot file names must be distinct, got {names}.")
    if plots:
        folder.mkdir()
    for plot in plots:
        if not Path(plot).is_file():
            raise RegistryError(f"Plot {plot} does not exist; create it before registering.")
        shutil.copyfile(plot, folder / Path(plot).name)
    return [f"{folder.name}/{name}" for name in names]


def register_model(
    registry_dir: Path,
    *,
    name: str,
    network: nn.Module,
    network_config: NetworkConfig,
    preprocess: PreprocessSpec,
    labels: Sequence[str],
    task: TaskType,
    positive_index: int,
    temperature: float,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    plots: Sequence[Path] = (),
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
    decision_thresholds: DecisionThresholds | None = None,
    intended_population: IntendedPopulation | None = None,
    baseline: Baseline | None = None,
    intended_use_gate: IntendedUseGate | None = None,
    calibration: Calibrator | None = None,
    decision_rule: DecisionRule | None = None,
) -> ModelVersion:
    """Export, check and store `network` as the next version of `name` (stage candidate).

    `decision_thresholds` (binary tasks only, chosen on validation) are kept in model.json
    and the card; without them a prediction is the most probable class. The
    `intended_population` (ages) goes in model.json and the card; the validation `baseline`
    in baseline.json, for drift monitoring. The ONNX graph also returns the penultimate
    features; `intended_use_gate` (fitted on those features) is kept in model.json, the
    card and gate.safetensors. `calibration` and `decision_rule` (chosen on validation)
    replace the plain `temperature` and the arg-max.

    Raises:
        RegistryError: invalid name, missing training['data_sha256'], missing plot,
            non-JSON metrics/training values, thresholds for a non-binary task, or a gate
            whose feature size differs from the network's.
        ModelError: inconsistent sizes, bad temperature, or an ONNX export that fails or
            differs from PyTorch by more than 1e-4.
    """
    check_registration(name, training)
    _check_request(network_config, preprocess, labels, positive_index, temperature)
    if decision_thresholds is not None and (TaskType(task) is not TaskType.BINARY):
        raise RegistryError(f"Decision thresholds need a binary task, not {task}.")
    root = REGISTRY.root(registry_dir, name)
    with staging_folder(root) as staging:
        max_diff = export_onnx(network, preprocess, staging / ONNX_FILE, with_features=True)
        save_weights(network, staging / WEIGHTS_FILE)
        plot_paths = copy_plots(plots, staging / "plots")
        record: dict[str, Any] = {
            "format": 1, "name": name, "network": network_config.to_dict(),
            "preprocess": preprocess.to_dict(), "labels": list(labels), "task": TaskType(task),
            "positive_index": positive_index, "temperature": float(temperature),
            "metrics": metrics, "training": training,
            "onnx": {"opset": ONNX_OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME,
                     "features": FEATURES_NAME, "max_abs_diff_vs_torch": max_diff},
        }  # fmt: skip
        if decision_thresholds is not None:
            record["decision_thresholds"] = decision_thresholds.to_dict()
        if intended_population is not None:
            record["intended_population"] = intended_population.to_dict()
        if baseline is not None:
            write_json(staging / BASELINE_FILE, baseline.to_dict())
        if intended_use_gate is not None:
            record["intended_use_gate"] = _store_gate(intended_use_gate, network, staging)
        if calibration is not None:
            record["calibration"] = calibration.to_dict()
        if decision_rule is not None:
            record["decision_rule"] = decision_rule.to_dict()

        def card(stored: dict[str, Any], artifact_sha256: str) -> dict[str, Any]:
            return build_card(
                stored,
                artifact_sha256=artifact_sha256,
                intended_use=intended_use,
                limitations=limitations,
                plots=plot_paths,
            )

        version = publish_version(root, staging, record, ONNX_FILE, card)
    return get_model(registry_dir, name, version, verify=False)


def _store_gate(gate: IntendedUseGate, network: nn.Module, staging: Path) -> dict[str, Any]:
    if gate.features is not None:
        width = sum(layer.in_features for layer in feature_layers(network))
        if gate.features.dimension != width:
            raise RegistryError(
                f"The intended-use gate was fitted on {gate.features.dimension} features, but "
                f"the network has {width}; fit it on this network's features."
            )
    if gate.tensors():
        save_file(gate.tensors(), str(staging / GATE_FILE))
    return gate.summary()


def verify(registry_dir: Path, name: str, version: int) -> ModelVersion:
    """Check every file of a version against its manifest and return the version.

    Raises:
        ModelNotFoundError: no such name or version.
        IntegrityError: a file is missing, added or changed since registration.
    """
    return get_model(registry_dir, name, version, verify=True)
