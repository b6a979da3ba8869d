"""Tabular loaders: the three built-in datasets, user CSVs with a task spec, row/column errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinsight.data.tabular import (
    DATASETS,
    FeatureSpec,
    FeatureType,
    TaskSpec,
    coerce_features,
    load_breast_cancer,
    load_csv,
    load_dataset,
    load_pima,
    load_uci_heart,
    uci_heart_sites,
)
from clinsight.errors import DataError, DataNotFoundError
from clinsight.files import sha256_file

SPEC = {
    "name": "toy",
    "target": "outcome",
    "positive": "yes",
    "positive_label": "readmitted",
    "features": {
        "age": {"type": "numeric", "unit": "years"},
        "smoker": "binary",
        "stage": {"type": "categorical", "categories": ["I", "II", "III"]},
    },
    "sex_column": "sex",
    "age_column": "age",
}


def _write(tmp_path: Path, text: str, name: str = "toy.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_breast_cancer_positive_class_is_malignant() -> None:
    data = load_breast_cancer()
    assert data.X.shape == (569, 30)
    assert int(data.y.sum()) == 212  # 212 malignant, coded 0 by scikit-learn
    assert data.spec.positive_label == "malignant"
    assert set(data.feature_types.values()) == {FeatureType.NUMERIC}
    assert len(data.sha256) == 64


def test_cleveland_reads_question_marks_as_missing(data_dir: Path) -> None:
    data = load_uci_heart("cleveland", data_dir)
    assert data.X.shape == (303, 13)
    assert int(data.y.sum()) == 139  # num > 0
    assert int(data.X["ca"].isna().sum()) == 4
    assert int(data.X["thal"].isna().sum()) == 2
    assert data.X.loc[0, "cp"] == "1"
    assert data.X.loc[0, "chol"] == 233.0
    assert data.units["trestbps"] == "mm Hg"
    assert data.spec.sex_column == "sex"
    assert data.sha256 == sha256_file(data_dir / "tabular/uci_heart/processed.cleveland.data")
    assert uci_heart_sites(data_dir) == ["cleveland"]


def test_pima_zeros_are_missing(data_dir: Path) -> None:
    data = load_pima(data_dir)
    assert data.X.shape == (768, 8)
    assert int(data.y.sum()) == 268
    missing = data.X.isna().sum()
    assert missing.to_dict() == {
        "Pregnancies": 0, "Glucose": 5, "BloodPressure": 35, "SkinThickness": 227,
        "Insulin": 374, "BMI": 11, "DiabetesPedigreeFunction": 0, "Age": 0,
    }  # fmt: skip
    assert data.notes == (
        "zeros read as missing in ['Glucose', 'BloodPressure', 'SkinThickness', 'Insulin', 'BMI']",
    )


def test_load_dataset_dispatch(data_dir: Path) -> None:
    assert DATASETS == ("wdbc", "cleveland", "pima")
    assert load_dataset("pima", data_dir).spec.name == "pima"
    with pytest.raises(DataError, match="unknown tabular dataset 'mimic'"):
        load_dataset("mimic", data_dir)


def test_loaders_default_to_settings_data_dir() -> None:
    assert load_dataset("cleveland").X.shape == (303, 13)


def test_user_csv_with_json_spec(tmp_path: Path) -> None:
    spec_path = _write(tmp_path, json.dumps(SPEC), "spec.json")
    csv = _write(
        tmp_path, "age,smoker,stage,sex,outcome\n61,1,II,F,yes\n47,0,,M,no\n?,1,III,F,no\n"
    )
    data = load_csv(csv, TaskSpec.from_file(spec_path))
    assert data.y.tolist() == [1, 0, 0]
    assert data.X["age"].tolist()[:2] == [61.0, 47.0]
    assert np.isnan(data.X["age"].iloc[2])
    assert data.X["stage"].tolist()[0] == "II"
    assert pd.isna(data.X["stage"].iloc[1])
    assert data.units == {"age": "years", "smoker": None, "stage": None}
    assert data.spec.positive_label == "readmitted"


def test_yaml_spec(tmp_path: Path) -> None:
    text = "target: outcome\npositive: 1\nfeatures:\n  glucose: {type: numeric, unit: mg/dL}\n"
    spec = TaskSpec.from_file(_write(tmp_path, text, "spec.yaml"))
    assert spec.positive == "1"
    assert spec.features == (FeatureSpec("glucose", FeatureType.NUMERIC, "mg/dL"),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("age,smoker,stage,outcome\n61,1,II,yes\nabc,0,I,no\n",
         r"row 2 \(line 3\), column 'age': 'abc' is not a number"),
        ("age,smoker,stage,outcome\n61,2,II,yes\n",
         r"row 1 \(line 2\), column 'smoker': '2' is not 0 or 1"),
        ("age,smoker,stage,outcome\n61,1,II,yes\n50,0,IV,no\n",
         r"row 2 \(line 3\), column 'stage': unknown category 'IV'"),
        ("age,smoker,stage\n61,1,II\n", r"target column 'outcome' is missing"),
        ("age,stage,outcome\n61,II,yes\n", r"column 'smoker' is missing"),
        ("age,smoker,stage,outcome\n61,1,II,\n",
         r"row 1 \(line 2\), column 'outcome': the target is missing"),
        ("age,smoker,stage,outcome\n", r"has no data rows"),
        ("", r"is empty"),
    ],
)  # fmt: skip
def test_bad_csv_names_row_and_column(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_csv(_write(tmp_path, body), TaskSpec.from_mapping(SPEC))


def test_missing_file_and_bad_spec(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist; check the path"):
        load_csv(tmp_path / "absent.csv", TaskSpec.from_mapping(SPEC))
    with pytest.raises(DataError, match=r'e\.g\. \{"Glucose": "numeric"'):
        TaskSpec.from_mapping({"target": "y", "positive": 1, "features": ["a"]})
    with pytest.raises(DataError, match="task spec lacks 'positive'"):
        TaskSpec.from_mapping({"target": "y", "features": {"a": "numeric"}})
    with pytest.raises(DataError, match="type 'text' is not one of"):
        TaskSpec.from_mapping({"target": "y", "positive": 1, "features": {"a": "text"}})
    with pytest.raises(DataError, match="cannot be parsed"):
        TaskSpec.from_file(_write(tmp_path, "{not json", "spec.json"))


def test_predict_time_rows_are_named_by_index() -> None:
    spec = TaskSpec.from_mapping(SPEC)
    frame = pd.DataFrame(
        {"age": [70.0, 55.0], "smoker": [0, 1], "stage": ["I", "V"]}, index=["p-17", "p-18"]
    )
    with pytest.raises(DataError, match=r"row 'p-18', column 'stage': unknown category 'V'"):
        coerce_features(frame, spec)
    typed = coerce_features(frame.iloc[:1], spec)
    row = typed.loc["p-17"]
    assert isinstance(row, pd.Series)
    assert row.tolist() == [70.0, 0.0, "I"]
