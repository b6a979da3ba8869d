"""Notes read with the NER models in production: the service function, the API and the web
page report the model versions; a new production version is picked up; a tampered model
is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.config import get_settings
from clinsight.errors import IntegrityError
from clinsight.registry import ner
from clinsight.registry.stages import Stage
from clinsight.services.notes import note_pipeline, read_text
from tests.support.ner_models import NOTE, register_tiny, tiny_spacy
from tests.support.service import Service, one_torch_thread
from tests.support.web import web_login, web_patient

__all__ = ["one_torch_thread"]  # the autouse fixture: torch on one thread


def _found(entities: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    return {(e["text"], e["assertion"], e["source"]) for e in entities}


def test_read_text_follows_the_production_ner_models(data_dir: Path) -> None:
    registry = get_settings().resolved_registry_dir
    rules_only = read_text(NOTE).annotation
    assert rules_only.ner_models == ()
    assert "myotonic dystrophy" not in {e.text for e in rules_only.entities}
    register_tiny(registry, tiny_spacy(data_dir), data_dir, name="tiny", promote=False)
    assert read_text(NOTE).annotation.ner_models == ()  # a candidate is not used
    ner.REGISTRY.promote(registry, "tiny", 1, Stage.PRODUCTION)
    annotation = read_text(NOTE).annotation
    assert annotation.ner_models == ("tiny v1",)
    negated = [e for e in annotation.entities if e.text == "myotonic dystrophy"]
    assert [(e.assertion, e.label, e.source) for e in negated] == [
        ("negated", "PROBLEM", "tiny v1")
    ]
    assert note_pipeline() is note_pipeline()  # cached while the stages do not change
    register_tiny(registry, tiny_spacy(data_dir), data_dir, name="tiny")  # v2 in production
    assert read_text(NOTE).annotation.ner_models == ("tiny v2",)


def test_a_tampered_production_model_is_refused(data_dir: Path, tmp_path: Path) -> None:
    registry = tmp_path / "other-registry"
    version = register_tiny(registry, tiny_spacy(data_dir), data_dir, name="tiny")
    (version.path / "model" / "config.cfg").write_text("[nlp]\n", encoding="utf-8")
    with pytest.raises(IntegrityError, match="changed after registration"):
        note_pipeline(registry)


def test_api_and_web_report_the_ner_model_versions(service: Service, data_dir: Path) -> None:
    registry = service.settings.resolved_registry_dir
    register_tiny(registry, tiny_spacy(data_dir), data_dir, name="ncbi-tiny")
    client, alice = service.client, service.login("alice")
    read = client.post("/api/v1/nlp/annotate", json={"text": NOTE}, headers=alice)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["ner_models"] == ["ncbi-tiny v1"]
    assert ("myotonic dystrophy", "negated", "ncbi-tiny v1") in _found(body["entities"])
    assert ("hypertension", "present", "vocabulary") in _found(body["entities"])
    problems = [(p["text"], p["source"]) for p in body["problem_list"]]
    assert problems == [("hypertension", "vocabulary"), ("muscular dystrophy", "ncbi-tiny v1")]
    audit = client.get("/api/v1/audit", params={"limit": 5}, headers=service.login("auditor"))
    details = [e["details"] for e in audit.json() if e["action"] == "nlp.annotate"]
    assert details == [{"chars": len(NOTE), "ner_models": "ncbi-tiny v1"}]
    web_login(service, "alice")
    patient, csrf = web_patient(service)
    page = client.post(f"{patient}/notes", data={"text": NOTE, "csrf": csrf})
    assert page.status_code == 200
    assert (
        '<p class="meta" id="ner-models">Entities from the vocabulary rules and the trained NER '
        "model ncbi-tiny v1.</p>"
    ) in page.text
    assert (
        '<mark class="a-negated" title="problem · negated · found by ncbi-tiny v1">'
        "myotonic dystrophy</mark>"
    ) in page.text
    assert "<td>history_of_present_illness</td><td>ncbi-tiny v1</td>" in page.text


def test_the_api_refuses_to_read_with_a_tampered_model(service: Service, data_dir: Path) -> None:
    registry = service.settings.resolved_registry_dir
    version = register_tiny(registry, tiny_spacy(data_dir), data_dir, name="tampered")
    weights = version.path / "model" / "ner" / "model"
    weights.write_bytes(weights.read_bytes() + b"\0")
    refused = service.client.post(
        "/api/v1/nlp/annotate", json={"text": NOTE}, headers=service.login("alice")
    )
    assert refused.status_code == 503
    assert refused.json()["title"] == "Model artifact failed verification"
