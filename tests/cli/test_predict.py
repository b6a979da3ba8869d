"""`clinsight predict image`: the finding, and the band behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.config import get_settings
from tests.support.cli import run_cli, wide_console
from tests.support.image_models import band, register_tiny, write_plot

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
