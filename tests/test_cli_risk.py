"""`clinsight risk`: train and register, list, promote, explain (values or FHIR), validate."""

from __future__ import annotations

import json
from pathlib import Path

from clinsight.config import get_settings
from clinsight.registry.risk import get_risk_model
from clinsight.registry.stages import Stage
from tests.support.cli import run_cli, wide_console
from tests.support.risk_models import synthea_file

__all__ = ["wide_console"]  # the autouse fixture: a wide terminal


def test_train_list_promote_explain_on_values_and_fhir() -> None:
    code, out = run_cli(
        "risk", "train", "--dataset", "pima", "--features", "Glucose,BloodPressure,BMI,Age",
        "--name", "pima-synthea", "--candidates", "logistic", "--folds", "3", "--repeats", "1",
    )  # fmt: skip
    assert code == 0, out
    assert "pima-synthea v1 (candidate)" in out
    assert "Chosen: logistic, calibrated (sigmoid): AUC 0.8" in out
    registry = get_settings().resolved_registry_dir
    assert get_risk_model(registry, "pima-synthea", 1).stage is Stage.CANDIDATE
    code, out = run_cli("models", "list", "--kind", "risk")
    assert code == 0
    assert "│ risk │ pima-synthea │ 1       │ candidate │ CV AUC 0.8" in out
    code, out = run_cli("models", "promote", "risk", "pima-synthea", "1")
    assert (code, out.strip()) == (0, "risk model pima-synthea v1 is now production.")
    code, out = run_cli("risk", "explain", "--name", "pima-synthea", "--value", "Glucose=160",
                     "--value", "Age=50")  # fmt: skip
    assert code == 0, out
    assert "diabetes risk" in out
    assert "Missing BloodPressure: not given" in out
    code, out = run_cli("risk", "explain", "--name", "pima-synthea", "--fhir",
                     str(synthea_file(2)), "--as-of", "2019-06-01", "--json")  # fmt: skip
    assert code == 0, out
    resource = json.loads(out)
    assert resource["resourceType"] == "RiskAssessment"
    assert len(resource["basis"]) == 3


def test_validate_on_a_site_csv_recalibrates(tmp_path: Path, data_dir: Path) -> None:
    code, out = run_cli("risk", "train", "--dataset", "pima", "--features", "Glucose,BMI,Age",
                     "--candidates", "logistic", "--folds", "3", "--repeats", "1")  # fmt: skip
    assert code == 0, out
    lines = (data_dir / "tabular" / "pima" / "diabetes_kaggle_header.csv").read_text().splitlines()
    site = tmp_path / "site-b.csv"
    site.write_text("\n".join([lines[0], *lines[-300:]]) + "\n")
    code, out = run_cli("risk", "validate", "--name", "pima", "--site", str(site))
    assert code == 0, out
    assert "pima on site-b" in out
    assert "all rows, as shipped (n=300)" in out
    assert "rest, recalibrated (n=240)" in out
    assert "Recalibration chosen on 60 rows (" in out
    assert "Why: " in out
    code, out = run_cli("risk", "validate", "--name", "pima", "--site", str(site), "--json",
                     "--bootstrap", "20")  # fmt: skip
    assert code == 0, out
    report = json.loads(out)
    assert report["recalibration"]["method"] in ("none", "intercept", "logistic")
    assert report["recalibration"]["slope"] > 0
    assert report["after_on_rest"]["auc"] == report["before_on_rest"]["auc"]
    assert report["after_on_rest"]["bootstrap_replicates"] == 20
    code, out = run_cli("risk", "validate", "--name", "pima", "--site", "switzerland")
    assert code == 2
    assert "processed.switzerland.data does not exist" in out


def test_bad_requests_fail_with_a_clear_message() -> None:
    code, out = run_cli("risk", "train")
    assert (code, "Give either --dataset NAME, or --csv FILE with --spec SPEC." in out) == (2, True)
    code, out = run_cli("risk", "train", "--dataset", "pima", "--features", "Insulinx")
    assert code == 2
    assert "'Insulinx' is not a feature of pima" in out
    code, out = run_cli("risk", "explain", "--name", "nope", "--value", "a=1")
    assert code == 2
    assert "No risk model named 'nope'" in out


