"""Headless Chromium on the risk page: a boy of ten scored by the Pima model (women 21-81)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from clinsight.config import Settings
from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.risk_models import copy_registry, train_pima_synthea
from tests.support.service import PASSWORD

pytestmark = BROWSER


@pytest.fixture(scope="module")
def risk_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e-risk")
    train_pima_synthea(root)
    return root


@pytest.fixture
def settings(settings: Settings, risk_registry: Path) -> Settings:
    """The e2e settings plus the Pima risk model in production."""
    copy_registry(risk_registry / "_risk", settings.resolved_registry_dir / "_risk")
    return settings


def test_the_risk_page_prefills_age_warns_and_draws_whole_labels(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    born = (date.today() - timedelta(days=3700)).isoformat()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.goto(f"{server}/login")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_url("**/patients")
        page.fill("#mrn", "E2E-RISK")
        page.fill("#name", "Tom Thumb")
        page.fill("#birth_date", born)
        page.select_option("#sex", "male")
        page.click("#create-patient")
        page.wait_for_selector("text=No studies yet.")
        page.goto(page.url.rstrip("/") + "/risk")
        age = page.input_value("#f_Age")
        unit = page.inner_text("#unit-Glucose")
        page.fill("#f_Glucose", "150")
        page.fill("#f_BloodPressure", "70")
        page.fill("#f_BMI", "33.6")
        page.click("#assess")
        page.wait_for_selector("#explanation-chart")
        warning = page.inner_text("#risk-population-warning")
        page.screenshot(path=str(ARTIFACTS / "risk-result.png"), full_page=True)
        cut = page.evaluate(
            """() => [...document.querySelectorAll('#explanation-chart text')]
                 .filter(t => t.getBBox().x < 0).map(t => t.textContent)"""
        )
        browser.close()
    assert (age, unit) == ("10", "mg/dL (2-h OGTT)")
    assert warning.startswith("Outside the validated population (female, age 21–81; ")
    assert "age 10 is outside the training ages 21–81" in warning
    assert "sex male is not in the training population (female only)" in warning
    assert cut == []
