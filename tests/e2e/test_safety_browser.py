"""Headless Chromium on the real HTTPS server: a DICOM of another patient asks for
confirmation, a 50 % case reads "Indeterminate", saved feedback is shown on revisit, and the
monitoring page shows the agreement rate."""

from __future__ import annotations

from pathlib import Path

from clinsight.config import Settings
from clinsight.inference.predictors import load_torch_model
from clinsight.registry.image import REGISTRY, Stage, get_model, register_model
from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.image_models import band
from tests.support.service import PASSWORD

pytestmark = BROWSER


def _fifty_percent_model(settings: Settings) -> int:
    """breastmnist v2 in production: v1's network at so high a temperature that every image
    gets P(positive) = 50.0 %, inside the band [30 %, 70 %)."""
    registry = settings.resolved_registry_dir
    current = get_model(registry, "breastmnist", 1)
    made = register_model(
        registry, name="breastmnist", network=load_torch_model(current),
        network_config=current.network_config, preprocess=current.preprocess,
        labels=current.labels, task=current.task, positive_index=current.positive_index,
        temperature=1e6, metrics=current.metrics, training=current.training,
        decision_thresholds=band(0.3, 0.7),
    )  # fmt: skip
    REGISTRY.promote(registry, "breastmnist", made.version, Stage.PRODUCTION)
    return made.version


def _log_in(page: object, server: str, username: str) -> None:
    page.goto(f"{server}/login")  # type: ignore[attr-defined]
    page.fill("#username", username)  # type: ignore[attr-defined]
    page.fill("#password", PASSWORD)  # type: ignore[attr-defined]
    page.click("#login")  # type: ignore[attr-defined]


def test_mismatch_confirmation_indeterminate_feedback_and_monitoring(
    server: str, settings: Settings, data_dir: Path
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    version = _fifty_percent_model(settings)
    dicom = data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm"  # a woman born 1940
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        _log_in(page, server, "alice")
        page.wait_for_url("**/patients")
        page.fill("#mrn", "E2E-BOY")
        page.fill("#name", "Tom Thumb")
        page.fill("#birth_date", "2019-05-01")
        page.select_option("#sex", "male")
        page.click("#create-patient")
        page.wait_for_selector("text=No studies yet.")
        page.set_input_files("#file", str(dicom))
        page.click("#upload")
        page.wait_for_selector("#confirm-mismatch")
        asked = page.inner_text("#confirm-title")
        header_mrn = page.inner_text("#patient-mrn")
        mismatches = page.locator("#mismatches li").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "safety-1-confirm-patient.png"), full_page=True)
        page.click("#confirm-mismatch")
        page.wait_for_selector("#overlay", timeout=60_000)
        headline = page.inner_text("#headline")
        positive = page.inner_text("#positive-probability")
        flagged = page.inner_text("#patient-mismatch")
        page.screenshot(path=str(ARTIFACTS / "safety-2-indeterminate.png"), full_page=True)
        page.click("#agree")
        page.wait_for_selector("text=Feedback recorded: agree.")
        page.goto(page.url.split("?")[0])  # a later visit
        verdict = page.inner_text("#current-verdict")
        pressed = page.get_attribute("#agree", "aria-pressed")
        page.screenshot(path=str(ARTIFACTS / "safety-3-feedback-revisited.png"), full_page=True)
        admin = browser.new_context(ignore_https_errors=True).new_page()
        _log_in(admin, server, "admin")
        admin.wait_for_url("**/models")
        admin.click(f"a[href='/models/image/breastmnist/{version}/monitoring']")
        admin.wait_for_selector("#agreement-rate")
        agreement = admin.inner_text("#agreement-rate")
        counts = admin.inner_text("#verdict-counts")
        admin.screenshot(path=str(ARTIFACTS / "safety-4-monitoring.png"), full_page=True)
        browser.close()
    assert asked == "Does this image belong to this patient?"
    assert header_mrn == "E2E-BOY"
    assert mismatches == [
        "Name: the DICOM file says “CompressedSamples RG1”, the chart “Tom Thumb”.",
        "Patient ID: the DICOM file says “9RG1”, the chart MRN “E2E-BOY”.",
        "Birth date: the DICOM file says 1940-03-05, the chart 2019-05-01.",
        "Sex: the DICOM file says female, the chart male.",
    ]
    assert headline == "Indeterminate"
    assert positive == "50.0%"
    assert flagged.startswith("The DICOM header differs from the chart (name, patient id")
    assert verdict.startswith("Your current verdict: agree")
    assert pressed == "true"
    assert agreement == "100.0%"
    assert counts == "1 agree, 0 disagree, 0 override"