def test_train_on_a_user_csv_with_its_task_spec(tmp_path: Path, data_dir: Path) -> None:
    source = (data_dir / "tabular" / "pima" / "diabetes_kaggle_header.csv").read_text()
    csv = tmp_path / "clinic.csv"
    csv.write_text(source)
    spec = tmp_path / "task.yaml"
    spec.write_text(
        "name: clinic-diabetes\ntarget: Outcome\npositive: 1\npositive_label: diabetes\n"
        "age_column: Age\nfeatures:\n"
        "  Glucose: {type: numeric, unit: mg/dL, zero_is_missing: true}\n"
        "  BMI: {type: numeric, unit: kg/m2, zero_is_missing: true}\n  Age: numeric\n"
    )
    code, out = run_cli("risk", "train", "--csv", str(csv), "--spec", str(spec), "--candidates",
                     "logistic", "--folds", "3", "--repeats", "1")  # fmt: skip
    assert code == 0, out
    assert "clinic-diabetes v1 (candidate)" in out
    version = get_risk_model(get_settings().resolved_registry_dir, "clinic-diabetes", 1)
    assert version.task.units == {"Glucose": "mg/dL", "BMI": "kg/m2", "Age": None}
    csv.write_text(source.replace("\n6,148,", "\n6,high,", 1))
    code, out = run_cli("risk", "train", "--csv", str(csv), "--spec", str(spec))
    assert code == 2
    assert "row 1 (line 2), column 'Glucose': 'high' is not a number" in out


def test_validate_reports_implausible_values_and_explain_refuses_them_or_warns(
    tmp_path: Path, data_dir: Path
) -> None:
    code, out = run_cli("risk", "train", "--dataset", "pima", "--features", "Glucose,BMI,Age",
                     "--candidates", "logistic", "--folds", "3", "--repeats", "1")  # fmt: skip
    assert code == 0, out
    assert "Plausibility" not in out
    assert "Validated population: female, age 21–81 (Pima Indians diabetes" in out
    lines = (data_dir / "tabular" / "pima" / "diabetes_kaggle_header.csv").read_text().splitlines()
    header = lines[0].split(",")
    first = dict(zip(header, lines[1].split(","), strict=True))
    first["Glucose"] = "2000"
    site = tmp_path / "site-c.csv"
    site.write_text("\n".join([lines[0], ",".join(first.values()), *lines[-100:]]) + "\n")
    code, out = run_cli("risk", "validate", "--name", "pima", "--site", str(site))
    assert code == 0, out
    assert (
        "Plausibility 1 implausible Glucose value(s) read as missing (row 1 (line 2): Glucose "
        "2000 mg/dL is outside the plausible range 10–1500 mg/dL)"
    ) in out
    code, out = run_cli("risk", "explain", "--name", "pima", "--value", "Glucose=2000",
                     "--value", "Age=50")  # fmt: skip
    assert code == 2
    assert " ".join(out.split()) == (
        "Error: Glucose 2000 mg/dL is outside the plausible range 10–1500 mg/dL; correct the "
        "value or leave it empty (missing)."
    )
    code, out = run_cli("risk", "explain", "--name", "pima", "--value", "Glucose=150",
                     "--value", "Age=10")  # fmt: skip
    assert code == 0, out
    assert " ".join(out.split()).startswith(
        "Warning Outside the validated population (female, age 21–81; Pima Indians diabetes "
        "(NIDDK; women of Pima heritage aged 21 or more)): age 10 is outside the training ages "
        "21–81. The risk is an extrapolation; do not rely on it."
    )
    code, out = run_cli("risk", "explain", "--name", "pima", "--value", "Glucose=150",
                     "--value", "Age=30")  # fmt: skip
    assert (code, "Warning" in out) == (0, False)


