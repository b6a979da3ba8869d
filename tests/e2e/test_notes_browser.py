"""Headless Chromium on the real HTTPS server: a clinician pastes a note, reads it back
highlighted by assertion with the coded problem list and de-identified text, then
searches the patient's notes. Screenshots go to test-artifacts/e2e/."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.service import PASSWORD

pytestmark = BROWSER

NOTE = (
    "Seen by Dr. John Smith on 03/14/2026.\nHistory of hypertension. Denies chest pain.\n"
    "Possible pneumonia.\nFAMILY HISTORY: Mother had diabetes."
)


def test_clinician_reads_and_searches_notes_in_the_browser(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    upload = tmp_path / "follow-up.txt"
    upload.write_text("Follow-up: asthma is controlled on an inhaler. No wheezing.\n")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.goto(f"{server}/login")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_url("**/patients")
        page.fill("#mrn", "E2E-N1")
        page.fill("#name", "Grace Hopper")
        page.fill("#birth_date", "1950-12-09")
        page.select_option("#sex", "female")
        page.click("#create-patient")
        page.click("#notes-link")
        page.wait_for_selector("text=No notes yet.")
        page.fill("#note-text", NOTE)
        page.screenshot(path=str(ARTIFACTS / "notes-1-paste.png"), full_page=True)
        page.click("#save-note")
        page.wait_for_selector("#legend")
        marks = page.eval_on_selector_all(
            "#note mark", "els => els.map(e => [e.textContent, e.className])"
        )
        colour = page.eval_on_selector(
            "#note mark.a-negated", "e => getComputedStyle(e).textDecorationLine"
        )
        problems = page.inner_text("#problems")
        deidentified = page.inner_text("#deidentified")
        page.screenshot(path=str(ARTIFACTS / "notes-2-read.png"), full_page=True)
        page.click("text=All notes of this patient")
        page.set_input_files("#note-file", str(upload))
        page.click("#save-note")
        page.wait_for_selector("#legend")
        page.click("text=All notes of this patient")
        page.fill("#q", "inhaler")
        page.select_option("#mode", "keyword")
        page.click("#search")
        page.wait_for_selector("#hits mark")
        hit = page.inner_text("#hits mark")
        page.screenshot(path=str(ARTIFACTS / "notes-3-search.png"), full_page=True)
        browser.close()
    assert marks == [
        ["hypertension", "a-historical"],
        ["chest pain", "a-negated"],
        ["pneumonia", "a-possible"],
        ["diabetes", "a-family"],
    ]
    assert colour == "line-through"
    assert "I10" in problems
    assert "J18.9" in problems
    assert "John Smith" not in deidentified
    assert hit == "inhaler"
