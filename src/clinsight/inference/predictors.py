"""Predictions from registered image models, with the provenance a clinician can check.

`ImagePredictor` replays the model's stored preprocessing, runs its ONNX graph and
turns logits into calibrated probabilities (the calibration chosen on validation, or the
temperature of older models): softmax for binary, multi-class and ordinal tasks,
independent sigmoids for multi-label ones. Where the model has an intended-use gate, the
same run's penultimate features and the input's statistics get its out-of-distribution
scores. `load_torch_model` rebuilds the PyTorch network from safetensors for explanations
such as Grad-CAM.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from clinsight.data.medmnist import TaskType
from clinsight.errors import ModelError
from clinsight.evaluation.calibration import apply_temperature
from clinsight.evaluation.ood import input_statistics
from clinsight.evaluation.thresholds import INDETERMINATE, DecisionThresholds
from clinsight.imaging.networks import build_network
from clinsight.imaging.transforms import Preprocess
from clinsight.inference.runtime import OnnxClassifier
from clinsight.registry.image import ModelVersion, Stage, get_model
from clinsight.registry.manifest import verify_manifest

__all__ = ["MULTI_LABEL_THRESHOLD", "ImagePredictor", "Prediction", "load_torch_model"]

MULTI_LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class Prediction:
    """One image's prediction and where it came from.

    `label`/`probability` are the most probable class; `present` lists the labels
    predicted present (multi-label: probability >= 0.5; otherwise just `label`);
    `positive_probability` is the probability of the model's positive label.
    `decision` is the finding: for a binary model registered with decision thresholds,
    the label its band gives (or "indeterminate"), otherwise the class of the model's
    decision rule (chosen on validation; `label` for older models); `thresholds` is that
    band. `label_probability` is the probability of `decision` (None when indeterminate).
    `input_sha256` hashes the preprocessed network input (float32, C order).
    `ood_score` and `input_score` are the intended-use gate's scores of the penultimate
    features and of the input statistics (None: the model has no such gate).
    """

    label: str
    probability: float
    probabilities: dict[str, float]
    present: tuple[str, ...]
    positive_probability: float
    model_name: str
    model_version: int
    artifact_sha256: str
    input_sha256: str
    latency_ms: float
    decision: str
    thresholds: DecisionThresholds | None
    ood_score: float | None = None
    input_score: float | None = None

    @property
    def indeterminate(self) -> bool:
        """Whether the probability falls inside the model's indeterminate band."""
        return self.decision == INDETERMINATE

    @property
    def label_probability(self) -> float | None:
        """The calibrated probability of the finding (None when indeterminate)."""
        return None if self.indeterminate else self.probabilities[self.decision]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["present"] = list(self.present)
        data["label_probability"] = self.label_probability
        return data


