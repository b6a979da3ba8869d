"""A trained progression model: binning, standardisation, network and its calibration.

`ProgressionModel` is what the registry saves (the network's weights in safetensors and
ONNX, the rest as JSON) and what inference runs: binned arrays → calibrated risk. The
temperature is fitted on validation logits by `evaluation.progression.calibrate` (on the
two-column logits [0, z], so the risk is sigmoid(z / T)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.special import expit
from torch import nn

from clinsight.sequence.binning import BinSpec, ModelInputs, SequenceArrays, Standardiser
from clinsight.sequence.networks import SequenceNetworkConfig, build_sequence_network
from clinsight.sequence.training import (
    ProgressCallback,
    SequenceTrainConfig,
    TrainedSequenceModel,
    predict_sequence_logits,
    train_sequence_model,
)

__all__ = ["ProgressionModel", "fit_progression_model", "two_column_logits"]


def two_column_logits(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N,) logits z as the (N, 2) logits [0, z] the binary calibration functions read."""
    return np.stack([np.zeros_like(logits), logits], axis=1)


@dataclass
class ProgressionModel:
    """Everything needed to turn a stay's binned window into a calibrated risk."""

    bins: BinSpec
    standardiser: Standardiser
    network_config: SequenceNetworkConfig
    network: nn.Module
    temperature: float = 1.0

    def inputs(self, arrays: SequenceArrays) -> ModelInputs:
        """The standardised network inputs of binned arrays."""
        return self.standardiser.transform(arrays, self.bins.bin_hours)

    def logits(self, arrays: SequenceArrays) -> NDArray[np.float64]:
        """(N,) uncalibrated logits."""
        return predict_sequence_logits(self.network, self.inputs(arrays))

    def risk(self, arrays: SequenceArrays) -> NDArray[np.float64]:
        """(N,) calibrated probabilities of the outcome."""
        return np.asarray(expit(self.logits(arrays) / self.temperature), dtype=np.float64)

    def metadata(self) -> dict[str, Any]:
        """The JSON part of the model (everything but the weights)."""
        return {
            "bins": self.bins.to_dict(),
            "standardiser": self.standardiser.to_dict(),
            "network": self.network_config.to_dict(),
            "temperature": self.temperature,
        }

    @classmethod
    def from_parts(
        cls, metadata: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
    ) -> ProgressionModel:
        """Rebuild a model from `metadata` and its network's state dict."""
        config = SequenceNetworkConfig.from_dict(metadata["network"])
        network = build_sequence_network(config)
        network.load_state_dict(dict(weights))
        network.eval()
        return cls(
            BinSpec.from_dict(metadata["bins"]),
            Standardiser.from_dict(metadata["standardiser"]),
            config,
            network,
            float(metadata["temperature"]),
        )


def fit_progression_model(
    train: SequenceArrays,
    validation: SequenceArrays,
    bins: BinSpec,
    config: SequenceTrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[ProgressionModel, TrainedSequenceModel]:
    """Standardise on `train` and train (early stopping on `validation` AUPRC); the
    temperature stays 1 until calibrated on validation (`evaluation.progression`).

    Raises:
        ModelError: see `train_sequence_model`.
    """
    standardiser = Standardiser.fit(train)
    train_inputs = standardiser.transform(train, bins.bin_hours)
    val_inputs = standardiser.transform(validation, bins.bin_hours)
    trained = train_sequence_model(
        train_inputs, train.labels, val_inputs, validation.labels, config,
        checkpoint_dir=checkpoint_dir, progress=progress,
    )  # fmt: skip
    return ProgressionModel(bins, standardiser, trained.network_config, trained.network), trained
