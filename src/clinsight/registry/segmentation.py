"""Segmentation models in the registry: ONNX graph checked against PyTorch, weights, card.

Layout, beside the other kinds::

    <registry_dir>/_segmentation/<name>/stages.json
    <registry_dir>/_segmentation/<name>/<version>/
        model.onnx           "image" (N, C, S, S) -> "logits" (N, K, S, S)
        weights.safetensors  the PyTorch state_dict (no pickle)
        gate.safetensors     the intended-use gate's input-statistics means and precision
        model.json           network, preprocessing, labels, the image-level split (case
                             ids), intended-use gate, metrics, training
        card.json  card.md  plots/*.png  manifest.json

Stage changes are those of every kind (`registry.versions`), audited by
`services.models.change_stage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from torch import nn

from clinsight.data.segmentation import ImageSplit
from clinsight.errors import DataError, ModelError, RegistryError
from clinsight.evaluation.ood import IntendedUseGate
from clinsight.imaging.segmentation_networks import SegmentationNetworkConfig
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.registry.export import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, export_onnx, save_weights
from clinsight.registry.image import copy_plots
from clinsight.registry.versions import (
    KindRegistry,
    ModelKind,
    RegisteredVersion,
    check_registration,
    publish_version,
    staging_folder,
)

__all__ = [
    "REGISTRY",
    "SEGMENTATION_ROOT",
    "SegmentationModelVersion",
    "get_segmentation_model",
    "list_segmentation_models",
    "register_segmentation_model",
]

SEGMENTATION_ROOT = "_segmentation"
ONNX_FILE, WEIGHTS_FILE, GATE_FILE = "model.onnx", "weights.safetensors", "gate.safetensors"

_LIMITATIONS = (
    "Trained without pretrained weights on a small public dataset; not validated "
    "prospectively or on images from this site.",
    "The whole frame is resized to the network's square input (no crop), so thin "
    "structures narrower than a few pixels at that size are missed.",
    "Areas are in pixels of the source image; they are in mm² only where the DICOM header "
    "gives the pixel spacing.",
)


@dataclass(frozen=True)
class SegmentationModelVersion(RegisteredVersion):
    """A registered segmentation model version, as read from its folder."""

    network_config: SegmentationNetworkConfig
    preprocess: PreprocessSpec
    labels: tuple[str, ...]
    split: ImageSplit
    gate_summary: dict[str, Any] | None = None

    @property
    def onnx_path(self) -> Path:
        """The ONNX graph ("image" -> per-pixel "logits")."""
        return self.path / ONNX_FILE

    @property
    def weights_path(self) -> Path:
        """The PyTorch state_dict as safetensors."""
        return self.path / WEIGHTS_FILE

    @cached_property
    def intended_use_gate(self) -> IntendedUseGate | None:
        """The intended-use gate stored with the version (None: none was fitted).

        Raises:
            RegistryError: the gate's record or its safetensors file is malformed.
        """
        if self.gate_summary is None:
            return None
        try:
            tensors = load_file(str(self.path / GATE_FILE)) if self.gate_summary.get(
                "inputs") else None  # fmt: skip
            return IntendedUseGate.from_parts(self.gate_summary, tensors)
        except (DataError, SafetensorError, OSError) as exc:
            raise RegistryError(
                f"The intended-use gate of {self.name} v{self.version} cannot be read; "
                "register the model again."
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the CLI and the API); the split as counts."""
        return {
            "name": self.name, "version": self.version, "stage": str(self.stage),
            "created": self.created, "labels": list(self.labels),
            "network": self.network_config.to_dict(), "preprocess": self.preprocess.to_dict(),
            "split": {"seed": self.split.seed, "train": len(self.split.train),
                      "val": len(self.split.val), "test": len(self.split.test)},
            "artifact_sha256": self.artifact_sha256, "metrics": self.metrics,
            "training": self.training, "intended_use_gate": self.gate_summary,
        }  # fmt: skip


def _from_record(record: dict[str, Any], common: dict[str, Any]) -> SegmentationModelVersion:
    return SegmentationModelVersion(
        **common, network_config=SegmentationNetworkConfig.from_dict(record["network"]),
        preprocess=PreprocessSpec.from_dict(record["preprocess"]),
        labels=tuple(record["labels"]), split=ImageSplit.from_dict(record["split"]),
        gate_summary=record.get("intended_use_gate"),
    )  # fmt: skip


