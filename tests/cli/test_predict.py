"""`clinsight predict image`: the finding, the band behind it, or no finding outside the
model's intended use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinsight.config import get_settings
from clinsight.imaging.networks import NetworkConfig
from tests.support.cli import run_cli, wide_console
from tests.support.image_models import band, register_tiny, tiny_gate, tiny_network, write_plot

__all__ = ["wide_console"]


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (1.0, 1.0)])
def test_the_cli_says_indeterminate_inside_the_band(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, low: float, high: float
) -> None:
    register_tiny(tmp_path / "reg", decision_thresholds=band(low, high))
    monkeypatch.setenv("CLINSIGHT_REGISTRY_DIR", str(tmp_path / "reg"))
    monkeypatch.setenv("CLINSIGHT_THREADS", "1")
    get_settings.cache_clear()
    code, output = run_cli("predict", "image", str(write_plot(tmp_path / "x.png")),
                           "--model", "tiny")  # fmt: skip
    assert code == 0, output
    if low < high:
        assert "x.png: Indeterminate" in output
        assert "negative below 0.0%, indeterminate in between" in output
    else:
        assert "x.png: class0 (" in output
        assert "in between" not in output
    assert "(validation sensitivity 96.0%, specificity 97.0%)" in output


def test_the_cli_warns_for_a_patient_outside_the_intended_population(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clinsight.data.intended_population import IntendedPopulation

    population = IntendedPopulation(1, 5, "children aged 1 to 5 years", "a test")
    register_tiny(tmp_path / "reg", intended_population=population)
    monkeypatch.setenv("CLINSIGHT_REGISTRY_DIR", str(tmp_path / "reg"))
    monkeypatch.setenv("CLINSIGHT_THREADS", "1")
    get_settings.cache_clear()
    image = str(write_plot(tmp_path / "x.png"))
    code, output = run_cli("predict", "image", image, "--model", "tiny", "--birth-date",
                           "2019-05-01", "--study-date", "2026-01-10")  # fmt: skip
    assert code == 0, output
    assert "Warning: The patient was 6 years old at the study date (2026-01-10), outside " in (
        " ".join(output.split())
    )
    code, output = run_cli("predict", "image", image, "--model", "tiny", "--birth-date",
                           "2019-05-01", "--study-date", "2023-01-10")  # fmt: skip
    assert code == 0, output
    assert "years old at the study date" not in output


def test_the_cli_monitors_a_version_and_refuses_a_recalibration_without_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clinsight.services.users import create_local_account
    from clinsight.store.roles import Role

    register_tiny(tmp_path / "reg", decision_thresholds=band(0.3, 0.7))
    monkeypatch.setenv("CLINSIGHT_REGISTRY_DIR", str(tmp_path / "reg"))
    get_settings.cache_clear()
    settings = get_settings()
    create_local_account(settings, username="root", password="correct horse battery staple",
                         role=Role.ADMIN)  # fmt: skip
    code, output = run_cli("models", "monitor", "tiny", "1", "--as", "root")
    assert code == 0, output
    assert "No baseline: this version was registered without one." in output
    assert "Agreement rate - ({}); 0 confirmed labels." in output
    code, output = run_cli("models", "monitor", "tiny", "1", "--as", "root", "--json")
    assert code == 0, output
    assert '"baseline": null' in output
    code, output = run_cli("models", "recalibrate", "tiny", "1", "--as", "root")
    assert code == 2
    assert "too few confirmed labels to recalibrate tiny v1: 0" in " ".join(output.split())
    code, output = run_cli("models", "recalibrate", "tiny", "1", "--as", "nobody")
    assert code == 2
    assert "no account is named 'nobody'" in output


@pytest.mark.parametrize("warn_only", ["[]", '["tiny"]'])
def test_the_cli_gives_no_finding_for_a_colour_photo_unless_the_model_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warn_only: str
) -> None:
    gate, _ = tiny_gate(tiny_network(NetworkConfig("cnn", 1, 2, width=4)))
    register_tiny(tmp_path / "reg", intended_use_gate=gate)
    photo = np.zeros((32, 32, 3), dtype=np.uint8)
    photo[..., 0] = 220
    Image.fromarray(photo).save(tmp_path / "photo.png")
    monkeypatch.setenv("CLINSIGHT_REGISTRY_DIR", str(tmp_path / "reg"))
    monkeypatch.setenv("CLINSIGHT_THREADS", "1")
    monkeypatch.setenv("CLINSIGHT_INTENDED_USE_WARN_ONLY", warn_only)
    get_settings.cache_clear()
    code, output = run_cli("predict", "image", str(tmp_path / "photo.png"), "--model", "tiny")
    assert code == 0, output
    colour = "This is a colour picture (mean colour saturation 0.86, limit 0.08)"
    if warn_only == "[]":
        assert "photo.png: no finding (outside the intended use of tiny v1)" in output
        assert f"Refused: {colour}" in output
        assert "Refused: No finding is given." in output
        assert "calibrated probability" not in output
    else:
        assert "photo.png: class" in output
        assert f"Warning: {colour}" in output