class ImagePredictor:
    """Source images → calibrated class probabilities with one registered model."""

    def __init__(self, model: ModelVersion, threads: int = 1) -> None:
        """Open an ONNX Runtime session for `model` (verify it first, e.g. via `get_model`).

        Raises:
            ModelError: the ONNX graph does not match the model's preprocessing or labels.
        """
        self.model = model
        self.session = OnnxClassifier(model.onnx_path, threads=threads)
        self.preprocess = Preprocess(model.preprocess)
        spec = model.preprocess
        expected = (spec.channels, spec.image_size, spec.image_size)
        if self.session.input_shape != expected or self.session.num_classes != len(model.labels):
            raise ModelError(
                f"{model.onnx_path} takes {self.session.input_shape} and returns "
                f"{self.session.num_classes} logits, but model.json says {expected} and "
                f"{len(model.labels)} labels; register the model again."
            )

    @classmethod
    def from_registry(
        cls,
        registry_dir: Path,
        name: str,
        version: int | None = None,
        stage: Stage | str | None = None,
        threads: int = 1,
    ) -> ImagePredictor:
        """A predictor for a verified registered version (see `get_model` for the choice).

        Raises:
            ModelNotFoundError: no such name, version or stage.
            IntegrityError: the version's files do not match their manifest.
            ModelError: the ONNX graph cannot be loaded or does not fit its record.
        """
        return cls(get_model(registry_dir, name, version, stage, verify=True), threads=threads)

    def probabilities(self, logits: NDArray[np.float32]) -> NDArray[np.float32]:
        """Calibrated probabilities (N, K) from logits (N, K).

        Raises:
            DataError: the logits are not finite (e.g. the input held NaN).
        """
        if self.model.calibration is not None:
            return self.model.calibration.probabilities(logits, self.model.task).astype(np.float32)
        scaled = apply_temperature(logits, self.model.temperature, self.model.task)
        return scaled.astype(np.float32)

    def predict_batch(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Probabilities (N, K) for a batch already preprocessed to (N, C, S, S).

        Raises:
            ModelError: the batch has the wrong shape or dtype, or the run fails.
            DataError: the logits are not finite.
        """
        return self.probabilities(self.session.logits(batch))

    def ood_scores(self, batch: NDArray[np.float32]) -> NDArray[np.float64] | None:
        """The gate's out-of-distribution scores (N,) of a preprocessed batch; None when the
        model has no feature gate.

        Raises:
            ModelError: the batch has the wrong shape or dtype, or the run fails.
            RegistryError: the stored gate cannot be read.
        """
        _, features = self.session.logits_and_features(batch)
        return self._scores(features)

    def input_scores(self, batch: NDArray[np.float32]) -> NDArray[np.float64] | None:
        """The gate's input-statistics scores (N,) of a preprocessed batch; None when the
        model has no input-statistics gate.

        Raises:
            RegistryError: the stored gate cannot be read.
        """
        gate = self.model.intended_use_gate
        if gate is None or gate.inputs is None:
            return None
        return gate.inputs.scores(input_statistics(batch))

    def _scores(self, features: NDArray[np.float32] | None) -> NDArray[np.float64] | None:
        gate = self.model.intended_use_gate
        if gate is None or gate.features is None or features is None:
            return None
        return gate.features.scores(features)

    def predict(self, image: NDArray[Any]) -> Prediction:
        """Predict one source image: float (H, W) or (H, W, C) with values in [0, 1].

        Raises:
            UnsupportedImageError: the array is not a 2D grey or colour image.
            DataError: the image holds non-finite values.
            ModelError: the run fails.
            RegistryError: the stored intended-use gate cannot be read.
        """
        return self.predict_many([image])[0]

    def predict_many(self, images: Sequence[NDArray[Any]]) -> list[Prediction]:
        """Predict source images in one ONNX Runtime run (batch inference); each image's
        `latency_ms` is its share of the batch's time.

        Raises:
            UnsupportedImageError: an array is not a 2D grey or colour image.
            DataError: an image holds non-finite values.
            ModelError: the run fails.
            RegistryError: the stored intended-use gate cannot be read.
        """
        if not images:
            return []
        start = time.perf_counter()
        network_input = np.ascontiguousarray(
            np.stack([self.preprocess(image) for image in images]), dtype=np.float32
        )
        logits, features = self.session.logits_and_features(network_input)
        probs = self.probabilities(logits)
        scores = self._scores(features)
        input_scores = self.input_scores(network_input)
        latency_ms = (time.perf_counter() - start) * 1000.0 / len(images)
        return [
            self._prediction(
                probs[i],
                network_input[i],
                latency_ms,
                None if scores is None else float(scores[i]),
                None if input_scores is None else float(input_scores[i]),
            )
            for i in range(len(images))
        ]

    def _prediction(
        self,
        probs: NDArray[np.float32],
        network_input: NDArray[np.float32],
        latency_ms: float,
        ood_score: float | None,
        input_score: float | None,
    ) -> Prediction:
        labels = self.model.labels
        best = int(np.argmax(probs))
        if self.model.task is TaskType.MULTI_LABEL:
            present = tuple(
                lab for lab, p in zip(labels, probs, strict=True) if p >= MULTI_LABEL_THRESHOLD
            )
        else:
            present = (labels[best],)
        positive = float(probs[self.model.positive_index])
        thresholds = self.model.decision_thresholds
        decision = labels[best]
        rule = self.model.decision_rule
        if rule is not None and self.model.task is not TaskType.MULTI_LABEL:
            decision = labels[int(rule.predict(probs[None])[0])]
        if thresholds is not None and self.model.task is TaskType.BINARY:
            negative = labels[1 - self.model.positive_index]
            decision = thresholds.decide(positive, labels[self.model.positive_index], negative)
        return Prediction(
            label=labels[best],
            probability=float(probs[best]),
            probabilities={lab: float(p) for lab, p in zip(labels, probs, strict=True)},
            present=present,
            positive_probability=positive,
            model_name=self.model.name,
            model_version=self.model.version,
            artifact_sha256=self.model.artifact_sha256,
            input_sha256=hashlib.sha256(np.ascontiguousarray(network_input).tobytes()).hexdigest(),
            latency_ms=latency_ms,
            decision=decision,
            thresholds=thresholds,
            ood_score=ood_score,
            input_score=input_score,
        )


def load_torch_model(model: ModelVersion) -> nn.Module:
    """The version's PyTorch network in eval mode, rebuilt from its config and safetensors.

    The version's files are verified first.

    Raises:
        IntegrityError: the version's files do not match their manifest.
        ModelError: the weights do not fit the network config.
    """
    verify_manifest(model.path)
    network = build_network(model.network_config)
    try:
        network.load_state_dict(load_file(str(model.weights_path)), strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise ModelError(
            f"The weights in {model.weights_path} do not fit {model.network_config}: {exc}"
        ) from exc
    return network.eval()
