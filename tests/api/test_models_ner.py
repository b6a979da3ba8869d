"""NER models over the models API: list and card with the test F1 per label, promotion and
rollback by admins only (audited), and the note pipeline following the promoted version."""

from __future__ import annotations

from pathlib import Path

from tests.support.ner_models import NOTE, register_tiny, tiny_spacy
from tests.support.service import Service, one_torch_thread

__all__ = ["one_torch_thread"]  # the autouse fixture: torch on one thread


def test_ner_models_are_listed_with_their_test_f1(service: Service, data_dir: Path) -> None:
    registry = service.settings.resolved_registry_dir
    model = tiny_spacy(data_dir)
    first = register_tiny(registry, model, data_dir, name="ncbi-tiny")
    register_tiny(registry, model, data_dir, name="ncbi-tiny", promote=False)
    client, auditor = service.client, service.login("auditor")
    listed = client.get("/api/v1/models/ner", headers=auditor)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [(m["name"], m["version"], m["stage"], m["backend"]) for m in body] == [
        ("ncbi-tiny", 1, "production", "spacy"),
        ("ncbi-tiny", 2, "candidate", "spacy"),
    ]
    expected_f1 = {label: s["f1"] for label, s in first.metrics["test"].items()}
    assert list(expected_f1) == ["ALL", "Disease"]
    assert body[0]["labels"] == list(first.labels)
    assert body[0]["test_f1"] == expected_f1
    assert list(body[0]["test_f1"]) == ["Disease", "ALL"]  # the labels, then overall
    assert body[0]["corpus"] == "ncbi_disease"
    assert body[0]["artifact_sha256"] == first.artifact_sha256
    assert body[0]["card_markdown"] is None
    assert {m["kind"] for m in body} == {"ner"}
    models = client.get("/api/v1/models/image", headers=auditor).json()
    assert [m["name"] for m in models] == ["breastmnist"]  # the image list stays image models
    every = client.get("/api/v1/models", headers=auditor).json()
    assert [(m["kind"], m["name"], m["version"]) for m in every] == [
        ("image", "breastmnist", 1), ("ner", "ncbi-tiny", 1), ("ner", "ncbi-tiny", 2),
    ]  # fmt: skip


def test_ner_card_and_unknown_versions(service: Service, data_dir: Path) -> None:
    registry = service.settings.resolved_registry_dir
    register_tiny(registry, tiny_spacy(data_dir), data_dir, name="ncbi-tiny")
    client, alice = service.client, service.login("alice")
    card = client.get("/api/v1/models/ner/ncbi-tiny/1", headers=alice)
    assert card.status_code == 200, card.text
    assert card.json()["card_markdown"].startswith("# Model card: ncbi-tiny v1\n")
    assert "spaCy CNN NER" in card.json()["card_markdown"]
    assert client.get("/api/v1/models/ner/ncbi-tiny/9", headers=alice).status_code == 404
    assert client.get("/api/v1/models/ner/breastmnist/1", headers=alice).status_code == 404
    assert client.get("/api/v1/models/image/breastmnist/1", headers=alice).status_code == 200
    assert client.get("/api/v1/models/ner/ncbi-tiny/1").status_code == 401


def test_admins_promote_and_roll_back_ner_models(service: Service, data_dir: Path) -> None:
    registry = service.settings.resolved_registry_dir
    model = tiny_spacy(data_dir)
    register_tiny(registry, model, data_dir, name="ncbi-tiny")
    register_tiny(registry, model, data_dir, name="ncbi-tiny", promote=False)
    client, admin, alice = service.client, service.login("admin"), service.login("alice")
    promote = "/api/v1/models/ner/ncbi-tiny/2/promote"
    refused = client.post(promote, headers=alice, json={})
    assert refused.status_code == 403
    promoted = client.post(promote, headers=admin, json={"note": "better"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["stage"] == "production"
    stages = [m["stage"] for m in client.get("/api/v1/models/ner", headers=alice).json()]
    assert stages == ["archived", "production"]
    read = client.post("/api/v1/nlp/annotate", json={"text": NOTE}, headers=alice)
    assert read.json()["ner_models"] == ["ncbi-tiny v2"]
    rollback = "/api/v1/models/ner/ncbi-tiny/rollback"
    assert client.post(rollback, headers=alice, json={}).status_code == 403
    rolled = client.post(rollback, headers=admin, json={})
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["version"], rolled.json()["stage"]) == (1, "production")
    read = client.post("/api/v1/nlp/annotate", json={"text": NOTE}, headers=alice)
    assert read.json()["ner_models"] == ["ncbi-tiny v1"]
    entries = client.get("/api/v1/audit", params={"limit": 20}, headers=service.login("auditor"))
    stage_changes = [
        (e["action"], e["resource_id"], e["details"], e["outcome"])
        for e in reversed(entries.json())
        if e["resource_type"] == "ner_model"
    ]
    assert stage_changes == [
        ("model.promote", "ncbi-tiny:2", {"stage": "production"}, "success"),
        ("model.rollback", "ncbi-tiny:1", {}, "success"),
    ]
