"""Headless Chromium drives the real HTTPS server: login → patient → upload DICOM → result."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.service import PASSWORD

pytestmark = BROWSER


def test_clinician_gets_a_diagnosis_in_the_browser(server: str, data_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dicom = data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.goto(f"{server}/login")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.screenshot(path=str(ARTIFACTS / "1-login.png"))
        page.click("#login")
        page.wait_for_url("**/patients")
        page.fill("#mrn", "E2E-1")
        page.fill("#name", "Grace Hopper")
        page.fill("#birth_date", "1950-12-09")
        page.select_option("#sex", "female")
        page.click("#create-patient")
        page.wait_for_selector("text=No studies yet.")
        page.screenshot(path=str(ARTIFACTS / "2-patient.png"))
        page.set_input_files("#file", str(dicom))
        page.click("#upload")
        page.click("#confirm-mismatch")  # the file names another patient: filed on purpose
        page.wait_for_selector("#overlay", timeout=60_000)
        label = page.inner_text("#label")
        probability = page.inner_text("#probability")
        warnings = page.locator(".warning").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "3-result.png"), full_page=True)
        page.click("#agree")
        page.wait_for_selector("text=Feedback recorded: agree.")
        loaded = page.evaluate("document.getElementById('overlay').naturalWidth")
        browser.close()
    assert label in {"malignant", "normal, benign"}
    assert probability.endswith("%")
    # The test model reads breast ultrasound and its gate only warns in these tests (the
    # service settings): a chest radiograph of another patient is flagged on the page.
    assert {w.split(",")[0] for w in warnings} >= {
        "The DICOM header differs from the chart (name",
        "The DICOM header gives modality CR",
        "The DICOM header gives body part CHEST",
        "The DICOM header gives photometric interpretation MONOCHROME1",
    }
    assert loaded > 0
