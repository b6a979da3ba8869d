"""The command line as a user meets it: help, a short real training run, the registry, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinsight.config import get_settings
from tests.support.cli import run_cli, wide_console

__all__ = ["wide_console"]  # the autouse fixture: a wide terminal


def test_help_lists_every_command_group() -> None:
    code, out = run_cli("--help")
    assert code == 0
    for group in ("data", "train", "evaluate", "predict", "models"):
        assert group in out


def test_train_help_explains_the_ensemble_option() -> None:
    code, out = run_cli("train", "image", "--help")
    assert code == 0
    assert "--ensemble" in out
    assert "deep ensemble" in " ".join(out.replace("│", " ").split())


def test_an_ensemble_is_trained_registered_and_described(tmp_path: Path, data_dir: Path) -> None:
    code, out = run_cli(
        "train", "image", "--dataset", "breastmnist", "--architecture", "cnn", "--width", "4",
        "--epochs", "1", "--train-subset", "64", "--ensemble", "2", "--run-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0, out
    assert "Network 1/2 (seed 0): 1 epochs" in out
    assert "Network 2/2 (seed 10000): 1 epochs" in out
    assert "Ensemble of 2 networks: val AUC" in out
    code, out = run_cli("models", "show", "image", "breastmnist")
    assert code == 0
    assert "2 independently trained networks" in out


def test_data_list_shows_what_is_present() -> None:
    code, out = run_cli("data", "list")
    assert code == 0
    assert "pneumoniamnist" in out
    assert "chestmnist" in out


def test_fetch_of_an_absent_dataset_says_where_to_put_it() -> None:
    code, out = run_cli("data", "fetch", "chestmnist")
    assert code == 2
    assert "chestmnist.npz" in out
    assert "CLINSIGHT_ALLOW_DOWNLOAD" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "image", "--dataset", "nosuchmnist"), "Unknown MedMNIST dataset"),
        (("train", "image", "--dataset", "breastmnist", "--architecture", "vgg"), "vgg"),
        (("train", "image", "--dataset", "breastmnist", "--bogus"), "No such option"),
        (("train", "image", "--dataset", "breastmnist", "--ensemble", "0"), "equal to 1"),
        (
            ("train", "image", "--dataset", "breastmnist", "--class-weighting", "sqrt"),
            "Unknown --class-weighting 'sqrt'; use auto, none, inverse, effective",
        ),
        (("models", "show", "image", "nothing"), "No model named 'nothing'"),
        (("models", "show", "genome", "x"), "'genome' is not one of"),
    ],
)
def test_bad_input_gets_an_actionable_error(args: tuple[str, ...], message: str) -> None:
    code, out = run_cli(*args)
    assert code == 2
    assert message in out


def test_train_register_promote_predict_and_roll_back(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chest radiograph is outside the breast model's intended use: its gate only warns
    # here, so the command's path to a heat map is exercised (refusal: tests/cli).
    monkeypatch.setenv("CLINSIGHT_INTENDED_USE_WARN_ONLY", '["breastmnist"]')
    get_settings.cache_clear()
    train = (
        "train", "image", "--dataset", "breastmnist", "--architecture", "cnn", "--width", "4",
        "--epochs", "1", "--train-subset", "64",
    )  # fmt: skip
    for run in ("a", "b"):
        code, out = run_cli(*train, "--run-dir", str(tmp_path / run))
        assert code == 0, out
        assert "Registered" in out
        assert "auc" in out
    code, out = run_cli("models", "list")
    assert code == 0
    assert "breastmnist" in out
    assert "candidate" in out
    assert run_cli("models", "promote", "image", "breastmnist", "1")[0] == 0
    assert run_cli("models", "promote", "image", "breastmnist", "2")[0] == 0
    code, out = run_cli("models", "rollback", "image", "breastmnist")
    assert code == 0
    assert "image model breastmnist v1 is back in production" in out
    code, out = run_cli("models", "history", "image", "breastmnist")
    assert code == 0
    assert "production" in out
    assert run_cli("models", "verify", "image", "breastmnist", "2")[0] == 0
    code, out = run_cli("models", "show", "image", "breastmnist", "--stage", "production")
    assert code == 0
    assert "malignant" in out

    dicom = data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm"
    heatmap = tmp_path / "cam.png"
    code, out = run_cli(
        "predict", "image", str(dicom), "--model", "breastmnist", "--stage", "production",
        "--heatmap", str(heatmap),
    )  # fmt: skip
    assert code == 0, out
    assert "breastmnist v1" in out
    assert heatmap.exists()

    png = tmp_path / "scan.png"
    Image.fromarray(np.full((32, 32), 128, dtype=np.uint8)).save(png)
    code, out = run_cli("predict", "image", str(png), "--model", "breastmnist", "--json")
    assert code == 0
    assert '"model_version": 2' in out

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    code, out = run_cli("predict", "image", str(text), "--model", "breastmnist")
    assert code == 2
    assert "PNG, JPEG or DICOM" in out

    code, out = run_cli("evaluate", "breastmnist", "--version", "1", "--out", str(tmp_path / "ev"))
    assert code == 0
    assert "accuracy" in out
    assert (tmp_path / "ev" / "evaluation.json").exists()


def test_a_malformed_setting_is_named_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from clinsight.config import get_settings

    monkeypatch.setenv("CLINSIGHT_WORKERS", "abc")
    get_settings.cache_clear()
    try:
        code, output = run_cli("data", "list")
    finally:
        get_settings.cache_clear()
    assert code == 2
    assert "CLINSIGHT_WORKERS='abc'" in output
    assert "fix or unset the variable" in output
