"""The intended-use gate is stored with the model (safetensors + model.json) and the ONNX
graph's second output reproduces PyTorch's penultimate features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clinsight.errors import RegistryError
from clinsight.imaging.features import WithFeatures
from clinsight.imaging.networks import NetworkConfig
from clinsight.inference.runtime import OnnxClassifier
from clinsight.registry.image import get_model
from tests.support.image_models import IMAGE_SIZE, register_tiny, tiny_gate, tiny_network


@pytest.mark.parametrize(
    "config",
    [NetworkConfig("cnn", 1, 2, width=4), NetworkConfig("resnet10", 1, 2, width=4, members=2)],
    ids=["cnn", "resnet-ensemble"],
)
def test_the_onnx_features_match_pytorch_and_the_gate_is_stored(
    tmp_path: Path, config: NetworkConfig
) -> None:
    gate, _ = tiny_gate(tiny_network(config))
    model, network = register_tiny(tmp_path, config=config, intended_use_gate=gate)
    batch = torch.rand(5, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch_logits, torch_features = WithFeatures(network.eval())(batch)
    logits, features = OnnxClassifier(model.onnx_path).logits_and_features(batch.numpy())
    per_member = 4 * config.width if config.architecture == "cnn" else 8 * config.width
    assert features is not None
    assert features.shape == (5, per_member * config.members)
    np.testing.assert_allclose(features, torch_features.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits, torch_logits.numpy(), rtol=0, atol=1e-4)
    stored = get_model(tmp_path, "tiny", verify=True).intended_use_gate
    assert stored is not None
    assert stored.features is not None
    assert gate.features is not None
    assert stored.summary() == gate.summary()
    np.testing.assert_array_equal(stored.features.means, gate.features.means)
    manifest = json.loads((model.path / "manifest.json").read_text())
    assert "gate.safetensors" in json.dumps(manifest)
    assert "## Intended-use gate" in (model.path / "card.md").read_text()


def test_a_gate_fitted_on_other_features_is_refused(tmp_path: Path) -> None:
    gate, _ = tiny_gate(tiny_network(NetworkConfig("cnn", 1, 2, width=8)))
    with pytest.raises(RegistryError, match="fitted on 32 features, but the network has 16"):
        register_tiny(tmp_path, intended_use_gate=gate)


def test_a_model_registered_without_a_gate_has_none(tmp_path: Path) -> None:
    model, _ = register_tiny(tmp_path)
    assert model.intended_use_gate is None
    assert not (model.path / "gate.safetensors").exists()
