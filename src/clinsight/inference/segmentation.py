"""Segment a source image with a registered model through ONNX Runtime.

The image is resized whole to the network's square input (as in training), the per-pixel
softmax is resized back to the image's own size (bilinear) and its arg-max is the label
mask; a model registered with ``keep_largest`` N in its training record then keeps only
the N largest pieces of each label, holes filled (`imaging.mask_cleanup`). Each label's
area is counted in source pixels, and given in mm² when the pixel spacing is known (a
DICOM header's PixelSpacing). The intended-use gate runs first: an image the model was not
made for (a chest radiograph for an endoscopy model) gets no mask.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from numpy.typing import NDArray
from torch.nn import functional

from clinsight.errors import DataError, ModelError
from clinsight.evaluation.ood import IntendedUseCheck, assess_intended_use, input_statistics
from clinsight.imaging.mask_cleanup import keep_largest
from clinsight.imaging.segmentation import network_input
from clinsight.registry.segmentation import SegmentationModelVersion

__all__ = ["SegmentationPredictor", "SegmentationResult"]


@dataclass(frozen=True)
class SegmentationResult:
    """A label mask (None when the gate refused the image) and each label's area.

    `areas_px` and `areas_mm2` map each foreground label to its area (mm² None without a
    pixel spacing); `spacing_mm` is (row, column) spacing where known.
    """

    mask: NDArray[np.uint8] | None
    labels: tuple[str, ...]
    areas_px: dict[str, int]
    areas_mm2: dict[str, float | None]
    spacing_mm: tuple[float, float] | None
    intended_use: IntendedUseCheck
    model_name: str
    model_version: int
    artifact_sha256: str
    input_sha256: str
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        """Whether the intended-use gate refused the image (no mask)."""
        return self.intended_use.refused

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the mask itself)."""
        return {
            "labels": list(self.labels), "areas_px": dict(self.areas_px),
            "areas_mm2": dict(self.areas_mm2),
            "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
            "intended_use": self.intended_use.to_dict(), "model_name": self.model_name,
            "model_version": self.model_version, "artifact_sha256": self.artifact_sha256,
            "input_sha256": self.input_sha256, "latency_ms": self.latency_ms,
            "shape": None if self.mask is None else list(self.mask.shape),
        }  # fmt: skip


class SegmentationPredictor:
    """Source images -> label masks with one registered segmentation model."""

    def __init__(self, model: SegmentationModelVersion, threads: int = 1) -> None:
        """Open an ONNX Runtime session for `model` (verify it first, e.g. via the cache).

        Raises:
            ModelError: the graph cannot be loaded or does not fit the model's record.
        """
        self.model = model
        self.keep_largest = int(model.training.get("keep_largest") or 0)
        """Pieces kept per label (`imaging.mask_cleanup`); 0: the arg-max mask as it is."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(model.onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own untyped exceptions
            raise ModelError(
                f"The ONNX graph of {model.name} v{model.version} cannot be loaded; register "
                "the model again."
            ) from exc
        spec = model.preprocess
        shape = self.session.get_inputs()[0].shape
        if list(shape[1:]) != [spec.channels, spec.image_size, spec.image_size]:
            raise ModelError(
                f"The ONNX graph of {model.name} v{model.version} takes {shape[1:]}, but "
                f"model.json says ({spec.channels}, {spec.image_size}, {spec.image_size})."
            )

    def probabilities(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Softmax (N, K, S, S) of network-size inputs in [0, 1] (N, C, S, S).

        Raises:
            ModelError: the run fails.
        """
        spec = self.model.preprocess
        normalised = ((batch - spec.mean) / spec.std).astype(np.float32)
        try:
            (logits,) = self.session.run(["logits"], {"image": np.ascontiguousarray(normalised)})
        except Exception as exc:  # ONNX Runtime raises its own untyped exceptions
            raise ModelError(f"ONNX Runtime failed on {self.model.name}.") from exc
        return torch.softmax(torch.from_numpy(np.asarray(logits)), dim=1).numpy()

    def mask_of(self, image: NDArray[np.float32]) -> NDArray[np.uint8]:
        """The label mask (H, W) of a source image in [0, 1], without the gate (evaluation).

        Raises:
            ModelError: the run fails.
        """
        probs = self.probabilities(network_input(image, self.model.preprocess)[None])
        return self._cleaned(_resized_argmax(probs, image.shape[:2]))

    def _cleaned(self, mask: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The mask after the model's recorded clean-up, if any."""
        return keep_largest(mask, self.keep_largest) if self.keep_largest else mask

    def predict(
        self,
        image: NDArray[np.float32],
        *,
        source: Mapping[str, str] | None = None,
        spacing_mm: tuple[float, float] | None = None,
        warn_only: bool = False,
    ) -> SegmentationResult:
        """Check and segment one source image (H, W) or (H, W, 3) in [0, 1].

        `source` holds the DICOM header values the gate checks (modality, body part...).

        Raises:
            DataError: the image holds non-finite values.
            ModelError: the run fails.
        """
        started = time.perf_counter()
        if not np.all(np.isfinite(image)):
            raise DataError("The image holds non-finite values; re-export it.")
        inputs = network_input(image, self.model.preprocess)[None]
        gate = self.model.intended_use_gate
        input_score = None
        if gate is not None and gate.inputs is not None:
            input_score = float(gate.inputs.scores(input_statistics(inputs))[0])
        check = assess_intended_use(
            gate, score=None, pixels=image, source=source or {}, input_score=input_score,
            warn_only=warn_only,
        )  # fmt: skip
        labels = self.model.labels
        mask: NDArray[np.uint8] | None = None
        areas_px: dict[str, int] = {}
        areas_mm2: dict[str, float | None] = {}
        if not check.refused:
            mask = self._cleaned(_resized_argmax(self.probabilities(inputs), image.shape[:2]))
            counts = np.bincount(mask.ravel(), minlength=len(labels))
            pixel_mm2 = None if spacing_mm is None else spacing_mm[0] * spacing_mm[1]
            for index, label in enumerate(labels[1:], start=1):
                areas_px[label] = int(counts[index])
                areas_mm2[label] = None if pixel_mm2 is None else float(counts[index] * pixel_mm2)
        return SegmentationResult(
            mask=mask, labels=labels, areas_px=areas_px, areas_mm2=areas_mm2,
            spacing_mm=spacing_mm, intended_use=check, model_name=self.model.name,
            model_version=self.model.version, artifact_sha256=self.model.artifact_sha256,
            input_sha256=hashlib.sha256(inputs.tobytes()).hexdigest(),
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )  # fmt: skip


def _resized_argmax(probs: NDArray[np.float32], size: tuple[int, ...]) -> NDArray[np.uint8]:
    resized = functional.interpolate(
        torch.from_numpy(probs), size=(int(size[0]), int(size[1])), mode="bilinear",
        align_corners=False,
    )  # fmt: skip
    return resized[0].argmax(dim=0).numpy().astype(np.uint8)
