"""ONNX Runtime session wrapper: options, parity with PyTorch, input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from clinsight.errors import ModelError
from clinsight.imaging.networks import NetworkConfig
from clinsight.inference.runtime import OnnxClassifier
from tests.support.image_models import register_tiny


def test_session_options_and_shapes(tmp_path: Path) -> None:
    model, _ = register_tiny(tmp_path / "reg", config=NetworkConfig("resnet10", 3, 3, width=4))
    classifier = OnnxClassifier(model.onnx_path, threads=2)
    options = classifier.options
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert (classifier.input_name, classifier.output_name) == ("image", "logits")
    assert classifier.input_shape == (3, 28, 28)
    assert classifier.num_classes == 3


@pytest.mark.parametrize("batch_size", [1, 5])
def test_logits_match_pytorch(tmp_path: Path, batch_size: int) -> None:
    model, network = register_tiny(tmp_path / "reg")
    batch = np.random.default_rng(0).normal(size=(batch_size, 1, 28, 28)).astype(np.float32)
    logits = OnnxClassifier(model.onnx_path).logits(batch)
    with torch.no_grad():
        expected = network.eval()(torch.from_numpy(batch)).numpy()
    assert logits.dtype == np.float32
    assert logits.shape == (batch_size, 2)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


def test_bad_batches_and_files_raise_model_error(tmp_path: Path) -> None:
    model, _ = register_tiny(tmp_path / "reg")
    classifier = OnnxClassifier(model.onnx_path)
    with pytest.raises(ModelError, match=r"float32 batch shaped \(N, 1, 28, 28\), got float64"):
        classifier.logits(np.zeros((1, 1, 28, 28)))  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"got float32 \(1, 3, 28, 28\)"):
        classifier.logits(np.zeros((1, 3, 28, 28), dtype=np.float32))
    with pytest.raises(ModelError, match=r"threads must be 0 \(all cores\) or positive, got -1"):
        OnnxClassifier(model.onnx_path, threads=-1)
    with pytest.raises(ModelError, match=r"Cannot load ONNX model .*missing\.onnx"):
        OnnxClassifier(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"Cannot load ONNX model .*garbage\.onnx"):
        OnnxClassifier(garbage)
