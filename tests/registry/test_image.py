"""The registry: versions, stages, promotion and rollback, integrity, atomicity."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from clinsight.data.medmnist import TaskType
from clinsight.errors import IntegrityError, ModelError, ModelNotFoundError, RegistryError
from clinsight.imaging.networks import NetworkConfig
from clinsight.registry.image import REGISTRY, get_model, list_models, verify
from clinsight.registry.stages import Stage
from tests.support.image_models import DATA_SHA256, TRAINING, register_tiny, write_plot


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_register_writes_a_complete_checksummed_folder(tmp_path: Path) -> None:
    plot = write_plot(tmp_path / "roc.png")
    model, _ = register_tiny(tmp_path / "reg", plots=[plot])
    assert (model.name, model.version, model.stage) == ("tiny", 1, Stage.CANDIDATE)
    assert model.path == tmp_path / "reg" / "tiny" / "1"
    files = sorted(p.relative_to(model.path).as_posix() for p in model.path.rglob("*"))
    assert files == [
        "card.json", "card.md", "manifest.json", "model.json", "model.onnx", "plots",
        "plots/roc.png", "weights.safetensors",
    ]  # fmt: skip
    assert not [p for p in model.path.rglob("*") if p.suffix in {".pkl", ".pt", ".pth"}]
    manifest = json.loads((model.path / "manifest.json").read_text())
    assert manifest["artifact"] == "model.onnx"
    assert manifest["artifact_sha256"] == _sha(model.onnx_path) == model.artifact_sha256
    assert manifest["files"] == {
        name: _sha(model.path / name) for name in files if name not in {"plots", "manifest.json"}
    }
    record = json.loads((model.path / "model.json").read_text())
    assert record["training"]["data_sha256"] == DATA_SHA256
    assert record["network"] == {
        "architecture": "cnn", "in_channels": 1, "num_classes": 2, "width": 4,
        "dropout": 0.1, "extra": {}, "members": 1,
    }  # fmt: skip
    assert record["preprocess"] == {"image_size": 28, "channels": 1, "mean": 0.5, "std": 0.25}
    assert (record["task"], record["positive_index"], record["temperature"]) == ("binary", 1, 1.5)
    assert record["onnx"]["input"] == "image"
    assert record["onnx"]["output"] == "logits"
    assert record["onnx"]["max_abs_diff_vs_torch"] <= 1e-4
    assert not list((tmp_path / "reg" / "tiny").glob(".staging-*"))
    summary = json.loads(json.dumps(model.to_dict()))
    assert summary["stage"] == "candidate"
    assert summary["artifact_sha256"] == model.artifact_sha256
    assert summary["metrics"] == record["metrics"]


def test_register_list_get_promote_and_roll_back(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    for seed in range(3):
        register_tiny(reg, seed=seed)
    register_tiny(reg, name="other")
    assert [(m.name, m.version) for m in list_models(reg)] == [
        ("other", 1), ("tiny", 1), ("tiny", 2), ("tiny", 3),
    ]  # fmt: skip
    assert get_model(reg, "tiny").version == 3
    assert get_model(reg, "tiny", 2).version == 2

    assert REGISTRY.promote(reg, "tiny", 1, Stage.PRODUCTION).stage is Stage.PRODUCTION
    assert get_model(reg, "tiny", stage="production").version == 1
    REGISTRY.promote(reg, "tiny", 2, "production", note="better AUC")
    stages = {m.version: m.stage for m in list_models(reg, "tiny")}
    assert stages == {1: Stage.ARCHIVED, 2: Stage.PRODUCTION, 3: Stage.CANDIDATE}

    assert REGISTRY.rollback(reg, "tiny").version == 1
    stages = {m.version: m.stage for m in list_models(reg, "tiny")}
    assert stages == {1: Stage.PRODUCTION, 2: Stage.ARCHIVED, 3: Stage.CANDIDATE}
    assert get_model(reg, "tiny", stage=Stage.ARCHIVED).version == 2

    changes = [(c.version, c.from_stage, c.to_stage, c.note) for c in REGISTRY.history(reg, "tiny")]
    assert changes == [
        (1, None, Stage.CANDIDATE, "registered"),
        (2, None, Stage.CANDIDATE, "registered"),
        (3, None, Stage.CANDIDATE, "registered"),
        (1, Stage.CANDIDATE, Stage.PRODUCTION, ""),
        (1, Stage.PRODUCTION, Stage.ARCHIVED, "replaced by v2"),
        (2, Stage.CANDIDATE, Stage.PRODUCTION, "better AUC"),
        (2, Stage.PRODUCTION, Stage.ARCHIVED, "replaced by v1"),
        (1, Stage.ARCHIVED, Stage.PRODUCTION, "rollback"),
    ]
    assert all(c.at.endswith("+00:00") for c in REGISTRY.history(reg, "tiny"))
    assert REGISTRY.rollback(reg, "tiny", 3).stage is Stage.PRODUCTION
    assert [m.version for m in list_models(reg, "tiny") if m.stage is Stage.PRODUCTION] == [3]


def test_promoting_to_the_current_stage_records_nothing(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    register_tiny(reg)
    REGISTRY.promote(reg, "tiny", 1, Stage.CANDIDATE)
    assert len(REGISTRY.history(reg, "tiny")) == 1


def test_unknown_name_version_or_stage_lists_what_exists(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    register_tiny(reg)
    with pytest.raises(
        ModelNotFoundError, match=r"No model named 'nope' .*; registered models: tiny\."
    ):
        get_model(reg, "nope")
    with pytest.raises(ModelNotFoundError, match=r"has no version 7; it has: v1 \(candidate\)"):
        get_model(reg, "tiny", 7)
    with pytest.raises(ModelNotFoundError, match=r"has no production version; it has: v1"):
        get_model(reg, "tiny", stage=Stage.PRODUCTION)
    with pytest.raises(ModelNotFoundError, match="has no version 1 at stage archived"):
        get_model(reg, "tiny", 1, Stage.ARCHIVED)
    with pytest.raises(ModelNotFoundError, match="no earlier production version"):
        REGISTRY.rollback(reg, "tiny")
    with pytest.raises(ModelNotFoundError, match="registered models: none"):
        list_models(tmp_path / "empty", "tiny")
    assert list_models(tmp_path / "empty") == []


def test_tampered_changed_added_or_removed_files_fail_verification(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    model, _ = register_tiny(reg)
    assert verify(reg, "tiny", 1) == model

    original = model.onnx_path.read_bytes()
    model.onnx_path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(IntegrityError, match=r"model\.onnx has sha256 .* the manifest records"):
        get_model(reg, "tiny")
    with pytest.raises(IntegrityError, match="changed after registration"):
        REGISTRY.promote(reg, "tiny", 1, Stage.PRODUCTION)
    assert get_model(reg, "tiny", verify=False).stage is Stage.CANDIDATE
    model.onnx_path.write_bytes(original)

    (model.path / "notes.txt").write_text("x")
    with pytest.raises(IntegrityError, match=r"files not in its manifest: notes\.txt"):
        verify(reg, "tiny", 1)
    (model.path / "notes.txt").unlink()

    model.weights_path.unlink()
    with pytest.raises(IntegrityError, match=r"lacks weights\.safetensors"):
        verify(reg, "tiny", 1)


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    barrier = threading.Barrier(3)
    versions: list[int] = []
    errors: list[BaseException] = []

    def register(seed: int) -> None:
        try:
            barrier.wait()
            versions.append(register_tiny(reg, seed=seed)[0].version)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(versions) == [1, 2, 3]
    for version in versions:
        verify(reg, "tiny", version)


def test_invalid_requests_are_refused_and_leave_nothing_behind(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    with pytest.raises(RegistryError, match="Invalid model name 'Bad Name'"):
        register_tiny(reg, name="Bad Name")
    with pytest.raises(RegistryError, match=r"training\['data_sha256'\] must be the sha256"):
        register_tiny(reg, training={**TRAINING, "data_sha256": "md5-not-sha"})
    with pytest.raises(ModelError, match="3 labels for 2 outputs"):
        register_tiny(reg, labels=["a", "b", "c"])
    with pytest.raises(ModelError, match=r"positive_index 2 is outside 0\.\.1"):
        register_tiny(reg, positive_index=2)
    with pytest.raises(ModelError, match="Temperature must be a positive finite number"):
        register_tiny(reg, temperature=0.0)
    with pytest.raises(RegistryError, match=r"Plot .*missing\.png does not exist"):
        register_tiny(reg, plots=[tmp_path / "missing.png"])
    with pytest.raises(RegistryError, match="Cannot store object"):
        register_tiny(reg, metrics={"bad": object()})
    assert not [p for p in reg.rglob("*") if p.name not in {"tiny", ".lock"}]
    assert list_models(reg) == []


def test_numpy_and_non_finite_values_are_stored_as_plain_json(tmp_path: Path) -> None:
    metrics = {"test": {"auc": np.float32(0.5), "recall": float("nan"), "n": np.int64(3)}}
    model, _ = register_tiny(
        tmp_path / "reg", metrics=metrics, config=NetworkConfig("cnn", 1, 3, width=4),
        task=TaskType.MULTI_CLASS,
    )  # fmt: skip
    assert model.metrics == {"test": {"auc": 0.5, "recall": None, "n": 3}}
    assert model.task is TaskType.MULTI_CLASS
    assert model.labels == ("class0", "class1", "class2")