REGISTRY = KindRegistry(
    kind=ModelKind.SEGMENTATION,
    noun="segmentation model",
    folder=SEGMENTATION_ROOT,
    resource="segmentation_model",
    build=_from_record,
    unknown=(
        "No segmentation model named {name!r}; registered: {known}. Train one with "
        "`clinsight segment train`."
    ),
)
list_segmentation_models = REGISTRY.versions
get_segmentation_model = REGISTRY.get


def _card(
    record: Mapping[str, Any], sha: str, limitations: Sequence[str], plots: Sequence[str]
) -> dict[str, Any]:
    split = record["split"]
    return {
        "model": {
            "name": record["name"], "version": record["version"], "created": record["created"],
            "architecture": f"{record['network']['architecture']} (MONAI, no pretrained weights)",
            "network": record["network"], "artifact_sha256": sha,
        },
        "intended_use": record["intended_use"],
        "outputs": {
            "task": "segmentation: a label mask of the image and each label's area",
            "labels": record["labels"], "positive_label": ", ".join(record["labels"][1:]),
        },
        "preprocessing": {**record["preprocess"],
                          "resize": "whole frame to the square input (area); no crop"},
        "training": {**record["training"], "split_seed": split["seed"],
                     "train_images": len(split["train"]), "validation_images": len(split["val"]),
                     "test_images": len(split["test"])},
        "metrics": record["metrics"],
        "calibration": {"method": "none: the arg-max of the softmax per pixel"},
        **({"intended_use_gate": record["intended_use_gate"]}
           if record.get("intended_use_gate") else {}),
        "limitations": list(dict.fromkeys([*_LIMITATIONS, *limitations])),
        "plots": list(plots),
    }  # fmt: skip


def register_segmentation_model(
    registry_dir: Path,
    *,
    name: str,
    network: nn.Module,
    network_config: SegmentationNetworkConfig,
    preprocess: PreprocessSpec,
    labels: Sequence[str],
    split: ImageSplit,
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
    intended_use: str,
    intended_use_gate: IntendedUseGate | None = None,
    plots: Sequence[Path] = (),
    limitations: Sequence[str] = (),
) -> SegmentationModelVersion:
    """Export, check and store `network` as the next version of `name` (stage candidate).

    Raises:
        RegistryError: invalid name, missing training['data_sha256'], a missing plot or
            non-JSON values.
        ModelError: labels that do not fit the network's outputs, or an ONNX export that
            fails or differs from PyTorch by more than 1e-4.
    """
    check_registration(name, training)
    if len(labels) != network_config.num_classes or labels[0] != "background":
        raise ModelError(
            f"A segmentation model needs 'background' and one name per label: "
            f"{network_config.num_classes} outputs, labels {list(labels)}."
        )
    root = REGISTRY.root(registry_dir, name)
    with staging_folder(root) as staging:
        max_diff = export_onnx(network, preprocess, staging / ONNX_FILE, spatial=True)
        save_weights(network, staging / WEIGHTS_FILE)
        plot_paths = copy_plots(plots, staging / "plots")
        record: dict[str, Any] = {
            "format": 1, "kind": "segmentation", "name": name,
            "network": network_config.to_dict(), "preprocess": preprocess.to_dict(),
            "labels": list(labels), "split": split.to_dict(), "metrics": metrics,
            "training": training, "intended_use": intended_use,
            "onnx": {"opset": ONNX_OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME,
                     "max_abs_diff_vs_torch": max_diff},
        }  # fmt: skip
        if intended_use_gate is not None:
            if intended_use_gate.tensors():
                save_file(intended_use_gate.tensors(), str(staging / GATE_FILE))
            record["intended_use_gate"] = intended_use_gate.summary()
        version = publish_version(
            root, staging, record, ONNX_FILE,
            lambda r, sha: _card(r, sha, limitations, plot_paths),
        )  # fmt: skip
    return get_segmentation_model(registry_dir, name, version, verify=False)
