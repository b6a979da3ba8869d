"""`clinsight predict batch`: a summary line, the unreadable files with their reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.config import get_settings
from tests.support.batch import image_folder
from tests.support.cli import run_cli, wide_console
from tests.support.image_models import register_tiny

__all__ = ["wide_console"]


def test_the_cli_predicts_a_folder_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_tiny(tmp_path / "reg")
    monkeypatch.setenv("CLINSIGHT_REGISTRY_DIR", str(tmp_path / "reg"))
    monkeypatch.setenv("CLINSIGHT_THREADS", "1")
    get_settings.cache_clear()
    folder = image_folder(tmp_path / "in", images=2)
    out = tmp_path / "out.parquet"
    args = ("predict", "batch", str(folder), "--model", "tiny", "--out", str(out))
    code, output = run_cli(*args, "--fhir-bundle", str(tmp_path / "b.json"))
    assert code == 0, output
    assert "tiny v1: 2 images predicted (0 outside the intended use, no finding), 0 already in " \
           "out.parquet, 2 unreadable;" in output  # fmt: skip
    assert "Unreadable inputs (all in out.errors.parquet)" in output
    assert "notes/readme.txt │ the content is not a recognised image" in output
    assert (tmp_path / "b.json").is_file()
    code, output = run_cli(*args)
    assert code == 0, output
    assert "0 images predicted (0 outside the intended use, no finding), 2 already in" in output


def test_the_help_says_nothing_goes_to_the_patient_store() -> None:
    code, output = run_cli("predict", "batch", "--help")
    assert code == 0
    assert "stores nothing in the patient store" in " ".join(output.split())


def test_a_missing_folder_is_one_plain_line_without_a_progress_bar(tmp_path: Path) -> None:
    code, output = run_cli("predict", "batch", str(tmp_path / "nowhere"), "--model", "tiny")
    assert code != 0
    assert "does not exist; give a folder of images or a study list" in output
    assert "Predicting with" not in output
