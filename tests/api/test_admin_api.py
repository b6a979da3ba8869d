"""Administration through the API: accounts, care teams by MRN, the auditors' grant list."""

from __future__ import annotations

from tests.support.service import Service

PATIENT = {"mrn": "MRN-A1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
REASON = "unconscious in the emergency room"


def test_accounts_listed_disabled_reset_and_role_changed(service: Service) -> None:
    client, admin = service.client, service.login("admin")
    alice_session = service.login("alice")
    listed = client.get("/api/v1/users", headers=admin).json()
    assert [(u["username"], u["role"], u["active"], u["locked"]) for u in listed] == [
        ("admin", "admin", True, False), ("alice", "clinician", True, False),
        ("auditor", "auditor", True, False), ("bob", "clinician", True, False),
    ]  # fmt: skip
    alice = service.users["alice"]
    off = client.post(f"/api/v1/users/{alice}/disable", headers=admin)
    assert (off.status_code, off.json()["active"]) == (200, False)
    assert client.get("/api/v1/patients", headers=alice_session).status_code == 401
    assert client.post(f"/api/v1/users/{alice}/enable", headers=admin).json()["active"] is True
    reset = client.post(f"/api/v1/users/{service.users['bob']}/reset-password", headers=admin)
    temporary = reset.json()["temporary_password"]
    token = client.post("/api/v1/auth/token", json={"username": "bob", "password": temporary})
    assert token.status_code == 200
    role = client.post(f"/api/v1/users/{service.users['bob']}/role", headers=admin,
                       json={"role": "auditor"})  # fmt: skip
    assert role.json()["role"] == "auditor"
    admin_id = next(u["id"] for u in listed if u["username"] == "admin")
    itself = client.post(f"/api/v1/users/{admin_id}/role", headers=admin, json={"role": "auditor"})
    assert itself.status_code == 403
    assert "you may not demote your own account" in itself.json()["detail"]
    missing = client.post("/api/v1/users/nope/disable", headers=admin)
    assert missing.status_code == 404


def test_care_team_by_mrn_then_break_glass_listed_for_auditors(service: Service) -> None:
    client, admin = service.client, service.login("admin")
    made = client.post("/api/v1/patients", json=PATIENT, headers=service.login("alice"))
    patient_id = made.json()["id"]
    body = {"mrn": PATIENT["mrn"], "username": "bob"}
    added = client.post("/api/v1/care-teams/add", json=body, headers=admin)
    assert added.status_code == 200
    assert added.json()["reference"] == f"patient {patient_id[:8]}"
    assert [m["username"] for m in added.json()["members"]] == ["alice", "bob"]
    assert PATIENT["name"] not in added.text
    removed = client.post("/api/v1/care-teams/remove", json=body, headers=admin)
    assert [m["username"] for m in removed.json()["members"]] == ["alice"]
    listed = client.get("/api/v1/care-teams", params={"mrn": PATIENT["mrn"]}, headers=admin)
    assert listed.json()["patient_id"] == patient_id
    bob = service.login("bob")
    long = client.post(f"/api/v1/patients/{patient_id}/break-glass", headers=bob,
                       json={"reason": REASON, "minutes": 61})  # fmt: skip
    assert long.status_code == 422
    assert "lasts 1 to 60 minutes" in long.json()["detail"]
    denied = client.get(f"/api/v1/patients/{patient_id}", headers=bob)
    assert f"/break-glass?patient={patient_id}" in denied.json()["detail"]
    grant = client.post(f"/api/v1/patients/{patient_id}/break-glass", headers=bob,
                        json={"reason": REASON, "minutes": 5})  # fmt: skip
    assert grant.status_code == 201
    grants = client.get("/api/v1/audit/break-glass", headers=service.login("auditor")).json()
    assert [(g["username"], g["patient_id"], g["reason"], g["active"]) for g in grants] == [
        ("bob", patient_id, REASON, True)
    ]
    assert client.get("/api/v1/audit/break-glass", headers=admin).status_code == 403
