"""Progression models in the registry: the sequence network as ONNX and safetensors, the
binning, standardisation and calibration as JSON, with card and sha256 manifest.

Layout, beside the other kinds::

    <registry_dir>/_progression/<name>/stages.json
    <registry_dir>/_progression/<name>/<version>/
        model.onnx           the network (inputs x, mask, delta, static; output logit),
                             checked against PyTorch with ONNX Runtime before it is kept
        network.safetensors  the same weights, for explanations (integrated gradients,
                             RETAIN contributions) and where the graph does not export
        model.json           task, bins, standardiser, network config, temperature,
                             population, metrics, training
        card.json  card.md  manifest.json
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from clinsight.errors import IntegrityError, ModelError
from clinsight.registry.export import EXPORT_TOLERANCE, ONNX_OPSET
from clinsight.registry.manifest import verify_manifest
from clinsight.registry.versions import (
    KindRegistry,
    ModelKind,
    RegisteredVersion,
    check_registration,
    publish_version,
    staging_folder,
)
from clinsight.sequence.model import ProgressionModel

__all__ = [
    "INPUT_NAMES",
    "ONNX_FILE",
    "PROGRESSION_ROOT",
    "REGISTRY",
    "WEIGHTS_FILE",
    "ProgressionModelVersion",
    "export_progression_onnx",
    "get_progression_model",
    "list_progression_models",
    "load_progression_model",
    "register_progression_model",
]

PROGRESSION_ROOT, ONNX_FILE, WEIGHTS_FILE = "_progression", "model.onnx", "network.safetensors"
INPUT_NAMES = ("x", "mask", "delta", "static")
OUTPUT_NAME = "logit"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressionModelVersion(RegisteredVersion):
    """A registered progression model version (the network loads lazily)."""

    task: dict[str, Any]
    model: dict[str, Any]
    population: dict[str, Any]
    onnx: bool
    thresholds: dict[str, Any] | None = None
    """Alert cut-offs on the calibrated risk chosen on validation (``warning``,
    ``critical``, with what they achieved there); None for versions registered before they
    were chosen: their CDS cards only inform."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API)."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "created": self.created, "task": self.task,
            "architecture": self.model["network"]["architecture"],
            "variables": self.model["bins"]["variables"], "onnx": self.onnx,
            "population": self.population, "artifact_sha256": self.artifact_sha256,
            "metrics": self.metrics, "training": self.training, "thresholds": self.thresholds,
        }  # fmt: skip


def _from_record(record: dict[str, Any], common: dict[str, Any]) -> ProgressionModelVersion:
    return ProgressionModelVersion(
        **common, task=dict(record["task"]), model=dict(record["model"]),
        population=dict(record["population"]), onnx=record["artifact"] == ONNX_FILE,
        thresholds=record.get("thresholds"),
    )  # fmt: skip


REGISTRY = KindRegistry(
    kind=ModelKind.PROGRESSION,
    noun="progression model",
    folder=PROGRESSION_ROOT,
    resource="progression_model",
    build=_from_record,
    unknown="No progression model named {name!r}; registered: {known}.",
)
list_progression_models = REGISTRY.versions
get_progression_model = REGISTRY.get


def _example(model: ProgressionModel, batch: int = 3) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    steps, variables = model.bins.bins, len(model.bins.variables)
    x = torch.randn((batch, steps, variables), generator=generator)
    mask = (torch.rand((batch, steps, variables), generator=generator) < 0.3).float()
    delta = torch.rand((batch, steps, variables), generator=generator)
    static = torch.randn((batch, model.network_config.static), generator=generator)
    return x * mask, mask, delta, static


