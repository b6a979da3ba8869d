"""Worker processes get the parent's settings through the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from clinsight.config import Settings
from clinsight.serve import export_settings


def test_exported_settings_read_back_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("CLINSIGHT_")]:
        monkeypatch.delenv(key)
    settings = Settings(
        home=tmp_path,
        workers=2,
        request_threads=3,
        jwt_secret=SecretStr("s" * 40),
        cds_hooks_issuers={"https://ehr.example": str(tmp_path / "jwks.json")},
    )
    before = dict(os.environ)
    try:
        export_settings(settings)
        again = Settings()
    finally:
        os.environ.clear()
        os.environ.update(before)
    assert again.model_dump() == settings.model_dump()
    assert again.jwt_secret is not None
    assert again.jwt_secret.get_secret_value() == "s" * 40
