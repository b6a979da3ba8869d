"""The models page: image model cards, the risk models, then the NER models with their test
F1 and cards."""

from __future__ import annotations

from pathlib import Path

from tests.support.ner_models import register_tiny, tiny_spacy
from tests.support.service import Service
from tests.support.web import web_login


def test_models_page_lists_ner_models_with_f1_and_card(service: Service, data_dir: Path) -> None:
    registry = service.settings.resolved_registry_dir
    version = register_tiny(registry, tiny_spacy(data_dir), data_dir, name="ncbi-tiny")
    web_login(service, "auditor")
    page = service.client.get("/models")
    assert page.status_code == 200
    assert "<h1>Model card: breastmnist v1</h1>" in page.text
    f1 = {label: s["f1"] for label, s in version.metrics["test"].items()}
    assert list(f1) == ["ALL", "Disease"]  # as scored; the page shows the labels, then ALL
    cell = "".join(
        f"<div>{label} {f1[label]['value']:.3f} ({f1[label]['low']:.3f}–{f1[label]['high']:.3f})"
        "</div>"
        for label in ("Disease", "ALL")
    )
    row = (
        "<tr>\n    <td>ncbi-tiny</td><td>1</td>\n"
        '    <td><span class="stage production">production</span></td><td>spacy</td>\n'
        f"    <td>{cell}</td>\n"
    )
    assert row in page.text
    assert '<td><a href="#ner-ncbi-tiny-1">card</a></td>' in page.text
    assert '<section class="card" id="ner-ncbi-tiny-1">' in page.text
    assert "<h1>Model card: ncbi-tiny v1</h1>" in page.text
    assert "No NER model is registered yet." not in page.text


def test_models_page_says_when_no_ner_model_is_registered(service: Service) -> None:
    web_login(service, "alice")
    page = service.client.get("/models")
    assert page.status_code == 200
    assert '<h2 id="ner-models">NER models</h2>\n\n<p>No NER model is registered yet.</p>' in (
        page.text
    )
    assert '<h2 id="risk-models">Risk models</h2>\n\n<p>No risk model is registered yet.</p>' in (
        page.text
    )
