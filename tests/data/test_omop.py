from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from clinsight.data.longitudinal import Code, EventKind
from clinsight.data.omop import FREE_TEXT_ALLERGY, drug_classes, eunomia_url, load_omop
from clinsight.errors import DataError
from tests.support.omop import tiny_omop


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_omop(tmp_path_factory.mktemp("omop"))


def test_persons_visits_and_conditions(url: str) -> None:
    cohort = load_omop(url)
    one, two, three = cohort.records
    assert (one.patient_id, one.sex, one.birth_date) == ("1", "male", date(1970, 3, 4))
    assert (two.sex, two.birth_date, three.sex) == ("female", date(1980, 7, 1), None)
    assert [(v.visit_id, v.kind) for v in one.visits] == [("10", "Inpatient Visit")]
    condition = one.events_of(EventKind.CONDITION)[0]
    assert condition.code == Code("SNOMED", "36971009", "Sinusitis")
    assert condition.end == datetime(2019, 1, 20)
    assert cohort.report.skipped["condition not mapped to a concept (concept_id 0 or unknown)"] == 1


def test_drugs_map_to_ingredients_with_supply_and_refills(url: str) -> None:
    one, two, _ = load_omop(url).records
    drugs = one.events_of(EventKind.DRUG)
    assert sorted(e.code.code for e in drugs) == ["48203", "723"]
    assert {e.quantity for e in drugs} == {20.0}
    assert {e.end for e in drugs} == {datetime(2019, 1, 21)}
    assert [e.code.key() for e in two.events_of(EventKind.DRUG)] == ["RxNorm|11289", "CVX|10"]


def test_allergies_coded_by_substance_or_kept_as_text(url: str) -> None:
    one, two, three = load_omop(url).records
    assert [e.code for e in one.events_of(EventKind.ALLERGY)] == [
        Code("RxNorm", "11289", "Warfarin")
    ]
    (mold,) = two.events_of(EventKind.ALLERGY)
    assert (mold.code.system, mold.code.display) == (FREE_TEXT_ALLERGY, "Allergy to mold")
    assert [e.kind for e in three.events] == [EventKind.OBSERVATION]


def test_person_filter_and_no_classes(url: str) -> None:
    assert [r.patient_id for r in load_omop(url, person_ids=[2]).records] == ["2"]
    assert drug_classes(url) == {}


def test_not_an_omop_database(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).execute("create table person (id int)").close()
    with pytest.raises(DataError, match="not an OMOP CDM database: it lacks the table"):
        load_omop(f"duckdb:///{path}")
    with pytest.raises(DataError, match="not a SQLAlchemy URL"):
        load_omop("no url at all")


def test_eunomia_ships_in_the_package() -> None:
    assert eunomia_url().endswith("eunomia.duckdb")
    cohort = load_omop(eunomia_url(), person_ids=[1])
    assert cohort.records[0].sex == "male"
    assert cohort.records[0].events
