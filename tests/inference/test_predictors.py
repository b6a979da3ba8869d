"""Image predictions: parity with PyTorch + Preprocess, calibration, provenance, Grad-CAM model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax

from clinsight.data.medmnist import TaskType
from clinsight.errors import IntegrityError, ModelError
from clinsight.evaluation.selection import Calibrator, DecisionRule
from clinsight.imaging.networks import NetworkConfig
from clinsight.imaging.transforms import Preprocess
from clinsight.inference.predictors import ImagePredictor, load_torch_model
from clinsight.registry import image
from clinsight.registry.image import get_model
from clinsight.registry.stages import Stage
from tests.support.image_models import register_tiny


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (NetworkConfig("cnn", 1, 2, width=4), (512, 512)),
        (NetworkConfig("resnet10", 3, 3, width=4), (512, 512, 3)),
    ],
)
def test_prediction_matches_pytorch_with_preprocess(
    tmp_path: Path, config: NetworkConfig, shape: tuple[int, ...]
) -> None:
    model, network = register_tiny(tmp_path / "reg", config=config, temperature=1.7)
    image = np.random.default_rng(3).random(shape, dtype=np.float32)
    prediction = ImagePredictor.from_registry(tmp_path / "reg", "tiny").predict(image)

    network_input = Preprocess(model.preprocess)(image)
    with torch.no_grad():
        logits = network.eval()(torch.from_numpy(network_input[None])).numpy()[0]
    expected = softmax(logits.astype(np.float64) / 1.7)
    probabilities = np.array(list(prediction.probabilities.values()))
    assert list(prediction.probabilities) == list(model.labels)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-4)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    best = int(np.argmax(expected))
    assert prediction.label == model.labels[best]
    assert prediction.probability == pytest.approx(expected[best], abs=1e-4)
    assert prediction.present == (prediction.label,)
    assert prediction.positive_probability == prediction.probabilities[model.labels[1]]
    assert (prediction.model_name, prediction.model_version) == ("tiny", 1)
    assert prediction.artifact_sha256 == model.artifact_sha256
    assert prediction.input_sha256 == hashlib.sha256(network_input.tobytes()).hexdigest()
    assert prediction.latency_ms > 0
    assert prediction.to_dict()["present"] == [prediction.label]


def test_multi_label_uses_independent_sigmoids(tmp_path: Path) -> None:
    config = NetworkConfig("cnn", 1, 4, width=4)
    model, network = register_tiny(
        tmp_path / "reg", config=config, task=TaskType.MULTI_LABEL, temperature=0.8
    )
    image = np.random.default_rng(5).random((64, 80), dtype=np.float32)
    prediction = ImagePredictor(model).predict(image)
    with torch.no_grad():
        tensor = torch.from_numpy(Preprocess(model.preprocess)(image)[None])
        logits = network.eval()(tensor).numpy()[0]
    expected = expit(logits.astype(np.float64) / 0.8)
    np.testing.assert_allclose(list(prediction.probabilities.values()), expected, atol=1e-4)
    assert prediction.present == tuple(
        label for label, p in zip(model.labels, expected, strict=True) if p >= 0.5
    )


def test_predict_batch_and_stage_selection(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    register_tiny(reg)
    register_tiny(reg, seed=1)
    image.REGISTRY.promote(reg, "tiny", 1, Stage.PRODUCTION)
    predictor = ImagePredictor.from_registry(reg, "tiny", stage="production", threads=1)
    assert predictor.model.version == 1
    batch = np.random.default_rng(0).normal(size=(6, 1, 28, 28)).astype(np.float32)
    probabilities = predictor.predict_batch(batch)
    assert probabilities.shape == (6, 2)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(6), atol=1e-6)
    with pytest.raises(ModelError, match=r"\(N, 1, 28, 28\), got float32 \(6, 28, 28\)"):
        predictor.predict_batch(batch[:, 0])


def test_from_registry_refuses_a_tampered_model(tmp_path: Path) -> None:
    model, _ = register_tiny(tmp_path / "reg")
    record = model.path / "model.json"
    record.write_text(record.read_text().replace('"temperature": 1.5', '"temperature": 0.5'))
    assert get_model(tmp_path / "reg", "tiny", verify=False).temperature == 0.5
    with pytest.raises(IntegrityError, match=r"model\.json has sha256"):
        ImagePredictor.from_registry(tmp_path / "reg", "tiny")


def test_load_torch_model_rebuilds_the_exact_network(tmp_path: Path) -> None:
    config = NetworkConfig("resnet10", 3, 3, width=4)
    model, network = register_tiny(tmp_path / "reg", config=config)
    rebuilt = load_torch_model(model)
    assert not rebuilt.training
    batch = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(rebuilt(batch), network.eval()(batch))

    weights = model.weights_path.read_bytes()
    model.weights_path.write_bytes(weights[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(IntegrityError, match=r"weights\.safetensors has sha256"):
        load_torch_model(model)


def test_the_calibration_and_decision_rule_chosen_on_validation_are_served(
    tmp_path: Path,
) -> None:
    config = NetworkConfig("cnn", 1, 3, width=4)
    calibrator = Calibrator("vector", scale=(0.5, 1.0, 2.0), bias=(0.3, 0.0, -0.3))
    rule = DecisionRule("prior-corrected", priors=(0.98, 0.01, 0.01))
    model, network = register_tiny(
        tmp_path / "reg", config=config, task=TaskType.MULTI_CLASS, calibration=calibrator,
        decision_rule=rule,
    )  # fmt: skip
    stored = get_model(tmp_path / "reg", "tiny")
    assert (stored.calibration, stored.decision_rule) == (calibrator, rule)
    image = np.random.default_rng(5).random((28, 28), dtype=np.float32)
    prediction = ImagePredictor(stored).predict(image)
    with torch.no_grad():
        logits = network.eval()(torch.from_numpy(Preprocess(model.preprocess)(image)[None]))
    expected = softmax(logits.numpy()[0] * np.array([0.5, 1.0, 2.0]) + [0.3, 0.0, -0.3])
    got = [prediction.probabilities[label] for label in model.labels]
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert prediction.label == model.labels[int(np.argmax(expected))]
    assert prediction.decision == model.labels[int(np.argmax(expected / [0.98, 0.01, 0.01]))]
    assert prediction.decision != prediction.label  # the prior correction changed the class
