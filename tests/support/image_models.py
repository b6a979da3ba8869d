"""Tiny models and registrations shared by the registry and inference tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import nn

from clinsight.data.medmnist import TaskType
from clinsight.evaluation.ood import ExpectedHeaders, IntendedUseGate, fit_feature_gate
from clinsight.evaluation.thresholds import DecisionThresholds
from clinsight.imaging.features import penultimate_features
from clinsight.imaging.networks import NetworkConfig, build_network
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.inference.predictors import load_torch_model
from clinsight.registry.image import REGISTRY, ModelVersion, Stage, get_model, register_model

torch.set_num_threads(1)  # the test machine's cores are shared

DATA_SHA256 = "ab" * 32
IMAGE_SIZE = 28
METRICS: dict[str, Any] = {
    "test": {
        "auc": {"value": 0.912, "low": 0.89, "high": 0.931},
        "accuracy": {"value": 0.85, "low": 0.82, "high": 0.88},
        "n": 624,
    },
    "calibration": {"ece_before": 0.081, "ece_after": 0.023},
}
TRAINING: dict[str, Any] = {
    "dataset": "pneumoniamnist",
    "size": 28,
    "data_sha256": DATA_SHA256,
    "seed": 0,
    "epochs": 1,
}


def tiny_network(config: NetworkConfig, seed: int = 0) -> nn.Module:
    """A freshly initialised network with non-trivial BatchNorm statistics, in train mode."""
    torch.manual_seed(seed)
    network = build_network(config)
    with torch.no_grad():
        network.train()
        network(torch.rand(4, config.in_channels, IMAGE_SIZE, IMAGE_SIZE))
    return network


def write_plot(path: Path) -> Path:
    """A small real PNG file."""
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(path)
    return path


def register_tiny(
    registry_dir: Path,
    *,
    name: str = "tiny",
    config: NetworkConfig | None = None,
    task: TaskType = TaskType.BINARY,
    temperature: float = 1.5,
    seed: int = 0,
    **overrides: Any,
) -> tuple[ModelVersion, nn.Module]:
    """Register a tiny network; returns the version and the network it was made from."""
    config = config or NetworkConfig("cnn", 1, 2, width=4)
    network = tiny_network(config, seed)
    arguments: dict[str, Any] = {
        "name": name,
        "network": network,
        "network_config": config,
        "preprocess": PreprocessSpec(image_size=IMAGE_SIZE, channels=config.in_channels),
        "labels": [f"class{i}" for i in range(config.num_classes)],
        "task": task,
        "positive_index": 1 if config.num_classes > 1 else 0,
        "temperature": temperature,
        "metrics": METRICS,
        "training": TRAINING,
    }
    arguments.update(overrides)
    return register_model(registry_dir, **arguments), network


def band(low: float, high: float) -> DecisionThresholds:
    """Decision thresholds with made-up validation figures (sensitivity 0.96, specificity 0.97)."""
    return DecisionThresholds(
        low=low, high=high, sensitivity=0.96, specificity=0.97, sensitivity_target=0.95,
        specificity_target=0.95, indeterminate_fraction=0.25, n_positive=25, n_negative=53,
    )  # fmt: skip


def promote_with_band(registry_dir: Path, name: str, low: float, high: float) -> ModelVersion:
    """Register the production network of `name` again with the band [low, high) and put
    the new version in production."""
    current = get_model(registry_dir, name, stage=Stage.PRODUCTION)
    made = register_model(
        registry_dir, name=name, network=load_torch_model(current),
        network_config=current.network_config, preprocess=current.preprocess,
        labels=current.labels, task=current.task, positive_index=current.positive_index,
        temperature=current.temperature, metrics=current.metrics, training=current.training,
        decision_thresholds=band(low, high),
    )  # fmt: skip
    REGISTRY.promote(registry_dir, name, made.version, Stage.PRODUCTION)
    return made


def tiny_gate(
    network: nn.Module, channels: int = 1, *, seed: int = 0
) -> tuple[IntendedUseGate, NDArray[np.float32]]:
    """A chest-style gate fitted on `network`'s features of smooth grey images (60 for the
    fit, 40 for the limit); returns it and the 40 validation images (N, 28, 28) in [0, 1]."""
    rng = np.random.default_rng(seed)
    ramps = np.linspace(0.2, 0.8, IMAGE_SIZE, dtype=np.float32)[None, :, None]
    noisy = np.clip(ramps + rng.normal(0, 0.03, (100, IMAGE_SIZE, IMAGE_SIZE)), 0, 1)
    images: NDArray[np.float32] = noisy.astype(np.float32)
    batch = torch.from_numpy(np.repeat(images[:, None], channels, axis=1))
    features = penultimate_features(network, batch).numpy()
    fitted = fit_feature_gate(features[:60], rng.integers(0, 2, 60), features[60:])
    headers = ExpectedHeaders(modality=("CR", "DX"), body_part=("CHEST",))
    return IntendedUseGate("chest radiograph", headers, fitted), images[60:]
