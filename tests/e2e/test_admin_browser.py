"""Headless Chromium: an admin creates clinicians and assigns a care team by MRN; a second
clinician, off the care team, opens emergency access with a reason and sees the banner."""

from __future__ import annotations

import re
from typing import Any

from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM
from tests.support.service import PASSWORD

pytestmark = BROWSER
MRN = "E2E-BG-1"
REASON = "collapsed in the waiting room, team unreachable"


def _login(browser: Any, server: str, username: str, landing: str) -> Any:
    page = browser.new_context(ignore_https_errors=True).new_page()
    page.goto(f"{server}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"**{landing}")
    return page


def test_admin_assigns_a_care_team_and_a_clinician_breaks_the_glass(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        alice = _login(browser, server, "alice", "/patients")
        alice.fill("#mrn", MRN)
        alice.fill("#name", "Ada Lovelace")
        alice.fill("#birth_date", "1980-12-10")
        alice.select_option("#sex", "female")
        alice.click("#create-patient")
        alice.wait_for_selector("text=No studies yet.")

        admin = _login(browser, server, "admin", "/models")
        admin.click("text=Users")
        for name in ("carol", "dora"):
            admin.fill("#new-username", name)
            admin.fill("#new-password", PASSWORD)
            admin.select_option("#new-role", "clinician")
            admin.click("#create-user-button")
            admin.wait_for_selector(f"#admin-notice:has-text('Created clinician {name}.')")
        admin.screenshot(path=str(ARTIFACTS / "admin-users.png"), full_page=True)
        users = admin.inner_text("#users-table")
        admin.click("text=Care teams")
        admin.fill("#add-mrn", MRN)
        admin.fill("#add-username", "carol")
        admin.click("#add-member-button")
        admin.wait_for_selector("#team-table")
        team = admin.inner_text("#team-table")
        team_page = admin.content()
        admin.screenshot(path=str(ARTIFACTS / "admin-care-team.png"), full_page=True)

        dora = _login(browser, server, "dora", "/patients")
        dora.fill("input[name=q]", MRN)
        dora.click("button:has-text('Search')")
        offered = dora.inner_text("#off-team")
        dora.click("#break-glass-link")
        dora.wait_for_selector("#break-glass-form")
        dora.fill("#bg-reason", REASON)
        dora.fill("#bg-minutes", "30")
        dora.screenshot(path=str(ARTIFACTS / "break-glass-form.png"), full_page=True)
        dora.click("#bg-open-button")
        dora.wait_for_selector("#emergency-banner")
        banner = dora.inner_text("#emergency-banner")
        title = dora.inner_text("h1")
        dora.screenshot(path=str(ARTIFACTS / "break-glass-banner.png"), full_page=True)
        browser.close()
    assert re.search(r"carol\s+clinician\s+active", users)
    assert re.findall(r"^(alice|carol)\b", team, re.M) == ["alice", "carol"]
    assert "Ada Lovelace" not in team_page  # the admin sees the record reference only
    assert offered.startswith(f"A patient with MRN “{MRN}” exists but is not on your care team.")
    assert re.fullmatch(
        rf"Emergency access until \d\d:\d\d UTC — reason: {REASON} — every view is audited\.",
        banner,
    )
    assert title == "Ada Lovelace"
