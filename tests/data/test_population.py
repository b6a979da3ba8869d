"""The validated population of a training table, and the check of one patient against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinsight.data.population import (
    AgeRange,
    ValidatedPopulation,
    parse_sex,
    population_of,
)
from clinsight.data.tabular import TaskSpec, load_csv, load_pima, load_uci_heart
from clinsight.errors import DataError
from clinsight.services.risk_training import subset_features, training_population


def test_pima_is_women_aged_21_to_81(data_dir: Path) -> None:
    population = training_population(load_pima(data_dir))
    assert population.describe() == "female, age 21–81"
    assert population.to_dict() == {
        "site": "Pima Indians diabetes (NIDDK; women of Pima heritage aged 21 or more)",
        "rows": 768, "description": "female, age 21–81",
        "age": {"min": 21.0, "max": 81.0, "p2_5": 21.0, "p97_5": 63.0}, "sex": {"female": 768},
    }  # fmt: skip
    kept = subset_features(load_pima(data_dir), ["Glucose", "BMI"])  # no age column left
    assert training_population(kept).describe() == "female"


def test_cleveland_holds_both_sexes_aged_29_to_77(data_dir: Path) -> None:
    population = training_population(load_uci_heart("cleveland", data_dir))
    assert population.describe() == "male and female, age 29–77"
    assert population.sexes == {"male": 206, "female": 97}
    assert population.age == AgeRange(29.0, 77.0, 37.0, 70.0)
    assert population.site == "UCI heart disease, cleveland"
    assert population.check(age=50.0, sex="female") is None
    assert population.check(age=None, sex=None) is None


def test_a_user_spec_names_its_age_and_sex_columns(tmp_path: Path) -> None:
    csv = tmp_path / "clinic.csv"
    csv.write_text("age,gender,y\n34,F,0\n61,M,1\n47,F,1\n")
    spec = {
        "target": "y", "positive": 1, "site": "Clinic A 2024",
        "features": {"age": "numeric", "gender": "categorical"},
        "age_column": "age", "sex_column": "gender", "sex_codes": {"F": "female", "M": "male"},
    }  # fmt: skip
    data = load_csv(csv, TaskSpec.from_mapping(spec))
    population = training_population(data)
    assert (population.site, population.rows) == ("Clinic A 2024", 3)
    assert population.describe() == "female and male, age 34–61"
    csv.write_text("age,gender,y\n34,F,0\n61,U,1\n")
    with pytest.raises(DataError, match=r"sex column 'gender' holds 'U', which sex_codes"):
        training_population(load_csv(csv, TaskSpec.from_mapping(spec)))
    with pytest.raises(DataError, match="population_sex 'women' is not one of"):
        population_of(data.X, site="x", age_column=None, sex_column=None, population_sex="women")


def test_outside_the_ages_or_sexes_is_a_warning_and_round_trips() -> None:
    population = ValidatedPopulation("Pima", 768, AgeRange(21, 81, 21, 63), {"female": 768})
    warning = population.check(age=10.0, sex="male")
    assert warning is not None
    assert warning.reasons == (
        "age 10 is outside the training ages 21–81",
        "sex male is not in the training population (female only)",
    )
    assert warning.to_dict()["code"] == "outside_validated_population"
    assert warning.message.startswith("Outside the validated population (female, age 21–81; Pima)")
    assert population.check(age=81.0, sex="female") is None
    assert population.check(age=82.0, sex="unknown") is not None
    assert population.check(age=30.0, sex="unknown") is None
    assert ValidatedPopulation.from_mapping(population.to_dict()) == population
    with pytest.raises(DataError, match="stored validated population is malformed"):
        ValidatedPopulation.from_mapping({"site": "x"})


def test_sex_words_and_codes() -> None:
    assert [parse_sex(v) for v in ("Female", "m", 1.0, 0, "unknown", None, "2")] == [
        "female", "male", "male", "female", None, None, None,
    ]  # fmt: skip
    assert parse_sex(1.0, {"1": "female", "2": "male"}) == "female"
