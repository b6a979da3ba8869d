"""The lung check outside the web: `clinsight predict image` and batch prediction state a
chest classifier's Grad-CAM share inside the lungs of the production lung model (a tiny
U-Net trained here on synthetic chest frames), and nothing without one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from torch import nn

from clinsight.config import get_settings
from clinsight.data.images import read_image
from clinsight.inference.cache import model_cache
from clinsight.inference.predictors import ImagePredictor
from clinsight.registry.image import get_model
from clinsight.registry.segmentation import REGISTRY
from clinsight.registry.stages import Stage
from clinsight.services.batch_predict import predict_batch, read_results
from clinsight.services.diagnosis import prediction_heat
from clinsight.services.explanation_lungs import LungModels, lung_share
from tests.support.cli import run_cli, wide_console
from tests.support.image_models import TRAINING, register_tiny
from tests.support.segmentation_models import (
    chest_frame,
    register_lung_model,
    train_tiny_lung_network,
)

__all__ = ["wide_console"]


@pytest.fixture(scope="module")
def lung_network() -> nn.Module:
    """The tiny lung U-Net, trained once for the module (a few seconds)."""
    return train_tiny_lung_network()


def _chest_folder(root: Path, count: int = 3) -> Path:
    """`count` synthetic chest frames as PNGs and one file that is no image."""
    root.mkdir(parents=True)
    for seed in range(count):
        frame, _ = chest_frame(40 + seed)
        Image.fromarray(np.rint(frame * 255).astype(np.uint8)).save(root / f"cxr{seed}.png")
    (root / "notes.txt").write_text("not an image\n", encoding="utf-8")
    return root


def _registry(tmp_path: Path, lung_network: nn.Module, *, production: bool = True) -> Path:
    registry = tmp_path / "reg"
    register_tiny(registry, name="chest")  # trained on PneumoniaMNIST: a chest classifier
    register_tiny(registry, name="breast", training={**TRAINING, "dataset": "breastmnist"})
    register_lung_model(registry, lung_network)
    if production:
        REGISTRY.promote(registry, "tiny-lungs", 1, Stage.PRODUCTION)
    return registry


def _expected_share(registry: Path, path: Path, class_index: int | None = None) -> float:
    """The share computed directly: the classifier's Grad-CAM against the lung model."""
    predictor = ImagePredictor(get_model(registry, "chest"), threads=1)
    image = read_image(path)
    heat = prediction_heat(predictor, image, class_index)
    found = lung_share(model_cache(registry).segmentation("tiny-lungs"), image, heat)
    assert found.overlap is not None
    assert found.overlap.share_inside is not None
    return found.overlap.share_inside


def _use(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINSIGHT_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("CLINSIGHT_THREADS", "1")
    get_settings.cache_clear()


def test_predict_image_states_the_share_inside_the_lungs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lung_network: nn.Module
) -> None:
    registry = _registry(tmp_path, lung_network)
    _use(registry, monkeypatch)
    image = _chest_folder(tmp_path / "in", 1) / "cxr0.png"
    code, output = run_cli("predict", "image", str(image), "--model", "chest", "--json")
    assert code == 0, output
    lungs = json.loads(output)["lungs"]
    assert lungs["model_name"] == "tiny-lungs"
    assert lungs["share_inside"] == pytest.approx(_expected_share(registry, image), rel=1e-5)
    assert lungs["mostly_outside"] == (lungs["share_inside"] < 0.5)
    code, output = run_cli("predict", "image", str(image), "--model", "chest",
                           "--heatmap", str(tmp_path / "cam.png"))  # fmt: skip
    assert code == 0, output
    assert "of the heat map lies inside the lungs outlined by tiny-lungs v1" in output
    assert f"{lungs['share_inside']:.0%} of the heat map" in output
    code, output = run_cli("predict", "image", str(image), "--model", "breast", "--json")
    assert code == 0, output
    assert json.loads(output)["lungs"] is None  # not a chest classifier


def test_predict_image_has_no_lung_check_without_a_production_lung_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lung_network: nn.Module
) -> None:
    _use(_registry(tmp_path, lung_network, production=False), monkeypatch)
    image = _chest_folder(tmp_path / "in", 1) / "cxr0.png"
    code, output = run_cli("predict", "image", str(image), "--model", "chest", "--json")
    assert code == 0, output
    assert json.loads(output)["lungs"] is None
    code, output = run_cli("predict", "image", str(image), "--model", "chest")
    assert code == 0, output
    assert "heat map" not in output


def test_batch_prediction_fills_the_lung_columns(tmp_path: Path, lung_network: nn.Module) -> None:
    registry = _registry(tmp_path, lung_network)
    folder = _chest_folder(tmp_path / "in")
    lungs = LungModels(registry, model_cache(registry).segmentation)
    bundle = tmp_path / "bundle.json"
    outcome = predict_batch(folder, tmp_path / "out.parquet", registry_dir=registry,
                            model_name="chest", threads=1, batch_size=2, lungs=lungs,
                            fhir_bundle=bundle)  # fmt: skip
    table = read_results(tmp_path / "out.parquet").set_index("key")
    assert list(table.index) == ["cxr0.png", "cxr1.png", "cxr2.png"]
    labels = get_model(registry, "chest").labels
    for key, row in table.iterrows():
        expected = _expected_share(registry, folder / str(key), labels.index(row["label"]))
        assert row["lung_share"] == pytest.approx(expected, rel=1e-5)
        assert row["lung_mostly_outside"] == (expected < 0.5)
        assert str(row["lung_note"]).startswith(f"{expected:.0%} of the heat map lies inside")
    assert outcome.lung_flagged == int(table["lung_mostly_outside"].sum())
    notes = [e["resource"]["note"] for e in json.loads(bundle.read_text())["entry"]]
    assert all(any(n["text"].startswith("Explanation check: ") for n in note) for note in notes)
    plain = predict_batch(folder, tmp_path / "plain.parquet", registry_dir=registry,
                          model_name="chest", threads=1)  # fmt: skip
    assert plain.lung_flagged == 0
    without = read_results(tmp_path / "plain.parquet")
    assert without["lung_share"].isna().all()
    assert (without["lung_note"] == "").all()


def test_results_written_before_the_lung_check_still_resume(
    tmp_path: Path, lung_network: nn.Module
) -> None:
    registry = _registry(tmp_path, lung_network)
    folder = _chest_folder(tmp_path / "in")
    out = tmp_path / "out.parquet"
    predict_batch(folder, out, registry_dir=registry, model_name="chest", threads=1)
    older = pd.read_parquet(out).drop(columns=["lung_share", "lung_mostly_outside", "lung_note"])
    older.iloc[:2].to_parquet(out, index=False)
    again = predict_batch(folder, out, registry_dir=registry, model_name="chest", threads=1)
    assert (again.skipped, again.predicted) == (2, 1)
    table = read_results(out)
    assert len(table) == 3
    assert math.isnan(float(table["lung_share"].iloc[0]))
