"""A tiny OMOP CDM database in a DuckDB file: three persons, sinusitis treated with
amoxicillin (a combination product with clavulanate), warfarin, a coded and a free-text
allergy."""

from __future__ import annotations

from pathlib import Path

__all__ = ["tiny_omop"]

_TABLES = """
create table person (person_id bigint, gender_concept_id bigint, year_of_birth bigint,
    month_of_birth bigint, day_of_birth bigint);
create table visit_occurrence (visit_occurrence_id bigint, person_id bigint,
    visit_concept_id bigint, visit_start_date date, visit_end_date date);
create table condition_occurrence (person_id bigint, condition_concept_id bigint,
    condition_start_date date, condition_end_date date, visit_occurrence_id bigint);
create table drug_exposure (person_id bigint, drug_concept_id bigint,
    drug_exposure_start_date date, drug_exposure_end_date date, days_supply bigint,
    refills bigint, visit_occurrence_id bigint);
create table observation (person_id bigint, observation_concept_id bigint,
    observation_date date, value_as_concept_id bigint, value_as_string varchar,
    visit_occurrence_id bigint);
create table concept (concept_id bigint, concept_name varchar, domain_id varchar,
    vocabulary_id varchar, concept_class_id varchar, standard_concept varchar,
    concept_code varchar);
create table concept_ancestor (ancestor_concept_id bigint, descendant_concept_id bigint);
"""
_ROWS = """
insert into concept values
 (9201, 'Inpatient Visit', 'Visit', 'Visit', 'Visit', 'S', 'IP'),
 (257012, 'Sinusitis', 'Condition', 'SNOMED', 'Clinical Finding', 'S', '36971009'),
 (1713332, 'Amoxicillin', 'Drug', 'RxNorm', 'Ingredient', 'S', '723'),
 (1759842, 'Clavulanate', 'Drug', 'RxNorm', 'Ingredient', 'S', '48203'),
 (1713671, 'Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet', 'Drug', 'RxNorm',
  'Clinical Drug', 'S', '562251'),
 (1310149, 'Warfarin', 'Drug', 'RxNorm', 'Ingredient', 'S', '11289'),
 (40213160, 'poliovirus vaccine', 'Drug', 'CVX', 'CVX', 'S', '10'),
 (439224, 'Allergy to drug', 'Observation', 'SNOMED', 'Clinical Finding', 'S', '416098002'),
 (4304110, 'Allergy to mold', 'Observation', 'SNOMED', 'Clinical Finding', 'S', '419474003'),
 (4275495, 'Tobacco smoking', 'Observation', 'SNOMED', 'Clinical Finding', 'S', '365981007');
insert into concept_ancestor values (1713332, 1713671), (1759842, 1713671),
 (1713332, 1713332), (1310149, 1310149);
insert into person values (1, 8507, 1970, 3, 4), (2, 8532, 1980, null, null),
 (3, 0, 1990, 1, 1);
insert into visit_occurrence values (10, 1, 9201, '2019-01-01', '2019-01-03');
insert into condition_occurrence values
 (1, 257012, '2019-01-01', '2019-01-20', 10), (2, 257012, '2018-05-01', null, null),
 (3, 0, '2018-05-01', null, null);
insert into drug_exposure values
 (1, 1713671, '2019-01-01', null, 10, 1, 10), (2, 1310149, '2018-06-01', '2018-07-01', 30, 0, null),
 (2, 40213160, '2018-06-02', '2018-06-02', 1, 0, null);
insert into observation values
 (1, 439224, '2018-01-01', 1310149, null, null), (2, 4304110, '2018-01-01', 0, null, null),
 (3, 4275495, '2018-01-01', 0, null, null);
"""


def tiny_omop(folder: Path) -> str:
    """Write the tiny database in `folder`; return its SQLAlchemy URL."""
    import duckdb

    path = folder / "tiny_cdm.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute(_TABLES)
    connection.execute(_ROWS)
    connection.close()
    return f"duckdb:///{path}"
