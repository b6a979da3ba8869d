"""Access matrix: every route of the app x every role x own / other patient.

`EXPECTED` is the policy written out: the status each role gets on each route, as a
pair (own patient, other patient) on patient-scoped routes. The test enumerates
`app.routes`, so a route added without an entry here fails it. Beyond the status,
no response may carry PHI of a patient outside the caller's care team, and a refused
request may change no clinical row (users, patients, care team, studies, predictions,
feedback, break-glass grants).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from PIL import Image
from sqlalchemy import func, select
from starlette.routing import Mount, Route

from clinsight.store.tables import (
    Assessment,
    BreakGlassGrant,
    CareTeam,
    Feedback,
    Note,
    Patient,
    Prediction,
    RecommendationFeedback,
    Segmentation,
    SignedReport,
    Study,
    User,
)
from clinsight.web.session import ACCESS_COOKIE, REFRESH_COOKIE, csrf_token
from tests.support.segmentation_models import register_tiny_segmenter
from tests.support.service import PASSWORD, Service, service, settings, tiny_registry

__all__ = ["service", "settings", "tiny_registry"]

ROLES = ("anonymous", "admin", "clinician", "auditor")
USER_OF = {"admin": "admin", "clinician": "alice", "auditor": "auditor"}
OWN = {"mrn": "MRN-OWN-1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
SEGMENTER = "tiny-seg"
OTHER = {"mrn": "MRN-OTHER-9", "name": "Grace Hopper", "birth_date": "1906-12-09", "sex": "female"}
CLINICAL = (User, Patient, CareTeam, Study, Prediction, Feedback, BreakGlassGrant, Note,
            Assessment, SignedReport, RecommendationFeedback, Segmentation)  # fmt: skip
Outcome = int | tuple[int, int]

# status per role: anonymous, admin, clinician, auditor; a pair is (own patient, other patient)
EXPECTED: dict[str, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    # public operations and documents
    "GET /health": (200, 200, 200, 200),
    "GET /ready": (200, 200, 200, 200),
    "GET /metrics": (200, 200, 200, 200),
    "GET /api/v1/openapi.json": (200, 200, 200, 200),
    "GET /api/v1/docs": (200, 200, 200, 200),
    "GET /api/v1/docs/init.js": (200, 200, 200, 200),
    "GET /api/v1/docs/assets": (200, 200, 200, 200),
    "GET /openapi.json": (308, 308, 308, 308),
    "GET /docs": (308, 308, 308, 308),
    "GET /static": (200, 200, 200, 200),
    # REST API
    "POST /api/v1/auth/token": (200, 200, 200, 200),
    "POST /api/v1/auth/refresh": (401, 200, 200, 200),
    "POST /api/v1/auth/logout": (401, 204, 204, 204),
    "POST /api/v1/users": (401, 201, 403, 403),
    "GET /api/v1/users": (401, 200, 403, 403),
    "POST /api/v1/users/{user_id}/disable": (401, 200, 403, 403),
    "POST /api/v1/users/{user_id}/enable": (401, 200, 403, 403),
    "POST /api/v1/users/{user_id}/reset-password": (401, 200, 403, 403),
    "POST /api/v1/users/{user_id}/role": (401, 200, 403, 403),
    "GET /api/v1/care-teams": (401, 200, 403, 403),
    "POST /api/v1/care-teams/add": (401, 200, 403, 403),
    "POST /api/v1/care-teams/remove": (401, 200, 403, 403),
    "GET /api/v1/audit/break-glass": (401, 403, 403, 200),
    "POST /api/v1/patients": (401, 403, 201, 403),
    "GET /api/v1/patients": (401, 403, 200, 403),
    "GET /api/v1/patients/lookup": (401, 403, 200, 403),
    "GET /api/v1/patients/{patient_id}": (401, 403, (200, 403), 403),
    "POST /api/v1/patients/{patient_id}/care-team": (401, 204, 403, 403),
    "POST /api/v1/patients/{patient_id}/break-glass": (401, 403, (201, 201), 403),
    "POST /api/v1/patients/{patient_id}/studies": (401, 403, (201, 403), 403),
    "GET /api/v1/patients/{patient_id}/studies": (401, 403, (200, 403), 403),
    "POST /api/v1/patients/{patient_id}/predictions": (401, 403, (201, 403), 403),
    "POST /api/v1/studies/{study_id}/predictions": (401, 403, (201, 403), 403),
    "GET /api/v1/studies/{study_id}/predictions": (401, 403, (200, 403), 403),
    "GET /api/v1/predictions/{prediction_id}/heatmap": (401, 403, (200, 403), 403),
    "GET /api/v1/predictions/{prediction_id}": (401, 403, (200, 403), 403),
    "GET /api/v1/predictions/{prediction_id}/fhir": (401, 403, (200, 403), 403),
    "GET /api/v1/predictions/{prediction_id}/feedback": (401, 403, (200, 403), 403),
    "POST /api/v1/predictions/{prediction_id}/feedback": (401, 403, (201, 403), 403),
    "POST /api/v1/studies/{study_id}/segmentations": (401, 403, (201, 403), 403),
    "POST /api/v1/patients/{patient_id}/segmentations": (401, 403, (201, 403), 403),
    "GET /api/v1/segmentations/{segmentation_id}": (401, 403, (200, 403), 403),
    "GET /api/v1/segmentations/{segmentation_id}/mask.png": (401, 403, (200, 403), 403),
    # the world's studies are PNG: no DICOM SEG (404 problem), after the access check
    "GET /api/v1/segmentations/{segmentation_id}/dicom-seg": (401, 403, (404, 403), 403),
    "POST /api/v1/segmentations/{segmentation_id}/review": (401, 403, (200, 403), 403),
    "POST /api/v1/patients/{patient_id}/notes": (401, 403, (201, 403), 403),
    "POST /api/v1/patients/{patient_id}/notes/file": (401, 403, (201, 403), 403),
    "GET /api/v1/patients/{patient_id}/notes": (401, 403, (200, 403), 403),
    "GET /api/v1/patients/{patient_id}/notes/search": (401, 403, (200, 403), 403),
    "GET /api/v1/notes/{note_id}": (401, 403, (200, 403), 403),
    "GET /api/v1/notes/{note_id}/fhir": (401, 403, (200, 403), 403),
    "POST /api/v1/nlp/annotate": (401, 403, 200, 403),
    "GET /api/v1/worklist": (401, 403, 200, 403),
    "GET /api/v1/patients/{patient_id}/fhir": (401, 403, (200, 403), 403),
    # alice reviewed her finding through the feedback route above, so she may sign it
    "POST /api/v1/predictions/{prediction_id}/report.pdf": (401, 403, (200, 403), 403),
    "GET /api/v1/predictions/{prediction_id}/diagnostic-report": (401, 403, (200, 403), 403),
    "GET /api/v1/models": (401, 200, 200, 200),
    "GET /api/v1/models/{kind}": (401, 200, 200, 200),
    "GET /api/v1/models/{kind}/{name}/{version}": (401, 200, 200, 200),
    "POST /api/v1/models/{kind}/{name}/{version}/promote": (401, 200, 403, 403),
    "POST /api/v1/models/{kind}/{name}/{version}/archive": (401, 200, 403, 403),
    # the admin's archive (just before) leaves v1 to roll back to, and puts it back
    "POST /api/v1/models/{kind}/{name}/rollback": (401, 200, 403, 403),
    "GET /api/v1/audit": (401, 403, 403, 200),
    "GET /api/v1/audit/verify": (401, 403, 403, 200),
    "GET /api/v1/audit/export": (401, 403, 403, 200),
    "POST /api/v1/patients/{patient_id}/risk": (401, 403, (404, 403), 403),  # no risk model
    "POST /api/v1/survival/patients/{patient_id}": (401, 403, (404, 403), 403),  # no model
    "POST /api/v1/progression/patients/{patient_id}": (401, 403, (404, 403), 403),  # no model
    "POST /api/v1/risk/fhir": (401, 403, 422, 403),
    # recommendations read the OMOP database by person_id: by role, not care team
    "GET /api/v1/recommendations/persons/{person_id}": (401, 403, 404, 403),  # no model
    "POST /api/v1/recommendations/persons/{person_id}/feedback": (401, 403, 201, 403),
    "GET /api/v1/recommendations/persons/{person_id}/feedback": (401, 403, 200, 403),
    "GET /api/v1/monitoring/image/{name}/{version}": (401, 200, 403, 200),
    "POST /api/v1/monitoring/image/{name}/{version}/recalibration": (401, 422, 403, 403),
    # CDS Hooks: discovery is public; calls need an EHR's JWT, never a user token
    "GET /cds-services": (200, 200, 200, 200),
    "POST /cds-services/{service}": (401, 401, 401, 401),
    "POST /cds-services/{service}/feedback": (401, 401, 401, 401),
    "GET /cds-services/{service}/model-card/{version}": (404, 404, 404, 404),
    # web UI: anonymous visitors are sent to the login page (303)
    "GET /login": (200, 200, 200, 200),
    "POST /login": (401, 401, 401, 401),
    "POST /logout": (303, 303, 303, 303),
    "GET /": (303, 303, 303, 303),
    "GET /patients": (303, 403, 200, 403),
    "POST /patients": (303, 403, 303, 403),
    "GET /patients/{patient_id}": (303, 403, (200, 403), 403),
    "POST /patients/{patient_id}/studies": (303, 403, (303, 403), 403),
    "GET /predictions/{prediction_id}": (303, 403, (200, 403), 403),
    "POST /predictions/{prediction_id}/feedback": (303, 403, (303, 403), 403),
    "POST /studies/{study_id}/segmentations": (303, 403, (303, 403), 403),
    "POST /patients/{patient_id}/segmentations": (303, 403, (303, 403), 403),
    "GET /segmentations/{segmentation_id}": (303, 403, (200, 403), 403),
    "POST /segmentations/{segmentation_id}/review": (303, 403, (303, 403), 403),
    "GET /segmentations/{segmentation_id}/dicom-seg": (303, 403, (404, 403), 403),  # PNG study
    "GET /patients/{patient_id}/notes": (303, 403, (200, 403), 403),
    "POST /patients/{patient_id}/notes": (303, 403, (303, 403), 403),
    "GET /notes/{note_id}": (303, 403, (200, 403), 403),
    "GET /notes/{note_id}/fhir": (303, 403, (200, 403), 403),
    "GET /patients/{patient_id}/fhir": (303, 403, (200, 403), 403),
    "POST /predictions/{prediction_id}/report": (303, 403, (200, 403), 403),
    "GET /worklist": (303, 403, 200, 403),
    "GET /patients/{patient_id}/risk": (303, 403, (404, 403), 403),
    "POST /patients/{patient_id}/risk": (303, 403, (404, 403), 403),
    "GET /patients/{patient_id}/survival": (303, 403, (404, 403), 403),
    "POST /patients/{patient_id}/survival": (303, 403, (404, 403), 403),
    "GET /patients/{patient_id}/treatments": (303, 403, (200, 403), 403),  # no person named
    "POST /patients/{patient_id}/treatments/feedback": (303, 403, (303, 403), 403),
    "GET /models": (303, 200, 200, 200),
    "GET /models/image/{name}/{version}/monitoring": (303, 200, 403, 200),
    "POST /models/image/{name}/{version}/recalibration": (303, 422, 403, 403),  # too few labels
    "POST /patients/{patient_id}/held/{token}": (303, 403, (404, 403), 403),  # nothing held
    "GET /audit": (303, 403, 403, 200),
    "GET /audit/export.{fmt}": (303, 403, 403, 200),
    "GET /admin/users": (303, 200, 403, 403),
    "POST /admin/users": (303, 200, 403, 403),
    "POST /admin/users/{user_id}/disable": (303, 200, 403, 403),
    "POST /admin/users/{user_id}/enable": (303, 200, 403, 403),
    "POST /admin/users/{user_id}/reset-password": (303, 200, 403, 403),
    "POST /admin/users/{user_id}/role": (303, 200, 403, 403),
    "GET /admin/care-teams": (303, 200, 403, 403),
    "POST /admin/care-teams": (303, 200, 403, 403),
    "POST /admin/care-teams/add": (303, 200, 403, 403),
    "POST /admin/care-teams/remove": (303, 200, 403, 403),
    "GET /break-glass": (303, 403, 200, 403),
    "POST /break-glass": (303, 403, 303, 403),
    "GET /audit/break-glass": (303, 403, 403, 200),
}


def _routes(app: Any) -> list[str]:
    """'METHOD /path' for every route and mount of the app (HEAD aside), included routers too."""
    keys = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            keys.append(f"GET {context.path}")
        elif isinstance(route, APIRoute | Route):
            keys += [f"{m} {context.path}" for m in sorted(context.methods or ()) if m != "HEAD"]
        else:
            raise AssertionError(f"unknown route type {type(route).__name__}: add it to the test")
    return keys


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class World:
    """Ids of the own (alice's) and other (bob's) patient records and helpers."""

    service: Service
    ids: dict[str, dict[str, str]]
    counter: Iterator[int]

    def tokens(self, username: str) -> dict[str, str]:
        response = self.service.client.post(
            "/api/v1/auth/token", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


def _records(service: Service, username: str, patient: dict[str, str]) -> dict[str, str]:
    client = service.client
    headers = service.login(username)
    made = client.post("/api/v1/patients", json=patient, headers=headers)
    patient_id = made.json()["id"]
    study = client.post(f"/api/v1/patients/{patient_id}/studies", headers=headers,
                        files={"file": ("x.png", _png(), "image/png")})  # fmt: skip
    prediction = client.post(f"/api/v1/studies/{study.json()['id']}/predictions", headers=headers)
    assert prediction.status_code == 201, prediction.text
    segmentation = client.post(f"/api/v1/studies/{study.json()['id']}/segmentations",
                               params={"model": SEGMENTER}, headers=headers)  # fmt: skip
    assert segmentation.status_code == 201, segmentation.text
    note = client.post(f"/api/v1/patients/{patient_id}/notes", headers=headers,
                       json={"text": f"{patient['name']} has asthma. No fever."})  # fmt: skip
    return {
        "note_id": note.json()["id"],
        "patient_id": patient_id,
        "study_id": study.json()["id"],
        "prediction_id": prediction.json()["id"],
        "segmentation_id": segmentation.json()["id"],
        "kind": "image",
        "name": "breastmnist",
        "version": "1",
        "service": "pima-synthea-risk",
        "token": "A" * 22,
    }


@pytest.fixture
def world(service: Service) -> World:
    """Alice's patient (own) and Bob's patient (other), each with a study and a prediction."""
    from clinsight.registry import segmentation
    from clinsight.registry.stages import Stage
    from clinsight.security.records import create_user
    from clinsight.store.db import session_factory
    from clinsight.store.roles import Role

    registry = service.settings.resolved_registry_dir
    register_tiny_segmenter(registry, SEGMENTER)
    segmentation.REGISTRY.promote(registry, SEGMENTER, 1, Stage.PRODUCTION)
    state = service.client.app.state.clinsight  # type: ignore[attr-defined]
    with session_factory(state.engine)() as session:
        for name in ("carol", "dave", "erin"):  # dave and erin: targets of account changes
            made = create_user(session, service.settings, username=name, password=PASSWORD,
                               role=Role.CLINICIAN, actor=None)  # fmt: skip
            service.users[name] = made.id
        session.commit()
    ids = {"own": _records(service, "alice", OWN), "other": _records(service, "bob", OTHER)}
    ids["own"]["user_id"], ids["other"]["user_id"] = service.users["dave"], service.users["erin"]
    ids["own"]["person_id"] = ids["other"]["person_id"] = "1"
    return World(service, ids, itertools.count())


def _request(world: World, key: str, role: str, scope: str) -> tuple[int, str]:
    """Send the request of `key` as `role` on the `scope` patient; status and body text."""
    client, n = world.service.client, next(world.counter)
    method, template = key.split(" ", 1)
    if key == "GET /audit/export.{fmt}":
        template = "/audit/export.csv"
    path = template.format(**world.ids[scope]) if "{" in template else template
    if key == "GET /static":
        path = "/static/style.css"
    if key == "GET /api/v1/docs/assets":
        path = "/api/v1/docs/assets/swagger-ui.css"
    tokens = world.tokens(USER_OF[role]) if role != "anonymous" else None
    headers = {"Authorization": f"Bearer {tokens['access_token']}"} if tokens else {}
    web = not template.startswith(("/api/", "/health", "/ready", "/metrics", "/static"))
    client.cookies.clear()
    form = {"csrf": "forged"}  # anonymous: a well-formed form, so the refusal is the login check
    if web and tokens:
        headers = {}
        client.cookies.set(ACCESS_COOKIE, tokens["access_token"])
        client.cookies.set(REFRESH_COOKIE, tokens["refresh_token"])
        state = client.app.state.clinsight  # type: ignore[attr-defined]
        sid = state.issuer.decode_access_token(tokens["access_token"]).session_id
        form["csrf"] = csrf_token(state, sid)
    team = {"mrn": OWN["mrn"], "username": "carol"}  # the admin names the patient by MRN
    bodies: dict[str, dict[str, Any]] = {
        "POST /api/v1/auth/token": {"json": {"username": "alice", "password": PASSWORD}},
        "POST /api/v1/auth/refresh": {
            "json": {"refresh_token": tokens["refresh_token"] if tokens else "x" * 43}
        },
        "POST /api/v1/users": {
            "json": {"username": f"user{n}", "password": PASSWORD, "role": "clinician"}
        },
        "POST /api/v1/patients": {"json": {**OWN, "mrn": f"MRN-NEW-{n}"}},
        "POST /api/v1/patients/{patient_id}/care-team": {
            "json": {"user_id": world.service.users["carol"]}
        },
        "POST /api/v1/patients/{patient_id}/break-glass": {
            "json": {"reason": "unconscious in the emergency room"}
        },
        "POST /api/v1/patients/{patient_id}/studies": {
            "files": {"file": ("x.png", _png(), "image/png")}
        },
        "POST /api/v1/patients/{patient_id}/predictions": {
            "files": {"file": ("x.png", _png(), "image/png")}
        },
        "POST /api/v1/predictions/{prediction_id}/feedback": {"json": {"verdict": "agree"}},
        "POST /api/v1/patients/{patient_id}/segmentations": {
            "files": {"file": ("x.png", _png(), "image/png")}
        },
        "POST /api/v1/segmentations/{segmentation_id}/review": {"json": {"verdict": "agree"}},
        "POST /api/v1/patients/{patient_id}/notes": {"json": {"text": "Asthma."}},
        "POST /api/v1/patients/{patient_id}/notes/file": {
            "files": {"file": ("n.txt", b"Asthma.", "text/plain")}
        },
        "POST /api/v1/nlp/annotate": {"json": {"text": "No fever."}},
        "POST /api/v1/patients/{patient_id}/risk": {"json": {"inputs": {"Age": 50}}},
        "POST /patients/{patient_id}/risk": {"data": {**form, "f_Age": "50"}},
        "POST /api/v1/survival/patients/{patient_id}": {"json": {"inputs": {"age": 50}}},
        "POST /api/v1/progression/patients/{patient_id}": {
            "json": {"stay": "Time,Parameter,Value\n01:00,HR,80\n"}
        },
        "POST /api/v1/recommendations/persons/{person_id}/feedback": {
            "json": {"drug": "RxNorm|1191", "decision": "reject"}
        },
        "POST /patients/{patient_id}/survival": {"data": {**form, "f_age": "50"}},
        "POST /patients/{patient_id}/treatments/feedback": {
            "data": {**form, "person": "2", "drug": "RxNorm|1191", "decision": "reject"}
        },
        "POST /patients/{patient_id}/notes": {"data": {**form, "text": "Asthma."}},
        "POST /api/v1/models/{kind}/{name}/{version}/promote": {"json": {}},
        "POST /api/v1/models/{kind}/{name}/{version}/archive": {"json": {}},
        "POST /api/v1/models/{kind}/{name}/rollback": {"json": {}},
        "POST /login": {"data": {"username": "alice", "password": PASSWORD, "csrf": "wrong"}},
        "POST /logout": {"data": form},
        "POST /patients": {"data": {**form, **OWN, "mrn": f"MRN-WEB-{n}"}},
        "POST /patients/{patient_id}/studies": {
            "data": form,
            "files": {"file": ("x.png", _png(), "image/png")},
        },
        "POST /predictions/{prediction_id}/feedback": {"data": {**form, "verdict": "agree"}},
        "POST /predictions/{prediction_id}/report": {"data": form},
        "POST /studies/{study_id}/segmentations": {"data": {**form, "model": SEGMENTER}},
        "POST /patients/{patient_id}/segmentations": {
            "data": {**form, "model": SEGMENTER},
            "files": {"file": ("x.png", _png(), "image/png")},
        },
        "POST /segmentations/{segmentation_id}/review": {"data": {**form, "verdict": "agree"}},
        "POST /patients/{patient_id}/held/{token}": {"data": {**form, "action": "confirm"}},
        "POST /models/image/{name}/{version}/recalibration": {"data": form},
        "POST /api/v1/users/{user_id}/role": {"json": {"role": "clinician"}},
        "POST /api/v1/care-teams/add": {"json": team},
        "POST /api/v1/care-teams/remove": {"json": team},
        "POST /admin/users": {
            "data": {**form, "username": f"web{n}", "password": PASSWORD, "role": "clinician"}
        },
        "POST /admin/users/{user_id}/role": {"data": {**form, "role": "clinician"}},
        "POST /admin/users/{user_id}/disable": {"data": form},
        "POST /admin/users/{user_id}/enable": {"data": form},
        "POST /admin/users/{user_id}/reset-password": {"data": form},
        "POST /admin/care-teams": {"data": {**form, "mrn": OWN["mrn"]}},
        "POST /admin/care-teams/add": {"data": {**form, **team}},
        "POST /admin/care-teams/remove": {"data": {**form, **team}},
        "POST /break-glass": {
            "data": {
                **form,
                "patient_id": world.ids["own"]["patient_id"],
                "minutes": "30",
                "reason": "unconscious in the emergency room",
            }
        },
    }
    params = {"mrn": OTHER["mrn"]} if key == "GET /api/v1/patients/lookup" else None
    if key.endswith("/notes/search"):
        params = {"q": "asthma", "mode": "keyword"}
    if key in ("GET /api/v1/care-teams", "GET /break-glass"):
        params = {"mrn": OWN["mrn"]}
    if key == "GET /api/v1/audit/export":
        params = {"format": "fhir"}
    if key in ("POST /api/v1/studies/{study_id}/segmentations",
               "POST /api/v1/patients/{patient_id}/segmentations"):  # fmt: skip
        params = {"model": SEGMENTER}
    response = client.request(method, path, headers=headers, params=params,
                              follow_redirects=False, **bodies.get(key, {}))  # fmt: skip
    client.cookies.clear()
    return response.status_code, response.text


def _clinical_rows(world: World) -> dict[str, int]:
    state = world.service.client.app.state.clinsight  # type: ignore[attr-defined]
    with state.sessions() as session:
        return {
            t.__tablename__: int(session.execute(select(func.count()).select_from(t)).scalar_one())
            for t in CLINICAL
        }


def test_every_route_has_an_entry_in_the_matrix(service: Service) -> None:
    routes = _routes(service.client.app)
    assert sorted(set(routes) - set(EXPECTED)) == [], "new routes need a row in EXPECTED"
    assert sorted(set(EXPECTED) - set(routes)) == [], "EXPECTED lists routes the app lacks"


def test_access_matrix_has_no_unauthorized_read_or_write(world: World) -> None:
    keys = sorted(_routes(world.service.client.app), key=lambda k: "break-glass" in k)
    checked, mismatches, leaks, writes = 0, [], [], []
    for key in keys:
        scoped = "{patient_id}" in key or "{study_id}" in key or "{prediction_id}" in key
        scoped = scoped or "{note_id}" in key or "{user_id}" in key or "{person_id}" in key
        scoped = scoped or "{segmentation_id}" in key
        for role, expected in zip(ROLES, EXPECTED[key], strict=True):
            for scope in ("own", "other") if scoped else ("own",):
                want = expected if isinstance(expected, int) else expected[scope == "other"]
                before = _clinical_rows(world)
                status, body = _request(world, key, role, scope)
                checked += 1
                if status != want:
                    mismatches.append(f"{key} as {role} on {scope}: {status}, expected {want}")
                if OTHER["name"] in body or OTHER["mrn"] in body:
                    leaks.append(f"{key} as {role} on {scope} shows the other patient's PHI")
                if role != "clinician" and OWN["name"] in body:
                    leaks.append(f"{key} as {role} on {scope} shows PHI to a non-clinician")
                if status in (401, 403) and _clinical_rows(world) != before:
                    writes.append(f"{key} as {role} on {scope} was refused but wrote rows")
    assert mismatches == [], "\n".join(mismatches)
    assert leaks == []
    assert writes == []
    assert checked == 4 * len(EXPECTED) + 4 * sum(
        1 for k in EXPECTED if "{patient_id}" in k or "_id}" in k
    )