def test_train_reports_values_outside_the_spec_ranges(tmp_path: Path, data_dir: Path) -> None:
    source = (data_dir / "tabular" / "pima" / "diabetes_kaggle_header.csv").read_text()
    csv = tmp_path / "clinic.csv"
    csv.write_text(source.replace("\n6,148,72,35,0,33.6,", "\n6,148,72,35,0,300,", 1))
    spec = tmp_path / "task.yaml"
    spec.write_text(
        "target: Outcome\npositive: 1\nfeatures:\n"
        "  Glucose: {type: numeric, unit: mg/dL, zero_is_missing: true}\n"
        "  BMI: {type: numeric, unit: kg/m2, plausible: {min: 7, max: 200, source: clinical}}\n"
    )
    code, out = run_cli("risk", "train", "--csv", str(csv), "--spec", str(spec), "--candidates",
                     "logistic", "--folds", "3", "--repeats", "1")  # fmt: skip
    assert code == 0, out
    assert "Plausibility BMI is 0 in every row" not in out
    assert (
        "Plausibility 12 implausible BMI value(s) read as missing (row 1 (line 2): BMI 300 "
        "kg/m2 is outside the plausible range 7–200 kg/m2; row 10 (line 11): BMI 0 kg/m2"
    ) in " ".join(out.split())
    spec.write_text(spec.read_text().replace("min: 7, max: 200", "min: 200, max: 7"))
    code, out = run_cli("risk", "train", "--csv", str(csv), "--spec", str(spec))
    assert code == 2
    assert "feature 'BMI': plausible range min 200 must be below max 7." in out


def _heart_site(data_dir: Path, path: Path, *, chol_zero: bool, inverted: bool) -> Path:
    """Cleveland's last 150 rows as a site CSV (header, outcome ``disease``)."""
    source = data_dir / "tabular" / "uci_heart" / "processed.cleveland.data"
    names = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal"
    rows = []
    for line in source.read_text().splitlines()[-150:]:
        cells = line.split(",")
        disease = int(float(cells[-1]) > 0)
        if chol_zero:
            cells[4] = "0"
        rows.append(",".join([*cells[:-1], str(1 - disease if inverted else disease)]))
    path.write_text("\n".join([f"{names},disease", *rows]) + "\n")
    return path


def test_validate_names_a_constant_zero_column_and_refuses_a_model_that_does_not_rank(
    tmp_path: Path, data_dir: Path
) -> None:
    code, out = run_cli("risk", "train", "--dataset", "cleveland", "--candidates", "logistic",
                     "--folds", "3", "--repeats", "1")  # fmt: skip
    assert code == 0, out
    assert "Validated population: male and female, age 29–77 (UCI heart disease, cleveland)" in out
    site = _heart_site(data_dir, tmp_path / "swiss.csv", chol_zero=True, inverted=False)
    code, out = run_cli("risk", "validate", "--name", "cleveland", "--site", str(site),
                     "--bootstrap", "0")  # fmt: skip
    assert code == 0, out
    assert "Plausibility chol is 0 in every row (150): read as 'not measured'" in out
    assert "intercept" in out  # the table's calibration intercept column
    assert "Do not use" not in out
    code, out = run_cli("risk", "validate", "--name", "cleveland", "--site", str(site),
                     "--json", "--bootstrap", "20")  # fmt: skip
    report = json.loads(out)
    assert report["warnings"][0] == "chol is 0 in every row (150): read as 'not measured'"
    assert report["does_not_rank"] is False
    for part in ("before_on_rest", "after_on_rest"):
        assert set(report[part]["intervals"]) == {
            "auc", "brier", "ece", "calibration_in_the_large", "calibration_intercept",
            "calibration_slope",
        }  # fmt: skip
    backwards = _heart_site(data_dir, tmp_path / "coded.csv", chol_zero=False, inverted=True)
    code, out = run_cli("risk", "validate", "--name", "cleveland", "--site", str(backwards),
                     "--bootstrap", "0", "--fraction", "0.4")  # fmt: skip
    assert code == 0, out
    text = " ".join(out.split())
    assert "Do not use The model does not rank patients at coded (calibration slope -" in text
    assert "Not recalibrated: The model does not rank patients at this site" in text
    assert "Recalibration chosen" not in text
