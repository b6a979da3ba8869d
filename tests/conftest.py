"""Shared fixtures: the real data directory (../shared/data unless CLINSIGHT_DATA_DIR is set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinsight.config import get_settings

ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("CLINSIGHT_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data directory; tests needing a file skip only if the whole folder is absent."""
    path = _shared_data()
    if not path.is_dir():
        pytest.skip(f"shared data directory {path} is not present")
    return path


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own HOME and registry; the data directory stays the shared one."""
    monkeypatch.setenv("CLINSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLINSIGHT_DATA_DIR", str(_shared_data()))
    monkeypatch.setenv("CLINSIGHT_ALLOW_DOWNLOAD", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
