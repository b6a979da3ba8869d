"""The clinical-notes API: store, list, read annotated, search, FHIR, ad-hoc annotation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.resource import Resource

import clinsight.services.notes as notes_service
from clinsight.errors import ModelError
from clinsight.nlp.pipeline import annotate_note
from clinsight.nlp.search import NoteIndex
from tests.support.service import HeldStep, Service, one_torch_thread

if TYPE_CHECKING:
    import httpx2  # the responses of Starlette's TestClient

__all__ = ["one_torch_thread"]  # the autouse fixture: torch on one thread

PATIENT = {"mrn": "MRN-N1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}
NOTE = (
    "Seen by Dr. John Smith on 03/14/2026. History of hypertension. Denies chest pain.\n"
    "Possible pneumonia.\nFAMILY HISTORY: Mother had diabetes."
)
FOLLOW_UP = "Follow-up: asthma is controlled on an inhaler. No wheezing."


class _Extra(TypedDict, total=False):
    """The body or query of one request a test sends with `TestClient.request`."""

    json: dict[str, str]
    params: dict[str, str]


def _patient(service: Service, headers: dict[str, str], mrn: str = "MRN-N1") -> str:
    made = service.client.post("/api/v1/patients", json={**PATIENT, "mrn": mrn}, headers=headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _audit(service: Service) -> list[dict[str, object]]:
    auditor = service.login("auditor")
    entries = service.client.get("/api/v1/audit", params={"limit": 100}, headers=auditor)
    return list(reversed(entries.json()))


def test_pasted_note_is_stored_annotated_and_listed(service: Service) -> None:
    client, alice = service.client, service.login("alice")
    patient_id = _patient(service, alice)
    made = client.post(f"/api/v1/patients/{patient_id}/notes", json={"text": NOTE}, headers=alice)
    assert made.status_code == 201, made.text
    note = made.json()
    assert (note["patient_id"], note["author_id"], note["chars"]) == (
        patient_id, service.users["alice"], len(NOTE),
    )  # fmt: skip
    entities = [
        (e["text"], e["assertion"], e["icd10_code"]) for e in note["annotation"]["entities"]
    ]
    assert entities == [
        ("hypertension", "historical", "I10"),
        ("chest pain", "negated", "R07.9"),
        ("pneumonia", "possible", "J18.9"),
        ("diabetes", "family", "E11.9"),
    ]
    problems = [(p["text"], p["icd10_code"]) for p in note["annotation"]["problem_list"]]
    assert problems == [("hypertension", "I10"), ("pneumonia", "J18.9")]
    deid = note["annotation"]["deidentified"]
    assert "John Smith" not in deid
    assert "03/14/2026" not in deid
    assert [p["type"] for p in note["annotation"]["phi"]] == ["NAME", "DATE"]
    read = client.get(f"/api/v1/notes/{note['id']}", headers=alice).json()
    assert read == note  # same text, annotation and surrogates (per-patient key)
    listed = client.get(f"/api/v1/patients/{patient_id}/notes", headers=alice).json()
    assert [n["id"] for n in listed] == [note["id"]]
    assert "text" not in listed[0]
    actions = [(e["action"], e["resource_id"]) for e in _audit(service)]
    assert ("note.create", note["id"]) in actions
    assert ("note.read", note["id"]) in actions
    assert ("note.list", patient_id) in actions


def test_uploaded_txt_note_and_refused_uploads(service: Service) -> None:
    client, alice = service.client, service.login("alice")
    patient_id = _patient(service, alice)
    url = f"/api/v1/patients/{patient_id}/notes/file"
    made = client.post(url, files={"file": ("n.txt", FOLLOW_UP.encode())}, headers=alice)
    assert made.status_code == 201, made.text
    assert made.json()["text"] == FOLLOW_UP
    binary = client.post(url, files={"file": ("n.txt", b"\x89PNG\x00\x01")}, headers=alice)
    assert binary.status_code == 415
    assert binary.headers["content-type"] == "application/problem+json"
    latin = client.post(url, files={"file": ("n.txt", "café".encode("latin-1"))}, headers=alice)
    assert latin.status_code == 415
    assert "not UTF-8" in latin.json()["detail"]
    empty = client.post(url, files={"file": ("n.txt", b"  \n")}, headers=alice)
    assert empty.status_code == 422
    assert "the note is empty" in empty.json()["detail"]
    notes = client.get(f"/api/v1/patients/{patient_id}/notes", headers=alice).json()
    assert len(notes) == 1


def test_other_clinicians_and_other_roles_are_refused_and_audited(service: Service) -> None:
    client, alice = service.client, service.login("alice")
    bob, admin, auditor = service.login("bob"), service.login("admin"), service.login("auditor")
    patient_id = _patient(service, alice)
    note_id = client.post(
        f"/api/v1/patients/{patient_id}/notes", json={"text": NOTE}, headers=alice
    ).json()["id"]
    requests: list[tuple[str, str, _Extra]] = [
        ("POST", f"/api/v1/patients/{patient_id}/notes", {"json": {"text": "x"}}),
        ("GET", f"/api/v1/patients/{patient_id}/notes", {}),
        ("GET", f"/api/v1/patients/{patient_id}/notes/search", {"params": {"q": "asthma"}}),
        ("GET", f"/api/v1/notes/{note_id}", {}),
        ("GET", f"/api/v1/notes/{note_id}/fhir", {}),
    ]
    for method, url, extra in requests:
        refused = client.request(method, url, headers=bob, **extra)
        assert refused.status_code == 403, (url, refused.text)
        assert "care team" in refused.json()["detail"]
        assert "Ada" not in refused.text
        for other in (admin, auditor):
            assert client.request(method, url, headers=other, **extra).status_code == 403
    denied = [(e["action"], e["actor_id"]) for e in _audit(service) if e["outcome"] == "denied"]
    bob_id = service.users["bob"]
    assert [a for a, actor in denied if actor == bob_id] == [
        "note.create", "note.list", "note.search", "note.read", "note.read",
    ]  # fmt: skip
    notes = client.get(f"/api/v1/patients/{patient_id}/notes", headers=alice).json()
    assert [n["id"] for n in notes] == [note_id]


def test_search_covers_only_that_patients_notes(service: Service) -> None:
    client, alice = service.client, service.login("alice")
    mine, theirs = _patient(service, alice, "MRN-A"), _patient(service, alice, "MRN-B")
    ids = [
        client.post(f"/api/v1/patients/{mine}/notes", json={"text": t}, headers=alice).json()["id"]
        for t in (NOTE, FOLLOW_UP)
    ]
    client.post(f"/api/v1/patients/{theirs}/notes", json={"text": "Asthma attack."}, headers=alice)
    url = f"/api/v1/patients/{mine}/notes/search"
    hits = client.get(url, params={"q": "asthma inhaler", "mode": "keyword"}, headers=alice).json()
    assert [h["note"]["id"] for h in hits] == [ids[1]]
    assert hits[0]["snippet_html"] == (
        "Follow-up: <mark>asthma</mark> is controlled on an <mark>inhaler</mark>. No wheezing."
    )
    assert hits[0]["highlights"] == [[11, 17], [38, 45]]
    hybrid = client.get(url, params={"q": "lung infection", "mode": "hybrid"}, headers=alice)
    assert hybrid.status_code == 200
    assert {h["note"]["id"] for h in hybrid.json()} <= set(ids)
    bad = client.get(url, params={"q": "x", "mode": "fuzzy"}, headers=alice)
    assert bad.status_code == 422
    search = [e for e in _audit(service) if e["action"] == "note.search"]
    assert [e["details"] for e in search] == [
        {"mode": "keyword", "hits": 1}, {"mode": "hybrid", "hits": len(hybrid.json())},
    ]  # fmt: skip


def _text_and_status(resource: Resource | None) -> tuple[str | None, str | None]:
    """A Condition's code text and the code of its verification status."""
    assert isinstance(resource, Condition)
    assert resource.code is not None
    assert resource.verificationStatus is not None
    coding = resource.verificationStatus.coding
    assert coding
    return resource.code.text, coding[0].code


