"""The headless browser of the e2e tests: Debian's Chromium, the marks, the screenshot folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.data import ROOT

__all__ = ["ARTIFACTS", "BROWSER", "CHROMIUM"]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
