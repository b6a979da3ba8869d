"""Headless Chromium on the survival page: a patient's curve with its band and the
population's Kaplan-Meier curve, the risk by 1, 3 and 5 years, the missing inputs, and an
age outside the training population refused beside its field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clinsight.config import Settings, get_settings
from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.service import PASSWORD
from tests.support.survival_models import SURVIVAL_MODEL

pytestmark = BROWSER


@pytest.fixture
def settings(
    settings: Settings, survival_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The e2e settings plus the small GBSG2 survival model in production."""
    shutil.copytree(survival_registry / "_survival",
                    settings.resolved_registry_dir / "_survival", dirs_exist_ok=True)  # fmt: skip
    monkeypatch.setenv("CLINSIGHT_SURVIVAL_MODEL", SURVIVAL_MODEL)
    get_settings.cache_clear()
    return get_settings()


def test_the_survival_page_draws_the_curve_and_refuses_an_age_beside_its_field(
    server: str,
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.goto(f"{server}/login")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_url("**/patients")
        page.fill("#mrn", "E2E-SURV")
        page.fill("#name", "Grace Hopper")
        page.fill("#birth_date", "1966-05-01")
        page.select_option("#sex", "female")
        page.click("#create-patient")
        page.wait_for_selector("text=No studies yet.")
        survival_url = page.url.rstrip("/") + "/survival"
        page.goto(survival_url)
        page.fill("#f_age", "58")
        page.fill("#f_tsize", "25")
        page.fill("#f_pnodes", "5")
        page.select_option("#f_tgrade", "II")
        page.select_option("#f_menostat", "Post")
        page.select_option("#f_horTh", "no")
        page.click("#predict")
        page.wait_for_selector("#survival-chart")
        horizons = page.locator("#survival-horizons tbody tr td:first-child").all_inner_texts()
        missing = page.inner_text("#survival-missing")
        drawn = {
            part: page.locator(f"#{part}").count()
            for part in ("patient-curve", "population-km", "survival-band")
        }
        page.screenshot(path=str(ARTIFACTS / "survival-result.png"), full_page=True)
        cut = page.evaluate(
            """() => [...document.querySelectorAll('#survival-chart text')]
                 .filter(t => t.getBBox().x < 0).map(t => t.textContent)"""
        )
        page.fill("#f_age", "90")
        page.click("#predict")
        page.wait_for_selector("#error-age")
        error = page.inner_text("#error-age")
        invalid = page.get_attribute("#f_age", "aria-invalid")
        result_shown = page.locator("#survival-result").count()
        browser.close()
    assert horizons == ["1 year", "3 years", "5 years"]
    assert missing == "Missing inputs, imputed by the model: estrec, progrec."
    assert drawn == {"patient-curve": 1, "population-km": 1, "survival-band": 1}
    assert cut == []
    assert "outside the training population's range 21-80 years" in error
    assert invalid == "true"
    assert result_shown == 0
