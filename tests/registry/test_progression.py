"""Progression models in the registry: ONNX checked against PyTorch, card, reload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clinsight.data.tasks import IN_HOSPITAL_MORTALITY_48H
from clinsight.errors import IntegrityError
from clinsight.inference.cache import ModelCache
from clinsight.inference.progression import ProgressionPredictor
from clinsight.registry.progression import (
    ONNX_FILE,
    WEIGHTS_FILE,
    get_progression_model,
    load_progression_model,
)
from clinsight.registry.versions import ModelKind
from clinsight.services.progression import load_set
from tests.support.progression import tiny_set, train_tiny


@pytest.fixture(scope="module")
def registered(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("progression")
    train_tiny(data_dir, root / "registry", root)
    return root


def test_version_files_card_and_onnx(registered: Path) -> None:
    version = get_progression_model(registered / "registry", "tiny")
    assert (version.version, str(version.stage), version.onnx) == (1, "candidate", True)
    assert {p.name for p in version.path.iterdir()} >= {ONNX_FILE, WEIGHTS_FILE, "card.md"}
    card = json.loads((version.path / "card.json").read_text())
    assert card["calibration"]["method"] == "temperature scaling on validation"
    assert card["preprocessing"]["variables"][:3] == ["ALP", "ALT", "AST"]
    assert version.to_dict()["architecture"] == "grud"


def test_onnx_runtime_matches_pytorch(registered: Path, data_dir: Path, tmp_path: Path) -> None:
    version = get_progression_model(registered / "registry", "tiny")
    predictor = ProgressionPredictor(version)
    folder, outcomes = tiny_set(data_dir, tmp_path, survivors=4, deaths=2)
    arrays, _ = load_set(folder, outcomes, IN_HOSPITAL_MORTALITY_48H)
    np.testing.assert_allclose(predictor.risk(arrays), predictor.model.risk(arrays), atol=1e-5)
    cached = ModelCache(registered / "registry").load(ModelKind.PROGRESSION, "tiny", newest=True)
    assert isinstance(cached.model, ProgressionPredictor)


def test_a_changed_file_is_refused(registered: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "registry"
    shutil.copytree(registered / "registry", copy)
    version = get_progression_model(copy, "tiny")
    (version.path / WEIGHTS_FILE).write_bytes(b"not weights")
    with pytest.raises(IntegrityError):
        load_progression_model(version)
