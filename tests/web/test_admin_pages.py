"""Administration in the browser: users, care teams by MRN, break-glass with its banner,
and the auditors' list of grants; every form with the session's CSRF token."""

from __future__ import annotations

import re

from tests.support.service import PASSWORD, Service
from tests.support.web import WEB_PATIENT, form_csrf, web_login, web_patient

REASON = "unconscious in the emergency room"


def _logout(service: Service, csrf: str) -> None:
    service.client.post("/logout", data={"csrf": csrf})
    service.client.cookies.clear()


def test_admin_manages_users_with_one_time_password_and_refusals(service: Service) -> None:
    client = service.client
    web_login(service, "admin")
    page = client.get("/admin/users")
    assert page.status_code == 200
    assert 'href="/admin/care-teams"' in page.text
    csrf = form_csrf(page.text)
    assert client.post("/admin/users", data={"csrf": "forged", "username": "x1",
                       "password": PASSWORD, "role": "clinician"}).status_code == 401  # fmt: skip
    made = client.post("/admin/users", data={"csrf": csrf, "username": "carol",
                       "password": PASSWORD, "role": "clinician"})  # fmt: skip
    assert made.status_code == 200
    assert "Created clinician carol." in made.text
    taken = client.post("/admin/users", data={"csrf": csrf, "username": "carol",
                        "password": PASSWORD, "role": "clinician"})  # fmt: skip
    assert taken.status_code == 409
    assert "username &#39;carol&#39; is taken" in taken.text
    disabled = client.post(f"/admin/users/{service.users['alice']}/disable", data={"csrf": csrf})
    assert "Disabled alice; their sessions have ended." in disabled.text
    rows = re.search(r'<tr id="user-alice">.*?</tr>', disabled.text, re.S)
    assert rows is not None
    assert "disabled" in rows.group(0)
    assert ">Enable<" in rows.group(0)
    reset = client.post(f"/admin/users/{service.users['bob']}/reset-password", data={"csrf": csrf})
    shown = re.search(r'id="temporary-password-value">([^<]+)<', reset.text)
    assert shown is not None
    assert reset.headers["cache-control"] == "no-store"
    role = client.post(f"/admin/users/{service.users['bob']}/role",
                       data={"csrf": csrf, "role": "auditor"})  # fmt: skip
    assert "bob is now auditor" in role.text
    _logout(service, csrf)
    # the temporary password works; alice, disabled, cannot log in
    login = client.post("/api/v1/auth/token", json={"username": "bob", "password": shown.group(1)})
    assert login.status_code == 200
    refused = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 401


def test_admin_cannot_disable_themselves_on_the_page(service: Service) -> None:
    client = service.client
    web_login(service, "admin")
    page = client.get("/admin/users")
    found = re.search(r'<tr id="user-admin">.*?action="/admin/users/([0-9a-f-]{36})/disable"',
                      page.text, re.S)  # fmt: skip
    assert found is not None
    refused = client.post(f"/admin/users/{found.group(1)}/disable",
                          data={"csrf": form_csrf(page.text)})  # fmt: skip
    assert refused.status_code == 403
    assert "you may not disable your own account; ask another admin" in refused.text


def test_care_team_break_glass_banner_and_the_auditors_list(service: Service) -> None:
    client = service.client
    web_login(service, "alice")
    patient_path, csrf = web_patient(service)
    _logout(service, csrf)
    # bob searches the MRN: not his patient, but it exists; he is offered emergency access
    web_login(service, "bob")
    search = client.get("/patients", params={"q": WEB_PATIENT["mrn"]})
    assert 'id="off-team"' in search.text
    assert WEB_PATIENT["name"] not in search.text
    denied = client.get(patient_path)
    assert denied.status_code == 403
    link = re.search(r'id="break-glass-link" href="([^"]+)"', denied.text)
    assert link is not None
    by_record = client.get(link.group(1))  # the refusal's link: the form, by record id
    assert 'id="bg-exists"' in by_record.text
    assert 'id="break-glass-form"' in by_record.text
    form = client.get("/break-glass", params={"mrn": WEB_PATIENT["mrn"]})
    assert 'id="break-glass-form"' in form.text
    assert 'max="60" value="60"' in form.text
    patient_id = patient_path.rsplit("/", 1)[1]
    bob_csrf = form_csrf(form.text)
    short = client.post("/break-glass", data={"csrf": bob_csrf, "patient_id": patient_id,
                        "reason": "now", "minutes": "30", "mrn": WEB_PATIENT["mrn"]})  # fmt: skip
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    opened = client.post("/break-glass", data={"csrf": bob_csrf, "patient_id": patient_id,
                         "reason": REASON, "minutes": "30"})  # fmt: skip
    assert opened.status_code == 200
    banner = re.search(r'id="emergency-banner">([^<]+)<', opened.text)
    assert banner is not None
    assert re.fullmatch(
        rf"Emergency access until \d\d:\d\d UTC — reason: {REASON} — every view is audited\.",
        banner.group(1),
    )
    notes = client.get(f"{patient_path}/notes")
    assert 'id="emergency-banner"' in notes.text
    _logout(service, bob_csrf)
    # the admin adds bob to the care team by MRN (no patient data shown), then removes him
    web_login(service, "admin")
    teams = client.get("/admin/care-teams")
    admin_csrf = form_csrf(teams.text)
    added = client.post("/admin/care-teams/add", data={"csrf": admin_csrf,
                        "mrn": WEB_PATIENT["mrn"], "username": "bob"})  # fmt: skip
    assert added.status_code == 200
    assert f"Care team of patient {patient_id[:8]}" in added.text
    assert WEB_PATIENT["name"] not in added.text
    assert re.findall(r"<tr><td>(\w+)</td>", added.text) == ["alice", "bob"]
    removed = client.post("/admin/care-teams/remove", data={"csrf": admin_csrf,
                          "mrn": WEB_PATIENT["mrn"], "username": "bob"})  # fmt: skip
    assert re.findall(r"<tr><td>(\w+)</td>", removed.text) == ["alice"]
    unknown = client.post("/admin/care-teams", data={"csrf": admin_csrf, "mrn": "NOPE"})
    assert unknown.status_code == 404
    assert "no patient has this MRN" in unknown.text
    _logout(service, admin_csrf)
    # the auditor sees the grant: who, which record, why; no patient data
    web_login(service, "auditor")
    log = client.get("/audit/break-glass")
    assert log.status_code == 200
    active = re.search(r'<table id="active-grants">.*?</table>', log.text, re.S)
    assert active is not None
    assert "bob" in active.group(0)
    assert f"patient {patient_id[:8]}" in active.group(0)
    assert REASON in active.group(0)
    assert WEB_PATIENT["name"] not in log.text
    assert WEB_PATIENT["mrn"] not in log.text
