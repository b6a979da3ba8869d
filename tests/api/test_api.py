"""The REST API end to end against a real SQLite store and a real (tiny) production model."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import clinsight.api.routes.patients as patient_routes
import clinsight.services.predictions as predictions_service
from clinsight.services.diagnosis import explain_prediction
from clinsight.store.tables import AuditRow, Study, utcnow
from tests.support.image_models import band as band_of
from tests.support.image_models import promote_with_band
from tests.support.service import PASSWORD, HeldStep, Service

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PATIENT = {"mrn": "MRN-001", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}


def _patient(service: Service, headers: dict[str, str]) -> str:
    response = service.client.post("/api/v1/patients", json=PATIENT, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _count(service: Service, table: type) -> int:
    state = service.client.app.state.clinsight  # type: ignore[attr-defined]
    with state.sessions() as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def test_api_documentation_renders_offline(service: Service) -> None:
    """The docs page loads Swagger UI from the service itself (no CDN, no inline script)."""
    client = service.client
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "<script>" not in page.text  # the CSP (script-src 'self') would block it
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert scripts, page.text
    for asset in scripts:
        assert client.get(asset).status_code == 200, asset
    moved = client.get("/openapi.json", follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["location"] == "/api/v1/openapi.json"
    assert client.get("/docs", follow_redirects=False).headers["location"] == "/api/v1/docs"


def test_health_ready_metrics_and_openapi(service: Service) -> None:
    client = service.client
    assert client.get("/health").json()["status"] == "ok"
    state = client.app.state.clinsight  # type: ignore[attr-defined]
    with state.sessions() as writing:  # a long write holds the store's write lock
        writing.execute(select(func.count()).select_from(AuditRow))
        ready = client.get("/ready").json()  # the probe does not queue behind it
    assert ready == {"status": "ready", "model": "breastmnist:1"}
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/studies/{study_id}/predictions" in paths
    metrics = client.get("/metrics")
    assert "clinsight_request_seconds_bucket" in metrics.text
    assert client.get("/health").headers["x-frame-options"] == "DENY"


def test_login_refresh_rotation_and_logout(service: Service) -> None:
    client = service.client
    body = {"username": "alice", "password": PASSWORD}
    tokens = client.post("/api/v1/auth/token", json=body).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/api/v1/patients", headers=headers).json() == []
    renewed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]
    # reuse revoked the whole session: the renewed access token is dead too
    dead = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    assert client.get("/api/v1/patients", headers=dead).status_code == 401
    fresh = service.login("alice")
    assert client.post("/api/v1/auth/logout", headers=fresh).status_code == 204
    after = client.get("/api/v1/patients", headers=fresh)
    assert after.status_code == 401
    assert after.json()["detail"] == "this session has ended; log in again"


def test_wrong_password_and_unknown_user_get_the_same_problem(service: Service) -> None:
    client = service.client
    wrong = client.post("/api/v1/auth/token", json={"username": "alice", "password": "x" * 12})
    ghost = client.post("/api/v1/auth/token", json={"username": "ghost", "password": "x" * 12})
    assert wrong.status_code == ghost.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["detail"] == ghost.json()["detail"]


def test_a_database_that_does_not_answer_gets_503_problem_json(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = service.login("alice")

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT", {}, Exception("could not connect to server"))

    monkeypatch.setattr(patient_routes, "search_patients", unreachable)
    quiet = TestClient(service.client.app, base_url="https://testserver",
                       raise_server_exceptions=False)  # fmt: skip
    answer = quiet.get("/api/v1/patients", headers=alice)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "5"
    assert "the database did not answer" in answer.json()["detail"]


def test_expired_and_missing_tokens_get_401_problem_json(service: Service) -> None:
    state = service.client.app.state.clinsight  # type: ignore[attr-defined]
    secret = state.keyring.token_key
    now = utcnow() - timedelta(hours=1)
    claims = {"iss": "clinsight", "sub": service.users["alice"], "role": "clinician",
              "sid": "x", "jti": "y", "iat": int(now.timestamp()),
              "exp": int((now + timedelta(minutes=15)).timestamp())}  # fmt: skip
    expired = jwt.encode(claims, secret, algorithm="HS256")
    response = service.client.get(
        "/api/v1/patients", headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "access token expired; refresh it or log in again"
    assert response.headers["www-authenticate"] == "Bearer"
    missing = service.client.get("/api/v1/patients")
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["detail"]


def test_roles_and_object_level_denials_are_refused_and_audited(service: Service) -> None:
    client = service.client
    alice, bob = service.login("alice"), service.login("bob")
    admin, auditor = service.login("admin"), service.login("auditor")
    patient_id = _patient(service, alice)
    other = client.get(f"/api/v1/patients/{patient_id}", headers=bob)
    assert other.status_code == 403
    assert "care team" in other.json()["detail"]
    assert client.get(f"/api/v1/patients/{patient_id}", headers=admin).status_code == 403
    assert client.get("/api/v1/audit", headers=alice).status_code == 403
    assert client.get("/api/v1/users", headers=auditor).status_code == 403
    entries = client.get("/api/v1/audit", params={"limit": 100}, headers=auditor).json()
    denied = [e for e in entries if e["outcome"] == "denied"]
    assert {e["action"] for e in denied} == {
        "patient.read", "GET /patients/{patient_id}", "GET /audit", "GET /users",
    }  # fmt: skip
    assert any(
        e["action"] == "patient.read" and e["patient_id"] == patient_id
        and e["actor_id"] == service.users["bob"] for e in denied
    )  # fmt: skip
    assert client.get("/api/v1/audit/verify", headers=auditor).json()["ok"] is True
    # break-glass: a reason, an expiry, then access flagged in the audit log
    short = client.post(f"/api/v1/patients/{patient_id}/break-glass", json={"reason": "now"},
                        headers=bob)  # fmt: skip
    assert short.status_code == 422
    grant = client.post(
        f"/api/v1/patients/{patient_id}/break-glass",
        json={"reason": "unconscious in the emergency room"},
        headers=bob,
    )
    assert grant.status_code == 201
    assert client.get(f"/api/v1/patients/{patient_id}", headers=bob).status_code == 200
    flagged = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    assert any(e["break_glass"] and e["action"] == "patient.read" for e in flagged.json())


def test_dicom_upload_prediction_heatmap_and_feedback(service: Service, data_dir: Path) -> None:
    client = service.client
    alice = service.login("alice")
    patient_id = _patient(service, alice)
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    # RG1_J2KI.dcm names another patient than the chart: filed here on purpose
    study = client.post(f"/api/v1/patients/{patient_id}/studies?confirm_patient_mismatch=true",
                        headers=alice,
                        files={"file": ("x.dcm", dicom, "application/dicom")})  # fmt: skip
    assert study.status_code == 201, study.text
    assert study.json()["modality"] == "CR"
    assert study.json()["size_bytes"] == len(dicom)
    study_id = study.json()["id"]
    made = client.post(f"/api/v1/studies/{study_id}/predictions", headers=alice)
    assert made.status_code == 201, made.text
    prediction = made.json()
    assert prediction["model_name"] == "breastmnist"
    assert prediction["model_version"] == "1"
    assert prediction["label"] in {"malignant", "normal, benign"}
    assert len(prediction["artifact_sha256"]) == len(prediction["input_sha256"]) == 64
    assert prediction["user_id"] == service.users["alice"]
    assert prediction["preprocessing"]["image_size"] == 28
    listed = client.get(f"/api/v1/studies/{study_id}/predictions", headers=alice).json()
    assert [p["id"] for p in listed] == [prediction["id"]]
    heat = client.get(f"/api/v1/predictions/{prediction['id']}/heatmap", headers=alice)
    assert heat.status_code == 200
    assert heat.headers["content-type"] == "image/png"
    assert heat.content.startswith(PNG_MAGIC)
    bob = service.login("bob")
    assert client.get(f"/api/v1/predictions/{prediction['id']}/heatmap",
                      headers=bob).status_code == 403  # fmt: skip
    override = client.post(f"/api/v1/predictions/{prediction['id']}/feedback", headers=alice,
                           json={"verdict": "override"})  # fmt: skip
    assert override.status_code == 422
    assert override.json()["detail"] == "an override needs the corrected label and a reason"
    agree = client.post(f"/api/v1/predictions/{prediction['id']}/feedback", headers=alice,
                        json={"verdict": "agree"})  # fmt: skip
    assert agree.status_code == 201
    assert agree.json()["verdict"] == "agree"
    assert agree.json()["superseded_at"] is None
    metrics = client.get("/metrics").text
    assert 'clinsight_predictions_total{model="breastmnist",version="1"} 1.0' in metrics
    timeline = client.get(f"/api/v1/patients/{patient_id}", headers=alice).json()
    assert timeline["patient"]["name"] == "Ada Lovelace"
    assert timeline["studies"][0]["predictions"][0]["id"] == prediction["id"]


def test_feedback_is_one_editable_verdict_per_clinician_with_history(
    service: Service, data_dir: Path
) -> None:
    client = service.client
    alice = service.login("alice")
    patient_id = _patient(service, alice)
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    made = client.post(f"/api/v1/patients/{patient_id}/predictions", headers=alice,
                       params={"confirm_patient_mismatch": True},
                       files={"file": ("x.dcm", dicom, "application/dicom")})  # fmt: skip
    assert made.status_code == 201, made.text
    url = f"/api/v1/predictions/{made.json()['id']}"
    first = client.post(f"{url}/feedback", headers=alice, json={"verdict": "agree"})
    assert first.status_code == 201
    banana = {"verdict": "override", "reason": "looks like fruit", "override_label": "banana"}
    refused = client.post(f"{url}/feedback", headers=alice, json=banana)
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "'banana' is not a label of breastmnist v1; choose one of: 'malignant', 'normal, benign'"
    )
    override = {"verdict": "override", "reason": "smooth margins", "override_label": "malignant"}
    second = client.post(f"{url}/feedback", headers=alice, json=override)
    assert second.status_code == 201, second.text
    detail = client.get(url, headers=alice)
    assert detail.status_code == 200
    assert detail.json()["id"] == made.json()["id"]
    assert detail.json()["label"] == made.json()["label"]
    assert detail.json()["feedback"] == [second.json()]
    history = client.get(f"{url}/feedback", headers=alice)
    assert history.status_code == 200
    assert history.json() == [
        {**first.json(), "superseded_at": second.json()["created_at"]},
        second.json(),
    ]
    assert [(v["verdict"], v["override_label"], v["reason"]) for v in history.json()] == [
        ("agree", None, None),
        ("override", "malignant", "smooth margins"),
    ]
    timeline = client.get(f"/api/v1/patients/{patient_id}", headers=alice).json()
    assert timeline["studies"][0]["feedback"] == [second.json()]
    bob, auditor = service.login("bob"), service.login("auditor")
    for caller in (bob, auditor):
        assert client.get(url, headers=caller).status_code == 403
        assert client.get(f"{url}/feedback", headers=caller).status_code == 403
    audit = client.get("/api/v1/audit", params={"patient_id": patient_id}, headers=auditor)
    actions = [(e["action"], e["outcome"]) for e in audit.json()
               if e["action"].startswith("feedback.")]  # fmt: skip
    assert actions == [  # newest first; the auditor is refused by role before any read
        ("feedback.list", "denied"),  # bob, outside the care team
        ("feedback.list", "success"),  # the timeline
        ("feedback.list", "success"),  # the history
        ("feedback.list", "success"),  # the prediction
        ("feedback.update", "success"),
        ("feedback.create", "success"),
    ]


def test_a_write_is_not_blocked_while_a_heat_map_is_computed(
    service: Service, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Grad-CAM waits until a login (which writes to the store) is done: on SQLite the
    # login would wait for the store's write lock if the heat-map request held it.
    client, alice = service.client, service.login("alice")
    patient_id = _patient(service, alice)
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    made = client.post(f"/api/v1/patients/{patient_id}/predictions", headers=alice,
                       params={"confirm_patient_mismatch": True},
                       files={"file": ("x.dcm", dicom)})  # fmt: skip
    assert made.status_code == 201, made.text
    step = HeldStep()
    monkeypatch.setattr(predictions_service, "explain_prediction", step.wrap(explain_prediction))
    url = f"/api/v1/predictions/{made.json()['id']}/heatmap"
    blocked, answer = step.write_meanwhile(service, lambda: client.get(url, headers=alice))
    assert not blocked, "the login waited for the store while Grad-CAM ran"
    assert answer.content.startswith(PNG_MAGIC)


def test_bad_uploads_are_refused_and_nothing_is_stored(service: Service, data_dir: Path) -> None:
    client = service.client
    alice = service.login("alice")
    patient_id = _patient(service, alice)
    url = f"/api/v1/patients/{patient_id}/studies"
    text = client.post(url, headers=alice, files={"file": ("a.txt", b"hello world", "text/plain")})
    assert text.status_code == 415
    assert "not a recognised image" in text.json()["detail"]
    truncated = data_dir / "dicom" / "pydicom_data" / "emri_small_jpeg_2k_lossless_too_short.dcm"
    short = client.post(url, headers=alice, files={"file": ("t.dcm", truncated.read_bytes())})
    assert short.status_code == 422
    png = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()[:4000]
    cut = client.post(url, headers=alice, files={"file": ("c.dcm", png)})
    assert cut.status_code == 422
    assert _count(service, Study) == 0
    bob = service.login("bob")
    denied = client.post(url, headers=bob, files={"file": ("a.png", PNG_MAGIC + b"0" * 10)})
    assert denied.status_code == 403
    assert _count(service, Study) == 0


def test_pagination_cap_and_validation_problem(service: Service) -> None:
    alice = service.login("alice")
    response = service.client.get("/api/v1/patients", params={"limit": 101}, headers=alice)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "query.limit"


def test_admin_manages_users_care_team_and_models(service: Service) -> None:
    client = service.client
    admin, alice, bob = service.login("admin"), service.login("alice"), service.login("bob")
    patient_id = _patient(service, alice)
    carol = {"username": "carol", "password": PASSWORD, "role": "clinician"}
    made = client.post("/api/v1/users", headers=admin, json=carol)
    assert made.status_code == 201
    dup = client.post("/api/v1/users", headers=admin, json=carol)
    assert dup.status_code == 409
    assigned = client.post(f"/api/v1/patients/{patient_id}/care-team", headers=admin,
                           json={"user_id": service.users["bob"]})  # fmt: skip
    assert assigned.status_code == 204
    assert client.get(f"/api/v1/patients/{patient_id}", headers=bob).status_code == 200
    models = client.get("/api/v1/models/image", headers=alice).json()
    assert [(m["kind"], m["name"], m["version"], m["stage"]) for m in models] == [
        ("image", "breastmnist", 1, "production")
    ]
    card = client.get("/api/v1/models/image/breastmnist/1", headers=alice).json()
    assert card["card_markdown"].startswith("#")
    archive = "/api/v1/models/image/breastmnist/1/archive"
    assert client.post(archive, headers=alice, json={}).status_code == 403
    archived = client.post(archive, headers=admin, json={"note": "withdrawn"})
    assert archived.json()["stage"] == "archived"
    rolled = client.post("/api/v1/models/image/breastmnist/rollback", headers=admin, json={})
    assert rolled.status_code == 200
    assert rolled.json()["stage"] == "production"
    missing = client.get("/api/v1/models/image/nope/1", headers=alice)
    assert missing.status_code == 404
    unknown_kind = client.get("/api/v1/models/genome", headers=alice)
    assert unknown_kind.status_code == 422
    assert _count(service, AuditRow) > 0


def test_upload_and_diagnose_in_one_call(service: Service, data_dir: Path) -> None:
    client = service.client
    alice = service.login("alice")
    patient_id = _patient(service, alice)
    url = f"/api/v1/patients/{patient_id}/predictions?confirm_patient_mismatch=true"
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    made = client.post(url, headers=alice, files={"file": ("x.dcm", dicom)})
    assert made.status_code == 201, made.text
    prediction = made.json()
    # The test model reads breast ultrasound; its gate only warns in these tests (the
    # service settings), so a chest radiograph is flagged, not refused.
    assert prediction["intended_use"] == "warned"
    assert "body part CHEST" in prediction["intended_use_reasons"][1]
    studies = client.get(f"/api/v1/patients/{patient_id}/studies", headers=alice).json()
    assert [s["id"] for s in studies] == [prediction["study_id"]]
    assert studies[0]["modality"] == "CR"
    listed = client.get(f"/api/v1/studies/{prediction['study_id']}/predictions", headers=alice)
    assert listed.json()[0]["intended_use_reasons"] == prediction["intended_use_reasons"]
    state = client.app.state.clinsight  # type: ignore[attr-defined]
    with state.sessions() as session:
        actions = session.execute(
            select(AuditRow.action).where(AuditRow.patient_id == patient_id).order_by(AuditRow.seq)
        ).scalars()
        assert list(actions)[1:5] == [  # the chart is read to compare the DICOM header
            "patient.read",
            "study.create",
            "study.patient_mismatch_confirmed",
            "prediction.create",
        ]
    cut = client.post(url, headers=alice, files={"file": ("c.dcm", dicom[:4000])})
    assert cut.status_code == 422
    denied = client.post(url, headers=service.login("bob"), files={"file": ("x.dcm", dicom)})
    assert denied.status_code == 403
    assert _count(service, Study) == 1


def test_errors_name_no_server_folder_and_no_python_text(service: Service) -> None:
    """An unknown model and a bad token: the answer says what to do, not where the server
    keeps its registry nor what the token library raised."""
    alice = service.login("alice")
    unknown = service.client.get("/api/v1/models/image/nothing/1", headers=alice)
    assert unknown.status_code == 404
    registry = str(service.settings.resolved_registry_dir)
    assert registry not in unknown.text
    assert str(service.settings.home) not in unknown.text
    assert "No model named 'nothing'" in unknown.json()["detail"]
    bad = service.client.get("/api/v1/patients", headers={"Authorization": "Bearer abc"})
    assert bad.status_code == 401
    assert bad.json()["detail"] == (
        "the access token was refused: it is not a well-formed token; log in again"
    )


def test_a_malformed_model_name_is_a_client_error(service: Service) -> None:
    alice = service.login("alice")
    patient_id = _patient(service, alice)
    for bad in ("bad\x00name", "../../etc", "UPPER"):
        response = service.client.post(
            f"/api/v1/patients/{patient_id}/predictions", params={"model": bad}, headers=alice,
            files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64)},
        )  # fmt: skip
        assert 400 <= response.status_code < 500, (bad, response.text)


def test_a_prediction_inside_the_band_is_indeterminate(service: Service, data_dir: Path) -> None:
    client = service.client
    alice = service.login("alice")
    url = f"/api/v1/patients/{_patient(service, alice)}/predictions?confirm_patient_mismatch=1"
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    trained = client.post(url, headers=alice, files={"file": ("x.dcm", dicom)}).json()
    band = trained["decision_thresholds"]  # chosen on the validation split at training time
    assert (band["split"], band["n_positive"] + band["n_negative"]) == ("validation", 78)
    assert trained["positive_probability"] == trained["calibrated_confidence"]
    promote_with_band(service.settings.resolved_registry_dir, "breastmnist", 0.0, 1.0)
    made = client.post(url, headers=alice, files={"file": ("x.dcm", dicom)})
    assert made.status_code == 201, made.text
    found = made.json()
    assert found["model_version"] == "2"
    assert (found["predicted_label"], found["label_probability"]) == ("indeterminate", None)
    assert found["label"] in ("malignant", "normal, benign")
    assert found["positive_probability"] == found["calibrated_confidence"]
    assert found["decision_thresholds"] == band_of(0.0, 1.0).to_dict()
    listed = client.get(f"/api/v1/studies/{found['study_id']}/predictions", headers=alice).json()
    assert listed[0]["predicted_label"] == "indeterminate"
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["PredictionOut"]
    assert schema["properties"]["calibrated_confidence"]["deprecated"] is True


def test_the_audit_api_filters_and_exports_fhir_audit_events(service: Service) -> None:
    auditor = service.login("auditor")
    service.login("alice")
    mine = service.client.get(
        "/api/v1/audit", params={"username": "alice", "action": "auth"}, headers=auditor
    ).json()
    assert mine
    assert {e["action"].split(".")[0] for e in mine} == {"auth"}
    assert {e["actor_id"] for e in mine} == {service.users["alice"]}
    bundle = service.client.get(
        "/api/v1/audit/export", params={"format": "fhir", "outcome": "success"}, headers=auditor
    )
    assert bundle.headers["content-type"].startswith("application/fhir+json")
    outcomes = {e["resource"]["outcome"] for e in bundle.json()["entry"]}
    assert outcomes == {"0"}
    unknown = service.client.get("/api/v1/audit", params={"username": "x"}, headers=auditor)
    assert unknown.status_code == 422


def test_a_finding_as_a_fhir_observation(service: Service, data_dir: Path) -> None:
    client = service.client
    alice = service.login("alice")
    url = f"/api/v1/patients/{_patient(service, alice)}/predictions"
    dicom = (data_dir / "dicom" / "pydicom_data" / "RG1_J2KI.dcm").read_bytes()
    found = client.post(url, headers=alice, files={"file": ("x.dcm", dicom)},
                        params={"confirm_patient_mismatch": True}).json()  # fmt: skip
    observation = client.get(f"/api/v1/predictions/{found['id']}/fhir", headers=alice).json()
    assert observation["valueCodeableConcept"] == {"text": found["predicted_label"]}
    assert "dataAbsentReason" not in observation
    probability, label = found["label_probability"], found["predicted_label"]
    expected = (
        [] if probability is None else [f"Calibrated probability of {label}: {probability:.1%}."]
    )
    # warned in these tests (the service settings): the reasons follow
    assert [note["text"] for note in observation["note"]] == expected + found[
        "intended_use_reasons"
    ]
    assert observation["method"]["coding"][0]["code"] == "breastmnist/1"
