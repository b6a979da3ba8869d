"""ONNX export and safetensors weights: exact parity with PyTorch, dynamic batch, no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file

from clinsight.errors import ModelError
from clinsight.imaging.networks import ARCHITECTURES, Ensemble, NetworkConfig
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.inference.predictors import load_torch_model
from clinsight.inference.runtime import OnnxClassifier
from clinsight.registry.export import EXPORT_TOLERANCE, export_onnx, save_weights
from tests.support.image_models import IMAGE_SIZE, register_tiny, tiny_network


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_onnx_matches_pytorch_for_every_architecture(architecture: str, tmp_path: Path) -> None:
    config = NetworkConfig(architecture, 3, 5, width=4)
    network = tiny_network(config)
    path = tmp_path / "model.onnx"
    difference = export_onnx(network, PreprocessSpec(IMAGE_SIZE, 3), path)
    assert 0 <= difference <= EXPORT_TOLERANCE
    assert network.training, "the caller's module must stay in train mode"

    batch = torch.randn(7, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"image": batch.numpy()})
    network.eval()
    with torch.no_grad():
        torch_logits = network(batch).numpy()
    assert onnx_logits.shape == (7, 5)
    np.testing.assert_allclose(onnx_logits, torch_logits, rtol=0, atol=1e-4)


def test_onnx_graph_has_named_io_dynamic_batch_and_opset_17(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(tiny_network(NetworkConfig("cnn", 1, 2, width=4)), PreprocessSpec(28, 1), path)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    (image,) = graph.graph.input
    (logits,) = graph.graph.output
    assert image.name == "image"
    assert logits.name == "logits"
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 28, 28]
    assert logits.type.tensor_type.shape.dim[0].dim_param == "batch"
    opsets = {o.domain: o.version for o in graph.opset_import}
    assert opsets[""] >= 17


def test_export_rejects_old_opset(tmp_path: Path) -> None:
    network = tiny_network(NetworkConfig("cnn", 1, 2, width=4))
    with pytest.raises(ModelError, match="opset 13 is too old; use 17"):
        export_onnx(network, PreprocessSpec(28, 1), tmp_path / "m.onnx", opset=13)


def test_export_outside_tolerance_raises_and_leaves_no_file(tmp_path: Path) -> None:
    network = tiny_network(NetworkConfig("cnn", 1, 2, width=4))
    path = tmp_path / "m.onnx"
    with pytest.raises(ModelError, match=r"logits differ by up to .* \(allowed -1\)"):
        export_onnx(network, PreprocessSpec(28, 1), path, tolerance=-1.0)
    assert not path.exists()


def test_export_of_wrong_input_shape_raises_model_error(tmp_path: Path) -> None:
    network = tiny_network(NetworkConfig("cnn", 1, 2, width=4))
    with pytest.raises(ModelError, match=r"CompactCNN does not accept images shaped \(3, 28, 28\)"):
        export_onnx(network, PreprocessSpec(28, 3), tmp_path / "m.onnx")


def test_weights_round_trip_through_safetensors(tmp_path: Path) -> None:
    network = tiny_network(NetworkConfig("resnet10", 3, 3, width=4))
    path = tmp_path / "weights.safetensors"
    save_weights(network, path)
    loaded = load_file(str(path))
    state = network.state_dict()
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert path.read_bytes()[:2] != b"\x80\x04"  # not a pickle stream


def test_dynamo_exporter_takes_over_when_the_legacy_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def legacy_gone(*_args: object) -> None:
        raise RuntimeError("legacy exporter removed")

    monkeypatch.setattr("clinsight.registry.export._export_torchscript", legacy_gone)
    path = tmp_path / "model.onnx"
    difference = export_onnx(
        tiny_network(NetworkConfig("cnn", 1, 2, width=4)), PreprocessSpec(28, 1), path
    )
    assert difference <= EXPORT_TOLERANCE
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["logits"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_ensemble_exports_as_one_graph_matching_pytorch(tmp_path: Path) -> None:
    network = tiny_network(NetworkConfig("resnet10", 1, 2, width=4, members=3))
    path = tmp_path / "model.onnx"
    assert export_onnx(network, PreprocessSpec(IMAGE_SIZE, 1), path) <= EXPORT_TOLERANCE
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["logits"]
    batch = torch.randn(7, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"image": batch.numpy()})
    with torch.no_grad():
        torch_logits = network.eval()(batch).numpy()
    np.testing.assert_allclose(onnx_logits, torch_logits, rtol=0, atol=1e-4)


def test_registered_ensemble_reloads_as_the_same_ensemble(tmp_path: Path) -> None:
    config = NetworkConfig("cnn", 1, 2, width=4, members=2)
    model, network = register_tiny(tmp_path / "reg", config=config)
    assert model.network_config.members == 2
    loaded = load_torch_model(model)
    assert isinstance(loaded, Ensemble)
    batch = torch.rand(5, 1, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        expected = network.eval()(batch).numpy()
        torch.testing.assert_close(loaded(batch), torch.from_numpy(expected), rtol=0, atol=0)
    onnx_logits = OnnxClassifier(model.onnx_path, threads=1).logits(batch.numpy())
    np.testing.assert_allclose(onnx_logits, expected, rtol=0, atol=1e-4)
