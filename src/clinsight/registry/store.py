"""The model registry: versioned, checksummed model folders with stages and history.

Layout of ``registry_dir``::

    <name>/stages.json          current stage of every version + history of changes
    <name>/<version>/           1, 2, ...; immutable once written
        model.onnx  weights.safetensors  model.json  card.json  card.md  plots/*.png
        manifest.json           sha256 of every other file; artifact sha256 (model.onnx)

A version folder is built in a staging folder and renamed into place under a per-name
lock, so readers never see half a version and concurrent registrations get distinct
numbers. Stages live in stages.json (not model.json) because version folders are
hashed and never change.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from clinsight.data.medmnist import TaskType
from clinsight.errors import IntegrityError, ModelError, ModelNotFoundError, RegistryError
from clinsight.imaging.networks import NetworkConfig
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.registry.cards import build_card, render_card_markdown
from clinsight.registry.export import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, export_onnx, save_weights
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

__all__ = [
    "NAME_PATTERN",
    "SHA256_PATTERN",
    "ModelVersion",
    "Stage",
    "StageChange",
    "get_model",
    "history",
    "list_models",
    "promote",
    "register_model",
    "rollback",
    "verify",
    "version_numbers",
]

ONNX_FILE, WEIGHTS_FILE, MODEL_FILE = "model.onnx", "weights.safetensors", "model.json"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version, as read from its folder."""

    name: str
    version: int
    path: Path
    stage: Stage
    network_config: NetworkConfig
    preprocess: PreprocessSpec
    labels: tuple[str, ...]
    task: TaskType
    positive_index: int
    temperature: float
    metrics: dict[str, Any]
    training: dict[str, Any]
    created: str
    artifact_sha256: str

    @property
    def onnx_path(self) -> Path:
        """The ONNX graph ("image" → "logits")."""
        return self.path / ONNX_FILE

    @property
    def weights_path(self) -> Path:
        """The PyTorch state_dict as safetensors."""
        return self.path / WEIGHTS_FILE

    @property
    def card_path(self) -> Path:
        """The Markdown model card."""
        return self.path / "card.md"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "path": str(self.path), "created": self.created, "task": str(self.task),
            "labels": list(self.labels), "positive_index": self.positive_index,
            "temperature": self.temperature, "network": self.network_config.to_dict(),
            "preprocess": self.preprocess.to_dict(), "artifact_sha256": self.artifact_sha256,
            "metrics": self.metrics, "training": self.training,
        }  # fmt: skip


def _check_request(
    name: str,
    config: NetworkConfig,
    preprocess: PreprocessSpec,
    labels: Sequence[str],
    positive_index: int,
    temperature: float,
    training: Mapping[str, Any],
) -> None:
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            f"Invalid model name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit."
        )
    if len(labels) != config.num_classes or config.in_channels != preprocess.channels:
        raise ModelError(
            f"Inconsistent model: {len(labels)} labels for {config.num_classes} outputs, "
            f"{preprocess.channels} preprocessed channels for {config.in_channels} inputs."
        )
    if not 0 <= positive_index < len(labels):
        raise ModelError(f"positive_index {positive_index} is outside 0..{len(labels) - 1}.")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ModelError(f"Temperature must be a positive finite number, got {temperature}.")
    if not SHA256_PATTERN.match(str(training.get("data_sha256", ""))):
        raise RegistryError(
            "training['data_sha256'] must be the sha256 hex digest of the training data; "
            "every registered model carries it."
        )


def _copy_plots(plots: Sequence[Path], folder: Path) -> list[str]:
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