def test_fhir_bundle_of_a_note_validates(service: Service) -> None:
    client, alice = service.client, service.login("alice")
    patient_id = _patient(service, alice)
    note_id = client.post(
        f"/api/v1/patients/{patient_id}/notes", json={"text": NOTE}, headers=alice
    ).json()["id"]
    response = client.get(f"/api/v1/notes/{note_id}/fhir", headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = Bundle.model_validate(response.json())
    resources = [e.resource for e in bundle.entry or []]
    document = resources[0]
    assert isinstance(document, DocumentReference)
    assert document.id == note_id
    assert document.subject is not None
    assert document.subject.reference == f"Patient/{patient_id}"
    statuses = [_text_and_status(r) for r in resources[1:]]
    assert statuses == [
        ("hypertension", "confirmed"), ("chest pain", "refuted"), ("pneumonia", "unconfirmed"),
    ]  # fmt: skip


def test_adhoc_annotation_stores_nothing_and_needs_a_clinician(service: Service) -> None:
    client = service.client
    body = {"text": "No fever. Possible pneumonia."}
    response = client.post("/api/v1/nlp/annotate", json=body, headers=service.login("alice"))
    assert response.status_code == 200
    assert [(e["text"], e["assertion"]) for e in response.json()["entities"]] == [
        ("fever", "negated"), ("pneumonia", "possible"),
    ]  # fmt: skip
    assert client.post("/api/v1/nlp/annotate", json=body).status_code == 401
    refused = client.post("/api/v1/nlp/annotate", json=body, headers=service.login("auditor"))
    assert refused.status_code == 403
    entries = [e for e in _audit(service) if e["action"] == "nlp.annotate"]
    assert [e["details"] for e in entries] == [{"chars": len(body["text"]), "ner_models": ""}]
    too_long = client.post("/api/v1/nlp/annotate", json={"text": "x" * 100_001},
                           headers=service.login("alice"))  # fmt: skip
    assert too_long.status_code == 422


@pytest.mark.parametrize("request_kind", ["create", "upload", "read", "fhir", "search"])
def test_a_write_is_not_blocked_while_notes_are_read(
    service: Service, monkeypatch: pytest.MonkeyPatch, request_kind: str
) -> None:
    # The NLP (or the search) of the request waits until a login, which writes to the
    # store, is done: on SQLite the login would wait for the store's write lock if the
    # request held it meanwhile.
    client, alice = service.client, service.login("alice")
    patient_id = _patient(service, alice)
    note_id = client.post(
        f"/api/v1/patients/{patient_id}/notes", json={"text": NOTE}, headers=alice
    ).json()["id"]
    step = HeldStep()
    if request_kind == "search":
        monkeypatch.setattr(NoteIndex, "search", step.wrap(NoteIndex.search))
    else:
        monkeypatch.setattr(notes_service, "annotate_note", step.wrap(annotate_note))
    patient_url = f"/api/v1/patients/{patient_id}/notes"
    send: Callable[[], httpx2.Response] = {
        "create": lambda: client.post(patient_url, json={"text": FOLLOW_UP}, headers=alice),
        "upload": lambda: client.post(
            f"{patient_url}/file", files={"file": ("n.txt", FOLLOW_UP.encode())}, headers=alice
        ),
        "read": lambda: client.get(f"/api/v1/notes/{note_id}", headers=alice),
        "fhir": lambda: client.get(f"/api/v1/notes/{note_id}/fhir", headers=alice),
        "search": lambda: client.get(
            f"{patient_url}/search", params={"q": "hypertension", "mode": "keyword"}, headers=alice
        ),
    }[request_kind]
    blocked, answer = step.write_meanwhile(service, send)
    assert not blocked, "the login waited for the store while a note was read"
    stores = request_kind in ("create", "upload")
    assert answer.status_code == (201 if stores else 200), answer.text
    expected = {
        "create": ("note.create", answer.json()["id"] if stores else None),
        "upload": ("note.create", answer.json()["id"] if stores else None),
        "read": ("note.read", note_id),
        "fhir": ("note.read", note_id),
        "search": ("note.search", patient_id),
    }[request_kind]
    assert expected in [(e["action"], e["resource_id"]) for e in _audit(service)]


def test_a_note_is_stored_only_once_read_and_refusals_come_first(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, alice, bob = service.client, service.login("alice"), service.login("bob")
    patient_id = _patient(service, alice)
    url = f"/api/v1/patients/{patient_id}/notes"

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ModelError("the NER model cannot be run")

    monkeypatch.setattr(notes_service, "annotate_note", broken)
    failed = client.post(url, json={"text": NOTE}, headers=alice)
    assert failed.status_code == 503
    assert client.get(url, headers=alice).json() == []  # nothing stored
    assert not [e for e in _audit(service) if e["action"] == "note.create"]
    # the store's refusals come first, as when the note was stored before it was read
    for text in (NOTE, "  "):
        refused = client.post(url, json={"text": text}, headers=bob)
        assert refused.status_code == 403, refused.text
    blank = client.post(url, json={"text": "  "}, headers=alice)
    assert (blank.status_code, blank.json()["detail"]) == (
        422, "the note is empty; paste or upload its text",
    )  # fmt: skip
    long = client.post(f"{url}/file", files={"file": ("n.txt", b"x" * 100_001)}, headers=alice)
    assert (long.status_code, long.json()["detail"]) == (
        422, "the note has 100001 characters, more than 100000; split it up",
    )  # fmt: skip
    denied = [(e["action"], e["actor_id"]) for e in _audit(service) if e["outcome"] == "denied"]
    assert [a for a, actor in denied if actor == service.users["bob"]] == ["note.create"] * 2
