"""The risk page's pieces: the explanation chart's labels, and what the record supplies."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from clinsight.inference.cache import ModelCache
from clinsight.registry.risk import RiskModelVersion
from clinsight.store.repositories import PatientRecord
from clinsight.tabular.explain import Contribution, Explanation
from clinsight.web.risk_pages import contribution_chart, record_values
from tests.support.risk_models import MODEL_NAME, train_pima_synthea

WIDEST_GLYPH = 7.0  # px: a 12 px sans-serif's widest average glyph (DejaVu Sans ~ 6.9)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> RiskModelVersion:
    root = tmp_path_factory.mktemp("risk-pages")
    train_pima_synthea(root)
    return ModelCache(root).risk(MODEL_NAME).version


def test_every_label_of_the_chart_fits_left_of_the_bars() -> None:
    """The labels were cut ("ıcose", "oodPressure") when the label column had a fixed
    190 px: the column is now as wide as the longest label."""
    items = (
        Contribution("Glucose", 148.0, "mg/dL (2-h OGTT)", 0.9),
        Contribution("DiabetesPedigreeFunction", 0.627, None, -0.2),
        Contribution("Insulin", None, "µU/mL", 0.1),
    )
    chart = str(contribution_chart(Explanation(0.7, 0.85, -0.6, items, "linear-exact")))
    labels = re.findall(r'<text x="(\d+)" y="\d+" text-anchor="end" font-size="12">([^<]+)<', chart)
    assert [text for _, text in labels] == [
        "Glucose = 148 mg/dL (2-h OGTT)", "DiabetesPedigreeFunction = 0.627", "Insulin = missing",
    ]  # fmt: skip
    for x, text in labels:
        assert int(x) >= len(text) * WIDEST_GLYPH, text
    width = re.search(r'width="(\d+)" height="(\d+)" viewBox="0 0 (\d+) (\d+)"', chart)
    assert width is not None
    assert width.group(1) == width.group(3)  # scales with the page (class chart)


def test_the_record_supplies_age_from_the_birth_date(model: RiskModelVersion) -> None:
    born = PatientRecord("p", "MRN", "Ada", date(2016, 3, 1), "male", datetime.now(UTC))
    assert record_values(model, born, date(2026, 2, 28)) == {"Age": "9"}
    assert record_values(model, born, date(2026, 3, 2)) == {"Age": "10"}


@pytest.mark.parametrize(("sex", "code"), [("male", "1"), ("female", "0"), ("unknown", None)])
def test_the_record_supplies_the_sex_coded_as_the_model_reads_it(
    sex: str, code: str | None, model: RiskModelVersion
) -> None:
    with_sex = replace(model, task=replace(model.task, sex_column="Sex"))
    patient = PatientRecord("p", "MRN", "Ada", date(1980, 1, 1), sex, datetime.now(UTC))
    values = record_values(with_sex, patient, date(2026, 1, 1))
    assert values.get("Sex") == code