def version_numbers(root: Path) -> list[int]:
    """The version numbers present under a model's folder, ascending."""
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


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
) -> ModelVersion:
    """Export, check and store `network` as the next version of `name` (stage candidate).

    Raises:
        RegistryError: invalid name, missing training['data_sha256'], missing plot, or
            non-JSON metrics/training values.
        ModelError: inconsistent sizes, bad temperature, or an ONNX export that fails or
            differs from PyTorch by more than 1e-4.
    """
    _check_request(name, network_config, preprocess, labels, positive_index, temperature, training)
    root = Path(registry_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staging.chmod(0o755)
        max_diff = export_onnx(network, preprocess, staging / ONNX_FILE)
        save_weights(network, staging / WEIGHTS_FILE)
        plot_paths = _copy_plots(plots, staging / "plots")
        record: dict[str, Any] = {
            "format": 1, "name": name, "network": network_config.to_dict(),
            "preprocess": preprocess.to_dict(), "labels": list(labels), "task": TaskType(task),
            "positive_index": positive_index, "temperature": float(temperature),
            "metrics": metrics, "training": training,
            "onnx": {"opset": ONNX_OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME,
                     "max_abs_diff_vs_torch": max_diff},
        }  # fmt: skip
        with locked(root):
            versions = version_numbers(root)
            version = versions[-1] + 1 if versions else 1
            record = json_ready({**record, "version": version, "created": utc_now()})
            write_json(staging / MODEL_FILE, record)
            card = build_card(
                record,
                artifact_sha256=sha256_file(staging / ONNX_FILE),
                intended_use=intended_use,
                limitations=limitations,
                plots=plot_paths,
            )
            write_json(staging / "card.json", card)
            (staging / "card.md").write_text(render_card_markdown(card), encoding="utf-8")
            write_manifest(staging, ONNX_FILE)
            staging.rename(root / str(version))
            state = read_stages(root)
            record_stage(state, version, Stage.CANDIDATE, "registered")
            write_stages(root, state)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return get_model(registry_dir, name, version, verify=False)


def _load_version(folder: Path, stage: Stage) -> ModelVersion:
    record = read_json(folder / MODEL_FILE)
    manifest = read_json(folder / MANIFEST_FILE)
    try:
        return ModelVersion(
            name=record["name"], version=int(folder.name), path=folder, stage=stage,
            network_config=NetworkConfig.from_dict(record["network"]),
            preprocess=PreprocessSpec.from_dict(record["preprocess"]),
            labels=tuple(record["labels"]), task=TaskType(record["task"]),
            positive_index=int(record["positive_index"]),
            temperature=float(record["temperature"]), metrics=record["metrics"],
            training=record["training"], created=record["created"],
            artifact_sha256=manifest["artifact_sha256"],
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{folder / MODEL_FILE} is malformed ({exc!r}).") from exc


def list_models(registry_dir: Path, name: str | None = None) -> list[ModelVersion]:
    """Every registered version (of `name`, if given), sorted by name then version.

    Raises:
        ModelNotFoundError: `name` is given but not registered.
        IntegrityError: a version's model.json or manifest is missing or malformed.
    """
    registry_dir = Path(registry_dir)
    names = sorted(
        p.name for p in registry_dir.iterdir() if p.is_dir() and version_numbers(p)
    ) if registry_dir.is_dir() else []  # fmt: skip
    if name is not None:
        if name not in names:
            known = ", ".join(names) or "none"
            raise ModelNotFoundError(
                f"No model named {name!r} in {registry_dir}; registered models: {known}. "
                "Train one with `clinsight train image --dataset NAME` (or let "
                "`clinsight serve` bootstrap the default model)."
            )
        names = [name]
    found = []
    for model_name in names:
        root = registry_dir / model_name
        stages = read_stages(root)["versions"]
        for number in version_numbers(root):
            stage = Stage(stages.get(str(number), Stage.CANDIDATE))
            found.append(_load_version(root / str(number), stage))
    return found


def get_model(
    registry_dir: Path,
    name: str,
    version: int | None = None,
    stage: Stage | str | None = None,
    *,
    verify: bool = True,
) -> ModelVersion:
    """One version of `name`: by number, else the newest at `stage`, else the newest.

    Serving code should ask for ``stage=Stage.PRODUCTION``. With `verify` (the default)
    every file is checked against the manifest.

    Raises:
        ModelNotFoundError: no such name, version, or version at that stage.
        IntegrityError: a file is missing, added or changed since registration.
    """
    versions = list_models(registry_dir, name)
    listing = ", ".join(f"v{v.version} ({v.stage})" for v in versions)
    wanted = Stage(stage) if stage is not None else None
    matches = [
        v
        for v in versions
        if (version is None or v.version == version) and (wanted is None or v.stage == wanted)
    ]
    if not matches:
        what = f"version {version}" if version is not None else ""
        if wanted is not None:
            what = f"{what} at stage {wanted}" if what else f"{wanted} version"
        raise ModelNotFoundError(f"Model {name!r} has no {what}; it has: {listing}.")
    model = matches[-1]
    if verify:
        verify_manifest(model.path)
    return model


def verify(registry_dir: Path, name: str, version: int) -> ModelVersion:
    """Check every file of a version against its manifest and return the version.

    Raises:
        ModelNotFoundError: no such name or version.
        IntegrityError: a file is missing, added or changed since registration.
    """
    return get_model(registry_dir, name, version, verify=True)


def promote(
    registry_dir: Path, name: str, version: int, stage: Stage | str, *, note: str = ""
) -> ModelVersion:
    """Move a version to `stage`; promoting to production archives the current production one.

    A version is verified before it enters production. Returns the updated version.

    Raises:
        ModelNotFoundError: no such name or version.
        IntegrityError: the version fails verification on its way to production.
    """
    target = Stage(stage)
    get_model(registry_dir, name, version, verify=target is Stage.PRODUCTION)
    change_stage(Path(registry_dir) / name, version, target, note)
    return get_model(registry_dir, name, version, verify=False)


def history(registry_dir: Path, name: str) -> list[StageChange]:
    """The stage changes of `name`, oldest first.

    Raises:
        ModelNotFoundError: `name` is not registered.
    """
    list_models(registry_dir, name)
    return stage_history(read_stages(Path(registry_dir) / name))


def rollback(
    registry_dir: Path, name: str, version: int | None = None, *, note: str = "rollback"
) -> ModelVersion:
    """Put an earlier version back into production (default: the one before the current).

    Raises:
        ModelNotFoundError: no such version, or no earlier production version exists.
        IntegrityError: the version to restore fails verification.
    """
    if version is None:
        list_models(registry_dir, name)
        version = previous_production(Path(registry_dir) / name)
        if version is None:
            raise ModelNotFoundError(
                f"Model {name!r} has no earlier production version to roll back to; "
                f"promote a version explicitly instead."
            )
    return promote(registry_dir, name, version, Stage.PRODUCTION, note=note)
