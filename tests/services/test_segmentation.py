"""Segmentation end to end: train and register (card, ONNX, gate, split), serve through the
model cache, refuse what the model was not made for, evaluate a folder, the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinsight.config import get_settings
from clinsight.imaging.specs import AugmentSpec, TrainConfig
from clinsight.inference.cache import model_cache
from clinsight.registry.kinds import StageAction, change_stage, list_versions
from clinsight.registry.stages import Stage
from clinsight.registry.versions import ModelKind
from clinsight.services.segmentation import outline_png, plain_png, segment_content
from clinsight.services.segmentation_training import (
    SegmentationOutcome,
    evaluate_segmentation,
    train_and_register_segmentation,
)
from tests.support.cli import run_cli, wide_console
from tests.support.segmentation_models import blob_frame, write_blob_folder

__all__ = ["wide_console"]

CONFIG = TrainConfig(architecture="unet", width=4, epochs=2, batch_size=4, seed=0, threads=1,
                     min_epochs=1, augment=AugmentSpec(noise_std=0.0))  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SegmentationOutcome]:
    root = tmp_path_factory.mktemp("seg")
    data = write_blob_folder(root / "polyps", 12)
    outcome = train_and_register_segmentation(
        root / "registry", data, CONFIG, image_size=32, depth=2, val_fraction=0.25,
        name="blobs", run_dir=root / "run",
    )  # fmt: skip
    return root, outcome


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_registered_with_split_card_gate_and_onnx(
    trained: tuple[Path, SegmentationOutcome],
) -> None:
    root, outcome = trained
    model = outcome.model
    assert model is not None
    assert model.kind is ModelKind.SEGMENTATION
    assert (len(model.split.train), len(model.split.val), model.split.seed) == (9, 3, 0)
    assert set(model.split.val) == set(outcome.validation.case_ids)
    record = json.loads((model.path / "model.json").read_text())
    assert record["onnx"]["max_abs_diff_vs_torch"] <= 1e-4
    card = model.card_path.read_text()
    for heading in ("## Intended use", "## Data and training", "## Metrics", "## Limitations"):
        assert heading in card
    assert "plots/worst_cases.png" in card
    assert (root / "run" / "plots" / "dice_histogram.png").is_file()
    gate = model.intended_use_gate
    assert gate is not None
    assert not gate.greyscale
    assert gate.colour_minimum is not None
    assert model.metrics["validation"]["n"] == 3


def test_stages_through_the_generic_registry(trained: tuple[Path, SegmentationOutcome]) -> None:
    root, _ = trained
    change_stage(root / "registry", ModelKind.SEGMENTATION, "blobs", StageAction.PROMOTE, 1)
    [version] = list_versions(root / "registry", ModelKind.SEGMENTATION)
    assert version.stage is Stage.PRODUCTION


def test_predict_areas_and_outline(trained: tuple[Path, SegmentationOutcome]) -> None:
    root, _ = trained
    predictor = model_cache(root / "registry").segmentation("blobs", 1)
    frame, _ = blob_frame(50)
    pixels = (frame / 255).astype(np.float32)
    # Nine training images make a tight input-statistics limit; warn instead of refusing.
    result = predictor.predict(pixels, warn_only=True)
    assert not result.refused
    assert result.mask is not None
    assert result.mask.shape == (40, 48)
    assert result.areas_px["lesion"] == int((result.mask == 1).sum())
    assert result.areas_mm2 == {"lesion": None}
    spaced = predictor.predict(pixels, spacing_mm=(0.5, 0.2), warn_only=True)
    assert spaced.areas_mm2["lesion"] == pytest.approx(spaced.areas_px["lesion"] * 0.1)
    drawn = outline_png(pixels, result.mask)
    assert drawn[:4] == b"\x89PNG"
    assert plain_png(pixels)[:4] == b"\x89PNG"
    one = np.zeros((40, 48), np.uint8)
    one[10:20, 10:20] = 1
    outlined = np.asarray(Image.open(io.BytesIO(outline_png(pixels, one))))
    assert tuple(outlined[10, 15]) == (255, 0, 255)
    assert tuple(outlined[15, 15]) != (255, 0, 255)


def test_colour_model_refuses_a_greyscale_radiograph(
    trained: tuple[Path, SegmentationOutcome],
) -> None:
    root, _ = trained
    predictor = model_cache(root / "registry").segmentation("blobs", 1)
    rows = np.linspace(0, 1, 40)[:, None] * np.ones((1, 48))
    radiograph = np.asarray(rows * 200 + 30, dtype=np.uint8)
    segmented = segment_content(predictor, _png(radiograph))
    result = segmented.result
    assert not segmented.is_dicom
    assert result.refused
    assert result.mask is None
    assert result.areas_px == {}
    assert any("greyscale picture" in reason for reason in result.intended_use.reasons)


def test_evaluate_any_folder_in_the_layout(
    trained: tuple[Path, SegmentationOutcome], tmp_path: Path
) -> None:
    root, _ = trained
    other = write_blob_folder(tmp_path / "held", 3, start=100)
    report = evaluate_segmentation(root / "registry", "blobs", other, plots_dir=tmp_path / "p")
    assert report.case_ids == ("case100", "case101", "case102")
    assert 0.0 <= report.values["dice"] <= 1.0
    assert (tmp_path / "p" / "worst_cases.png").is_file()


def test_command_line_train_evaluate_predict(tmp_path: Path) -> None:
    data = write_blob_folder(tmp_path / "polyps", 8)
    code, out = run_cli("segment", "train", "--data", str(data), "--name", "cli-blobs",
                        "--image-size", "32", "--width", "4", "--depth", "2", "--epochs", "1",
                        "--batch-size", "4", "--run-dir", str(tmp_path / "run"),
                        "--keep-largest", "1")  # fmt: skip
    assert code == 0, out
    assert "Registered segmentation model cli-blobs v1" in out
    served = model_cache(get_settings().resolved_registry_dir).segmentation("cli-blobs", 1)
    assert served.keep_largest == 1  # recorded with the model, applied when it predicts
    code, out = run_cli("segment", "evaluate", "--name", "cli-blobs", "--data", str(data))
    assert code == 0, out
    assert "dice" in out
    grey = np.asarray(np.linspace(30, 230, 40)[:, None] * np.ones((1, 48)), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "radiograph.png")
    code, out = run_cli(
        "segment",
        "predict",
        "--name",
        "cli-blobs",
        str(tmp_path / "radiograph.png"),
        "--outline",
        str(tmp_path / "o.png"),
    )
    assert code == 2, out
    assert "greyscale picture" in out
    assert "areas_px" in out
    assert not (tmp_path / "o.png").exists()
    code, out = run_cli("models", "list", "--kind", "segmentation")
    assert code == 0, out
    assert "cli-blobs" in out
    assert get_settings().resolved_registry_dir.is_dir()
