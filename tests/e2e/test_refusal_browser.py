"""Headless Chromium on the real HTTPS server, with the gate refusing (the default): a
screenshot of the login page, a colour photo and a CT slice each get no finding, with the
reasons in words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinsight.config import Settings
from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.service import PASSWORD

pytestmark = BROWSER


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The service's settings with every model's gate refusing, as in production."""
    return settings.model_copy(update={"intended_use_warn_only": []})


def _photo(path: Path) -> Path:
    """A colour picture: smooth hues with a few bright blobs, like a snapshot."""
    y, x = np.mgrid[0:240, 0:320] / 240.0
    rgb = np.stack([0.5 + 0.5 * np.sin(6 * x), 0.5 + 0.5 * np.cos(5 * y), 0.6 * x * y], -1)
    rgb[60:120, 80:160] = (0.9, 0.2, 0.1)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


def test_a_screenshot_a_photo_and_a_ct_slice_get_no_finding(
    server: str, data_dir: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ct = data_dir / "dicom" / "pydicom_data" / "693_UNCR.dcm"
    headlines: dict[str, str] = {}
    reasons: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.goto(f"{server}/login")
        screenshot = tmp_path / "login-page.png"
        page.screenshot(path=str(screenshot))
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_url("**/patients")
        page.fill("#mrn", "E2E-REFUSE")
        page.fill("#name", "Grace Hopper")
        page.fill("#birth_date", "1950-12-09")
        page.select_option("#sex", "female")
        page.click("#create-patient")
        page.wait_for_selector("text=No studies yet.")
        patient_url = page.url
        for name, path in (("screenshot", screenshot), ("photo", _photo(tmp_path / "p.png")),
                           ("ct", ct)):  # fmt: skip
            page.goto(patient_url)
            page.set_input_files("#file", str(path))
            page.click("#upload")
            page.wait_for_selector("#headline, #confirm-mismatch", timeout=60_000)
            if page.locator("#confirm-mismatch").count():  # the CT names another patient
                page.click("#confirm-mismatch")
                page.wait_for_selector("#headline", timeout=60_000)
            headlines[name] = page.inner_text("#headline")
            reasons[name] = page.locator("#intended-use p").all_inner_texts()
            page.screenshot(path=str(ARTIFACTS / f"refused-{name}.png"), full_page=True)
        browser.close()
    for name in ("screenshot", "photo", "ct"):
        assert headlines[name].startswith("No finding"), (name, headlines[name])
        assert reasons[name], name
    assert any("colour" in r for r in reasons["photo"])
    assert any("CT" in r for r in reasons["ct"])