def export_progression_onnx(model: ProgressionModel, path: Path) -> None:
    """Write the network as ONNX (dynamic batch) and check it against PyTorch.

    Raises:
        ModelError: the graph does not export, or ONNX Runtime disagrees with PyTorch by
            more than `EXPORT_TOLERANCE` on a random batch.
    """
    import onnxruntime as ort

    network = model.network.eval()
    example = _example(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, example, str(path), dynamo=False, opset_version=ONNX_OPSET,
                input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                dynamic_axes={**{n: {0: "batch"} for n in INPUT_NAMES}, OUTPUT_NAME: {0: "batch"}},
            )  # fmt: skip
    except Exception as exc:  # the exporter raises many types; none is ours
        raise ModelError(
            f"the {model.network_config.architecture} network does not export to ONNX."
        ) from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: t.numpy() for name, t in zip(INPUT_NAMES, example, strict=True)}
    exported = session.run(None, feed)[0]
    with torch.inference_mode():
        expected = network(*example).numpy()
    gap = float(np.max(np.abs(exported - expected)))
    if not gap <= EXPORT_TOLERANCE:
        raise ModelError(
            f"the ONNX graph differs from PyTorch by {gap:.2e} (> {EXPORT_TOLERANCE})."
        )


def _card(record: Mapping[str, Any], sha: str, limitations: Sequence[str]) -> dict[str, Any]:
    network = record["model"]["network"]
    return {
        "model": {
            "name": record["name"], "version": record["version"], "created": record["created"],
            "architecture": f"{network['architecture']} (hidden {network['hidden']}, PyTorch)",
            "artifact_sha256": sha,
        },
        "intended_use": record["intended_use"],
        "outputs": {
            "task": record["task"]["description"],
            "labels": ["survives", "dies in hospital"], "positive_label": "dies in hospital",
        },
        "preprocessing": {
            "variables": record["model"]["bins"]["variables"],
            "bins": f"{record['model']['bins']['bin_hours']:g} h bins over "
                    f"{record['model']['bins']['hours']:g} h, mask and time since last observation",
        },
        "training": {**record["training"], "population": record["population"]},
        "metrics": record["metrics"],
        "calibration": {"method": "temperature scaling on validation",
                        "temperature": record["model"]["temperature"]},
        "limitations": list(limitations),
        "plots": [],
    }  # fmt: skip


def register_progression_model(
    registry_dir: Path,
    *,
    name: str,
    model: ProgressionModel,
    task: Mapping[str, Any],
    population: Mapping[str, Any],
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    intended_use: str,
    limitations: Sequence[str] = (),
    thresholds: Mapping[str, Any] | None = None,
) -> ProgressionModelVersion:
    """Store a trained and calibrated model as the next version of `name` (candidate), with
    the alert `thresholds` chosen on validation (None: none could be chosen).

    The ONNX graph is the artifact where it exports and matches PyTorch; otherwise the
    safetensors weights are (and serving runs PyTorch).

    Raises:
        RegistryError: invalid name, missing training['data_sha256'] or non-JSON values.
    """
    check_registration(name, training)
    root = REGISTRY.root(registry_dir, name)
    with staging_folder(root) as staging:
        save_file(
            {k: v.detach().contiguous() for k, v in model.network.state_dict().items()},
            str(staging / WEIGHTS_FILE),
        )
        artifact = ONNX_FILE
        try:
            export_progression_onnx(model, staging / ONNX_FILE)
        except ModelError as exc:
            _log.warning("progression model %s: %s; serving PyTorch", name, exc)
            (staging / ONNX_FILE).unlink(missing_ok=True)
            artifact = WEIGHTS_FILE
        record: dict[str, Any] = {
            "format": 1, "kind": "progression", "name": name, "task": dict(task),
            "model": model.metadata(), "population": dict(population), "metrics": metrics,
            "training": training, "intended_use": intended_use, "artifact": artifact,
            "weights": WEIGHTS_FILE, "thresholds": None if thresholds is None else dict(thresholds),
        }  # fmt: skip
        version = publish_version(
            root, staging, record, artifact, lambda r, sha: _card(r, sha, limitations)
        )
    return get_progression_model(registry_dir, name, version, verify=False)


def load_progression_model(version: ProgressionModelVersion) -> ProgressionModel:
    """The PyTorch model of a version, after checking the manifest.

    Raises:
        IntegrityError: a file changed since registration or the weights do not fit.
    """
    verify_manifest(version.path)
    try:
        weights = load_file(str(version.path / WEIGHTS_FILE))
        return ProgressionModel.from_parts(version.model, weights)
    except (OSError, RuntimeError, KeyError) as exc:
        raise IntegrityError(
            f"the weights of {version.name} v{version.version} do not load."
        ) from exc
