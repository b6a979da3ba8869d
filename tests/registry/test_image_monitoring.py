"""An image model keeps its intended population (model.json, card) and its validation
baseline (baseline.json, covered by the manifest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinsight.data.intended_population import IntendedPopulation
from clinsight.errors import IntegrityError
from clinsight.evaluation.drift import build_baseline
from clinsight.registry.image import get_model, read_baseline, verify
from tests.support.image_models import register_tiny

POPULATION = IntendedPopulation(1, 5, "children aged 1 to 5 years", "Kermany et al. 2018")


def test_population_and_baseline_are_stored_with_the_version(tmp_path: Path) -> None:
    probs = np.linspace(0.05, 0.95, 30)
    baseline = build_baseline(probs, probs / 3, ["class1"] * 30, positive_label="class1",
                              indeterminate=None)  # fmt: skip
    made, _ = register_tiny(tmp_path, intended_population=POPULATION, baseline=baseline)
    model = get_model(tmp_path, "tiny", made.version)
    assert model.intended_population == POPULATION
    assert model.to_dict()["intended_population"]["max_age_years"] == 5
    assert read_baseline(model) == baseline
    card = model.card_path.read_text()
    assert (
        "Intended population: children aged 1 to 5 years (ages 1–5 years at the study date; "
        "source: Kermany et al. 2018)."
    ) in card
    (model.path / "baseline.json").write_text('{"n": 1}')
    with pytest.raises(IntegrityError):
        verify(tmp_path, "tiny", made.version)


def test_a_version_without_them_has_no_population_and_no_baseline(tmp_path: Path) -> None:
    made, _ = register_tiny(tmp_path)
    assert made.intended_population is None
    assert read_baseline(made) is None
    assert "Intended population" not in made.card_path.read_text()
