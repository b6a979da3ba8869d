"""ONNX Runtime sessions for registered classifiers: fixed threads, full graph optimisation.

A graph may have a second output, "features" (N, D): the penultimate features the
intended-use gate scores; graphs registered before gates have only the logits.

One `OnnxClassifier` per model and process; its `logits` is safe to call from several
threads (ONNX Runtime sessions allow concurrent `run`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from clinsight.errors import ModelError

__all__ = ["OnnxClassifier"]


class OnnxClassifier:
    """A CPU ONNX Runtime session mapping images (N, C, S, S) to logits (N, K).

    `threads` sets the intra-op thread pool (0 lets ONNX Runtime use every core);
    operators run sequentially, so no inter-op pool is needed.
    """

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        """Load the graph at `model_path`.

        Raises:
            ModelError: `threads` is negative, or the file is not a loadable ONNX classifier
                with one 4D image input and one 2D output (and maybe a 2D "features").
        """
        if threads < 0:
            raise ModelError(f"threads must be 0 (all cores) or positive, got {threads}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own untyped exceptions
            raise ModelError(f"Cannot load ONNX model {model_path}: {exc}") from exc
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        fixed = [*inputs[0].shape[1:], *outputs[0].shape[1:]] if inputs and outputs else []
        extra = outputs[1:]
        if (
            len(inputs) != 1
            or not outputs
            or len(inputs[0].shape) != 4
            or len(outputs[0].shape) != 2
            or not (not extra or (len(extra) == 1 and len(extra[0].shape) == 2))
            or not all(isinstance(dim, int) for dim in fixed)
        ):
            raise ModelError(
                f"{model_path} is not an image classifier: expected one (N, C, S, S) input and "
                f"one (N, K) output with fixed C, S, K; found inputs "
                f"{[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}."
            )
        self.model_path = Path(model_path)
        self.threads = threads
        self.input_name: str = inputs[0].name
        self.output_name: str = outputs[0].name
        self.features_name: str | None = extra[0].name if extra else None
        channels, height, width = (int(dim) for dim in inputs[0].shape[1:])
        self.input_shape: tuple[int, int, int] = (channels, height, width)
        self.num_classes: int = int(outputs[0].shape[1])

    @property
    def options(self) -> ort.SessionOptions:
        """The session's effective options (threads, execution mode, optimisation level)."""
        return self._session.get_session_options()

    def logits(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Logits (N, K) for a preprocessed batch (N, C, S, S).

        Raises:
            ModelError: the batch has the wrong shape or dtype, or the run fails.
        """
        return self._run(np.asarray(batch), [self.output_name])[0]

    def logits_and_features(
        self, batch: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        """Logits (N, K) and, where the graph has them, features (N, D) in one run.

        Raises:
            ModelError: the batch has the wrong shape or dtype, or the run fails.
        """
        if self.features_name is None:
            return self.logits(batch), None
        logits, features = self._run(np.asarray(batch), [self.output_name, self.features_name])
        return logits, features

    def _run(self, array: NDArray[np.float32], names: list[str]) -> list[NDArray[np.float32]]:
        if array.dtype != np.float32 or array.ndim != 4 or array.shape[1:] != self.input_shape:
            raise ModelError(
                f"Expected a float32 batch shaped (N, {', '.join(map(str, self.input_shape))}), "
                f"got {array.dtype} {array.shape}; preprocess images with the model's spec."
            )
        try:
            outputs = self._session.run(names, {self.input_name: np.ascontiguousarray(array)})
        except Exception as exc:  # ONNX Runtime raises its own untyped exceptions
            raise ModelError(f"ONNX Runtime failed on {self.model_path}: {exc}") from exc
        return [np.asarray(output, dtype=np.float32) for output in outputs]
