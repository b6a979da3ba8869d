"""Headless Chromium, the clinician's workspace end to end (issue 14's "Done when"): a
clinician works from the worklist, opens a patient record that shows a study, a note and a
risk result together, reviews the finding and downloads its signed report; an admin creates
users and assigns a care team; a second clinician breaks the glass with a reason and sees
the banner; an auditor filters the log, exports it and finds the emergency access listed.
Screenshots go to test-artifacts."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from clinsight.config import Settings
from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.risk_models import copy_registry, train_pima_synthea
from tests.support.service import PASSWORD

pytestmark = BROWSER
MRN = "E2E-WS-1"
REASON = "collapsed in the waiting room, team unreachable"


@pytest.fixture(scope="module")
def risk_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e-workspace")
    train_pima_synthea(root)
    return root


@pytest.fixture
def settings(settings: Settings, risk_registry: Path) -> Settings:
    """The e2e settings plus the Pima risk model in production."""
    copy_registry(risk_registry / "_risk", settings.resolved_registry_dir / "_risk")
    return settings


def _login(browser: Any, server: str, username: str, landing: str) -> Any:
    page = browser.new_context(ignore_https_errors=True, accept_downloads=True).new_page()
    page.goto(f"{server}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"**{landing}")
    return page


def _image(folder: Path) -> Path:
    path = folder / "study.png"
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 120).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"workspace-{name}.png"), full_page=True)


def _clinician_works_a_finding(browser: Any, server: str, tmp_path: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    alice = _login(browser, server, "alice", "/patients")
    alice.fill("#mrn", MRN)
    alice.fill("#name", "Ada Lovelace")
    alice.fill("#birth_date", "1980-12-10")
    alice.select_option("#sex", "female")
    alice.click("#create-patient")
    alice.wait_for_selector("#no-studies")
    alice.set_input_files("#file", str(_image(tmp_path)))
    alice.click("#upload")
    alice.wait_for_selector("#headline")
    seen["result_patient"] = alice.inner_text("#result-patient")
    alice.click("#notes-link")
    alice.fill("#note-text", "Ada has asthma. No fever.")
    alice.click("#save-note")
    alice.wait_for_selector("#note-author")
    seen["note_author"] = alice.inner_text("#note-author")
    alice.click("#risk-link")
    alice.fill("#f_Glucose", "150")
    alice.fill("#f_BMI", "33.6")
    alice.click("#assess")
    alice.wait_for_selector("#risk-result")

    alice.click("#worklist-link")
    alice.wait_for_selector("#worklist")
    seen["worklist_count"] = alice.inner_text("#worklist-count")
    seen["worklist"] = alice.inner_text("#worklist")
    _shot(alice, "worklist")
    alice.click("#worklist a:has-text('Ada Lovelace')")
    alice.wait_for_selector("#timeline")
    seen["facts"] = alice.inner_text("#patient-facts")
    seen["kinds"] = alice.eval_on_selector_all(
        "#timeline > li", "items => items.map(li => li.className)"
    )
    seen["timeline"] = alice.inner_text("#timeline")
    _shot(alice, "patient-record")
    alice.click("#timeline .entry-study ul a")
    alice.wait_for_selector("#agree")
    alice.click("#agree")
    alice.wait_for_selector("#current-verdict")
    seen["verdict"] = alice.inner_text("#current-verdict")
    with alice.expect_download() as download:
        alice.click("#print-report")
    saved = tmp_path / "report.pdf"
    download.value.save_as(str(saved))
    seen["pdf"] = saved.read_bytes()
    _shot(alice, "reviewed-finding")
    alice.click("#worklist-link")
    seen["worklist_after"] = alice.inner_text("#worklist-count")
    return seen


def _admin_sets_up_users(browser: Any, server: str) -> dict[str, Any]:
    admin = _login(browser, server, "admin", "/models")
    admin.click("text=Users")
    for name, role in (("carol", "clinician"), ("dora", "clinician"), ("erik", "auditor")):
        admin.fill("#new-username", name)
        admin.fill("#new-password", PASSWORD)
        admin.select_option("#new-role", role)
        admin.click("#create-user-button")
        admin.wait_for_selector(f"#admin-notice:has-text('Created {role} {name}.')")
    users = admin.inner_text("#users-table")
    admin.click("text=Care teams")
    admin.fill("#add-mrn", MRN)
    admin.fill("#add-username", "carol")
    admin.click("#add-member-button")
    admin.wait_for_selector("#team-table")
    team = admin.inner_text("#team-table")
    _shot(admin, "care-team")
    return {"users": users, "team": team}


def _second_clinician_breaks_the_glass(browser: Any, server: str) -> dict[str, Any]:
    dora = _login(browser, server, "dora", "/patients")
    dora.fill("input[name=q]", MRN)
    dora.click("button:has-text('Search')")
    dora.click("#break-glass-link")
    dora.wait_for_selector("#break-glass-form")
    dora.fill("#bg-reason", REASON)
    dora.fill("#bg-minutes", "30")
    dora.click("#bg-open-button")
    dora.wait_for_selector("#emergency-banner")
    _shot(dora, "break-glass")
    return {"banner": dora.inner_text("#emergency-banner"), "name": dora.inner_text("h1")}


def _auditor_filters_and_exports(browser: Any, server: str, tmp_path: Path) -> dict[str, Any]:
    erik = _login(browser, server, "erik", "/audit")
    erik.fill("#f-user", "alice")
    erik.fill("#f-action", "report.sign")
    erik.click("#apply-filter")
    erik.wait_for_selector("#audit-table")
    rows = erik.inner_text("#audit-table tbody")
    _shot(erik, "audit")
    with erik.expect_download() as download:
        erik.click("#export-csv")
    saved = tmp_path / "audit.csv"
    download.value.save_as(str(saved))
    erik.click("nav a:has-text('Break-glass')")
    erik.wait_for_selector("#active-grants")
    grants = erik.inner_text("#active-grants tbody")
    return {"rows": rows, "csv": saved.read_text("utf-8"), "grants": grants}


def test_the_clinicians_workspace_end_to_end(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        work = _clinician_works_a_finding(browser, server, tmp_path)
        admin = _admin_sets_up_users(browser, server)
        glass = _second_clinician_breaks_the_glass(browser, server)
        audit = _auditor_filters_and_exports(browser, server, tmp_path)
        browser.close()

    assert work["result_patient"] == f"Ada Lovelace (MRN {MRN})"
    assert work["note_author"] == "alice"
    assert work["worklist_count"] == "Showing 1–1 of 1 finding."
    assert "Ada Lovelace" in work["worklist"]
    assert "not reviewed" in work["worklist"]
    assert re.fullmatch(rf"MRN {MRN} · \d+ years \(born 1980-12-10\) · female · care team: "
                        "alice", work["facts"])  # fmt: skip
    assert work["kinds"] == ["entry-risk", "entry-note", "entry-study"]
    assert "Risk of diabetes" in work["timeline"]
    assert "Note by alice" in work["timeline"]
    assert "asthma (present" in work["timeline"]
    assert "PNG study" in work["timeline"]
    assert work["verdict"].startswith("Your current verdict: agreed, ")
    assert work["pdf"].startswith(b"%PDF-")
    assert b"(Ada Lovelace" in work["pdf"]
    assert work["worklist_after"] == "No findings match."

    assert re.search(r"erik\s+auditor\s+active", admin["users"])
    assert re.findall(r"^(alice|carol)\b", admin["team"], re.M) == ["alice", "carol"]
    assert re.fullmatch(
        rf"Emergency access until \d\d:\d\d UTC — reason: {REASON} — every view is audited\.",
        glass["banner"],
    )
    assert glass["name"] == "Ada Lovelace"

    assert "report.sign" in audit["rows"]
    assert "alice" in audit["rows"]
    lines = audit["csv"].strip().splitlines()
    assert len(lines) == 2  # the header and the one signature
    assert "report.sign" in lines[1]
    assert "alice" in lines[1]
    assert re.fullmatch(rf"dora\s+patient [0-9a-f]{{8}}\s+{REASON}\s+.*", audit["grants"], re.S)
