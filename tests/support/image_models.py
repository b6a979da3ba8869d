"""Tiny models and registrations shared by the registry and inference tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from clinsight.data.medmnist import TaskType
from clinsight.imaging.networks import NetworkConfig, build_network
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.registry.image import ModelVersion, register_model

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
