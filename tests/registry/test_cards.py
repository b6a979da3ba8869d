"""Model cards: metrics with intervals, calibration, limitations and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clinsight.data.medmnist import TaskType
from clinsight.evaluation.report import evaluate_predictions
from clinsight.imaging.networks import NetworkConfig
from clinsight.registry.cards import build_card, format_metric, render_card_markdown
from tests.support.image_models import DATA_SHA256, METRICS, TRAINING, register_tiny, write_plot

RECORD: dict[str, Any] = {
    "name": "pneumonia",
    "version": 4,
    "created": "2025-01-02T03:04:05+00:00",
    "network": {"architecture": "resnet18", "in_channels": 1, "num_classes": 2, "width": 32},
    "preprocess": {"image_size": 64, "channels": 1, "mean": 0.5, "std": 0.25},
    "labels": ["normal", "pneumonia"],
    "task": "binary",
    "positive_index": 1,
    "temperature": 1.2345,
    "metrics": METRICS,
    "training": TRAINING,
}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"value": 0.912, "low": 0.89, "high": 0.931}, "0.912 (95% CI 0.89–0.931)"),
        ({"value": 0.5, "ci": [0.4, 0.6]}, "0.5 (95% CI 0.4–0.6)"),
        ({"value": 0.7, "ci": [0.61234567, None]}, "0.7"),
        ({"value": 0.7}, "0.7"),
        (624, "624"),
        (None, "n/a"),
        (True, "True"),
        ([[50, 3], [4, 60]], "[[50, 3], [4, 60]]"),
        ([0.0, 1 / 3, None], "[0, 0.3333, n/a]"),
        (list(range(25)), "25 values (see card.json)"),
        ({"a": 1, "val_auc": 0.5}, "A: 1; Validation AUC: 0.5"),
    ],
)
def test_format_metric(value: Any, text: str) -> None:
    assert format_metric(value) == text


def test_evaluation_report_metrics_show_values_with_their_intervals() -> None:
    rng = np.random.default_rng(0)
    y_test, y_val = rng.integers(0, 2, 80), rng.integers(0, 2, 60)
    logits_test = rng.normal(size=(80, 2)) + np.eye(2)[y_test]
    logits_val = rng.normal(size=(60, 2)) + np.eye(2)[y_val]
    report = evaluate_predictions(
        y_test, logits_test, logits_val, y_val, TaskType.BINARY, ["normal", "pneumonia"],
        n_bootstrap=50,
    )  # fmt: skip
    record = {**RECORD, "metrics": report.to_dict(), "temperature": report.temperature}
    card = build_card(record, artifact_sha256="0" * 64)
    assert card["calibration"]["ece_after"] == report.ece_after
    text = render_card_markdown(card)
    low, high = report.metrics.intervals["auc"]
    auc = f"{report.metrics.values['auc']:.4g} (95% CI {low:.4g}–{high:.4g})"
    assert f"| Metrics / AUC | {auc} |" in text
    assert f"| ECE before | {report.ece_before:.4g} |" in text
    assert "metrics / intervals" not in text
    assert "reliability_before" not in text
    assert "bootstrap_used" not in text
    assert card["calibration"]["reliability_before"]["ece"] == report.ece_before
    assert "task" not in card["metrics"]


def test_card_separates_calibration_and_adds_standard_limitations() -> None:
    card = build_card(
        RECORD, artifact_sha256="f" * 64, limitations=["Paediatric patients only."], plots=[]
    )
    assert card["model"]["artifact_sha256"] == "f" * 64
    assert card["outputs"] == {
        "task": "binary",
        "labels": ["normal", "pneumonia"],
        "positive_label": "pneumonia",
    }
    assert card["calibration"] == {"temperature": 1.2345, "ece_before": 0.081, "ece_after": 0.023}
    assert "calibration" not in card["metrics"]
    assert len(card["limitations"]) == 4
    assert card["limitations"][-1] == "Paediatric patients only."
    assert "pneumoniamnist only, at 64x64 pixels" in card["limitations"][0]
    assert "T = 1.234" in card["limitations"][1]
    assert card["intended_use"].startswith("Decision support: classify images like those of")


def test_markdown_card_shows_metrics_intervals_calibration_and_plots() -> None:
    card = build_card(
        RECORD, artifact_sha256="f" * 64, intended_use="Triage support.", plots=["plots/roc.png"]
    )
    text = render_card_markdown(card)
    assert text.startswith("# Model card: pneumonia v4\n")
    for line in [
        "| Artifact sha256 | `" + "f" * 64 + "` |",
        "| Positive label | pneumonia |",
        "Triage support.",
        f"| Data SHA-256 | {DATA_SHA256} |",
        "| Test / AUC | 0.912 (95% CI 0.89–0.931) |",
        "| Test / Accuracy | 0.85 (95% CI 0.82–0.88) |",
        "| Test / N | 624 |",
        "| Temperature | 1.234 |",
        "| ECE before | 0.081 |",
        "| ECE after | 0.023 |",
        "![roc.png](plots/roc.png)",
    ]:
        assert line in text, line


def test_registered_card_files_agree(tmp_path: Path) -> None:
    plot = write_plot(tmp_path / "calibration.png")
    model, _ = register_tiny(tmp_path / "reg", plots=[plot], limitations=["Synthetic."])
    card = json.loads((model.path / "card.json").read_text())
    assert card["model"]["name"] == "tiny"
    assert card["model"]["version"] == 1
    assert card["model"]["artifact_sha256"] == model.artifact_sha256
    assert card["plots"] == ["plots/calibration.png"]
    assert model.card_path.read_text() == render_card_markdown(card)
    assert "| Test / AUC | 0.912 (95% CI 0.89–0.931) |" in model.card_path.read_text()


def test_card_states_the_ensemble_size(tmp_path: Path) -> None:
    card = build_card(RECORD, artifact_sha256="0" * 64)  # written before ensembles existed
    assert "| Ensemble | none (a single network) |" in render_card_markdown(card)
    del card["model"]["ensemble_members"]  # as in risk models' cards: nothing to state
    assert "Ensemble" not in render_card_markdown(card)
    config = NetworkConfig("cnn", 1, 2, width=4, members=3)
    model, _ = register_tiny(tmp_path / "reg", config=config)
    card = json.loads((model.path / "card.json").read_text())
    assert card["model"]["ensemble_members"] == 3
    assert card["model"]["network"]["members"] == 3
    text = model.card_path.read_text()
    assert "| Ensemble | 3 independently trained networks; their logits are averaged |" in text
