"""The PhysioNet/CinC Challenge 2012 ICU stays as longitudinal records.

A set is a folder of one ``<RecordID>.txt`` per stay (rows ``HH:MM,Parameter,Value``: the
descriptors Age, Gender, Height, ICUType, Weight at 00:00, then irregular observations of
37 variables over the first 48 h) and an ``Outcomes-<x>.txt`` beside it (``RecordID,SAPS-I,
SOFA,Length_of_stay,Survival,In-hospital_death``). The variables, their units, unit
conversions and plausible ranges are data (`progression_specs/physionet2012.json`).

Nothing is dropped silently: a row with an empty parameter name, ``-1`` (not recorded), an
implausible value, a stay without observations are counted in the cohort's `LoadReport`;
an unknown variable, a unit the spec does not know and a time going backwards are errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from clinsight.data.longitudinal import (
    RELATIVE_EPOCH,
    Code,
    Cohort,
    LoadReport,
    Measurement,
    PatientRecord,
    Visit,
)
from clinsight.data.plausibility import PlausibleRange, parse_range
from clinsight.errors import DataError, DataNotFoundError

__all__ = [
    "DESCRIPTOR_KEYS",
    "ICU_TYPES",
    "OUTCOME_KEYS",
    "SYSTEM",
    "ProgressionSpec",
    "VariableSpec",
    "load_physionet2012",
    "load_spec",
    "parse_stay_text",
    "physionet2012_set",
    "read_stay",
]

SYSTEM = "https://physionet.org/content/challenge-2012"
"""The code system of the challenge's variable names (``Code(SYSTEM, "HR")``)."""

DESCRIPTOR_KEYS = {
    "Age": "age", "Gender": "gender", "Height": "height", "ICUType": "icu_type",
    "Weight": "weight",
}  # fmt: skip
"""Descriptor name in the files → key in ``PatientRecord.static``."""

OUTCOME_KEYS = {
    "SAPS-I": "saps1", "SOFA": "sofa", "Length_of_stay": "length_of_stay",
    "Survival": "survival", "In-hospital_death": "in_hospital_death",
}  # fmt: skip
"""Column of the Outcomes file → key in ``PatientRecord.outcomes``."""

ICU_TYPES = {1: "coronary care", 2: "cardiac surgery recovery", 3: "medical", 4: "surgical"}
NOT_RECORDED = -1.0
WINDOW = timedelta(hours=48)


@dataclass(frozen=True)
class VariableSpec:
    """One variable: its canonical unit, the units it converts from, its plausible range."""

    name: str
    unit: str
    plausible: PlausibleRange
    convert: Mapping[str, tuple[float, float]]
    codes: tuple[str, ...] = ()
    transform: str | None = None
    """``log``: right-skewed; models read log(1 + value)."""

    def to_canonical(self, value: float, unit: str | None) -> float:
        """`value` in the canonical unit (``unit`` None or the canonical one: unchanged).

        Raises:
            DataError: the unit is neither the canonical unit nor one the spec converts.
        """
        if unit is None or unit == self.unit:
            return value
        if unit not in self.convert:
            known = ", ".join([self.unit, *self.convert])
            raise DataError(
                f"{self.name} is given in {unit!r}, a unit the variable spec does not know; "
                f"use one of: {known}."
            )
        factor, offset = self.convert[unit]
        return value * factor + offset


def _variable(name: str, entry: Mapping[str, Any]) -> VariableSpec:
    plausible = parse_range(name, entry.get("plausible"))
    if plausible is None:
        raise DataError(f"variable {name!r}: the spec gives no plausible range.")
    convert: dict[str, tuple[float, float]] = {}
    for unit, rule in dict(entry.get("convert", {})).items():
        if isinstance(rule, Mapping):
            convert[unit] = (float(rule["factor"]), float(rule.get("offset", 0.0)))
        else:
            convert[unit] = (float(rule), 0.0)
    transform = entry.get("transform")
    if transform not in (None, "log"):
        raise DataError(f"variable {name!r}: unknown transform {transform!r} (only 'log').")
    return VariableSpec(
        name, str(entry["unit"]), plausible, convert, tuple(entry.get("codes", ())), transform
    )


@dataclass(frozen=True)
class ProgressionSpec:
    """The descriptors and time-series variables a sequence source may hold."""

    name: str
    descriptors: Mapping[str, VariableSpec]
    variables: Mapping[str, VariableSpec]

    @property
    def variable_names(self) -> tuple[str, ...]:
        """Time-series variables in the spec's order (the order of the model's inputs)."""
        return tuple(self.variables)

    def variable(self, name: str) -> VariableSpec:
        """The spec of one time-series variable.

        Raises:
            DataError: the variable is not in the spec.
        """
        if name not in self.variables:
            raise DataError(
                f"unknown variable {name!r}: the {self.name} spec has {', '.join(self.variables)}."
            )
        return self.variables[name]

    def by_code(self) -> dict[str, str]:
        """``system|code`` (e.g. a LOINC code) → variable name."""
        return {code: spec.name for spec in self.variables.values() for code in spec.codes}


def load_spec(name: str = "physionet2012") -> ProgressionSpec:
    """The packaged variable spec ``progression_specs/<name>.json``.

    Raises:
        DataNotFoundError: no spec of that name is packaged.
    """
    folder = resources.files("clinsight.data") / "progression_specs"
    entry = folder / f"{name}.json"
    if not entry.is_file():
        raise DataNotFoundError(f"no variable spec named {name!r}.")
    raw = json.loads(entry.read_text(encoding="utf-8"))
    return ProgressionSpec(
        name=str(raw["name"]),
        descriptors={k: _variable(k, v) for k, v in raw["descriptors"].items()},
        variables={k: _variable(k, v) for k, v in raw["variables"].items()},
    )


def _minutes(text: str, where: str) -> int:
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or int(minutes) >= 60:
        raise DataError(f"{where}: time {text!r} is not HH:MM since ICU admission.")
    return int(hours) * 60 + int(minutes)


def _parse_stay(
    path: Path,
    spec: ProgressionSpec,
    report: LoadReport,
    outcomes: Mapping[str, float] | None = None,
) -> PatientRecord | None:
    """The stay in `path`, or None (counted in `report`) when it has no usable observation."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"stay {path.stem}: the file cannot be read as UTF-8 text.") from exc
    return _parse_lines(path.stem, text.splitlines(), spec, report, outcomes)


def _parse_lines(
    stay: str,
    lines: list[str],
    spec: ProgressionSpec,
    report: LoadReport,
    outcomes: Mapping[str, float] | None = None,
) -> PatientRecord | None:
    if not lines or lines[0].strip().lower() != "time,parameter,value":
        raise DataError(f"stay {stay}: the first line must be 'Time,Parameter,Value'.")
    static: dict[str, float] = {}
    measurements: list[Measurement] = []
    previous, seen = -1, set[str]()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        report.rows_read += 1
        where = f"stay {stay} line {number}"
        fields = line.split(",")
        if len(fields) != 3:
            report.skip("row without 3 fields", f"{where}: {line[:60]!r}")
            continue
        time_text, name, value_text = (f.strip() for f in fields)
        if not name:
            report.skip("row with an empty parameter name", f"{where}: {line[:60]!r}")
            continue
        try:
            value = float(value_text)
        except ValueError:
            report.skip("value that is not a number", f"{where}: {line[:60]!r}")
            continue
        minute = _minutes(time_text, where)
        if minute < previous:
            raise DataError(
                f"{where}: time {time_text} goes backwards (an earlier row is at "
                f"{previous // 60:02d}:{previous % 60:02d}); the rows must be in time order."
            )
        previous = minute
        if name == "RecordID":
            if value_text != stay:
                raise DataError(f"{where}: RecordID {value_text} differs from the file name.")
            continue
        if name in spec.descriptors and minute == 0 and name not in seen:
            seen.add(name)
            _descriptor(spec.descriptors[name], value, static, where, report)
            continue
        if name in spec.descriptors and name not in spec.variables:
            report.skip("descriptor repeated after the admission rows", f"{where}: {name}")
            continue
        variable = spec.variable(name)
        if not variable.plausible.contains(value):
            if value == NOT_RECORDED:
                report.skip("value -1 (not recorded)", f"{where}: {name}")
                continue
            shown = f"{value:g} {variable.unit}"
            report.skip(
                f"implausible {name}",
                f"{where}: {name} {shown} outside {variable.plausible.text(variable.unit)}",
            )
            continue
        time = RELATIVE_EPOCH + timedelta(minutes=minute)
        measurements.append(
            Measurement(Code(SYSTEM, name), time, value, variable.unit, visit_id=stay)
        )
    if not measurements:
        report.skip("stay with no time-series observation (excluded)", f"stay {stay}")
        return None
    gender = static.get("gender")
    icu = static.get("icu_type")
    visit = Visit(
        stay, RELATIVE_EPOCH, RELATIVE_EPOCH + WINDOW,
        kind=f"icu:{ICU_TYPES[int(icu)]}" if icu is not None else "icu",
    )  # fmt: skip
    return PatientRecord(
        patient_id=stay,
        sex=None if gender is None else ("male" if gender == 1 else "female"),
        visits=(visit,),
        measurements=tuple(measurements),
        static=static,
        outcomes=dict(outcomes or {}),
        relative_times=True,
    )


def _descriptor(
    spec: VariableSpec, value: float, static: dict[str, float], where: str, report: LoadReport
) -> None:
    key = DESCRIPTOR_KEYS.get(spec.name, spec.name)
    if value == NOT_RECORDED:
        report.skip(f"descriptor {spec.name} -1 (not recorded)")
    elif not spec.plausible.contains(value):
        report.skip(
            f"implausible descriptor {spec.name}",
            f"{where}: {value:g} {spec.unit} outside {spec.plausible.text(spec.unit)}",
        )
    else:
        static[key] = value


def read_stay(path: Path, spec: ProgressionSpec | None = None) -> tuple[PatientRecord, LoadReport]:
    """One stay file as a record, with the report of what was skipped in it.

    Raises:
        DataError: the file is malformed, names an unknown variable, goes back in time, or
            holds no usable time-series observation (nothing to predict from).
    """
    report = LoadReport(source=f"physionet2012 stay {path.stem}")
    record = _parse_stay(path, spec or load_spec(), report)
    if record is None:
        raise DataError(
            f"stay {path.stem} has no usable time-series observation in its first 48 h; "
            "there is nothing to predict from."
        )
    report.patients = 1
    return record, report


def parse_stay_text(
    text: str, stay: str, spec: ProgressionSpec | None = None
) -> tuple[PatientRecord, LoadReport]:
    """A stay given as the text of a ``<RecordID>.txt`` file (e.g. posted to the API).

    A ``RecordID`` row, if present, names the stay; `stay` otherwise.

    Raises:
        DataError: see `read_stay`.
    """
    lines = text.splitlines()
    for line in lines[1:]:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3 and fields[1] == "RecordID":
            stay = fields[2]
            break
    report = LoadReport(source=f"physionet2012 stay {stay}")
    record = _parse_lines(stay, lines, spec or load_spec(), report)
    if record is None:
        raise DataError(
            f"stay {stay} has no usable time-series observation in its first 48 h; "
            "there is nothing to predict from."
        )
    report.patients = 1
    return record, report


def _outcomes(path: Path) -> dict[str, dict[str, float]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [h.strip() for h in lines[0].split(",")] if lines else []
    if not header or header[0] != "RecordID" or not set(OUTCOME_KEYS) <= set(header):
        raise DataError(
            f"{path.name}: the header must be RecordID,{','.join(OUTCOME_KEYS)}; "
            f"got {','.join(header)}."
        )
    table: dict[str, dict[str, float]] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(header):
            raise DataError(f"{path.name} line {number}: expected {len(header)} fields.")
        row = dict(zip(header, fields, strict=True))
        values: dict[str, float] = {}
        for column, key in OUTCOME_KEYS.items():
            number_value = float(row[column])
            if number_value != NOT_RECORDED or key in ("survival",):
                values[key] = number_value
        table[row["RecordID"]] = values
    return table


def physionet2012_set(data_dir: Path, name: str) -> tuple[Path, Path]:
    """The folder and Outcomes file of set `name` (``a``, ``b``, ...) under `data_dir`.

    Raises:
        DataNotFoundError: the set's folder or Outcomes file is missing.
    """
    root = data_dir / "ehr" / "physionet2012"
    folder, outcomes = root / f"set-{name}", root / f"Outcomes-{name}.txt"
    if not folder.is_dir() or not outcomes.is_file():
        raise DataNotFoundError(
            f"PhysioNet 2012 set {name!r} is not in the data directory (expected "
            f"ehr/physionet2012/set-{name}/ and Outcomes-{name}.txt)."
        )
    return folder, outcomes


def load_physionet2012(
    folder: Path,
    outcomes: Path | None = None,
    *,
    spec: ProgressionSpec | None = None,
    record_ids: Iterable[str] | None = None,
) -> Cohort:
    """Every stay of a set (or those in `record_ids`) with its outcomes, as a `Cohort`.

    Stays without any usable observation are excluded and counted. With an Outcomes file,
    every stay must have an outcome row.

    Raises:
        DataNotFoundError: the folder holds no stay file.
        DataError: a file is malformed, names an unknown variable, goes back in time, or a
            stay has no outcome row.
    """
    spec = spec or load_spec()
    wanted = None if record_ids is None else set(record_ids)
    paths = sorted(p for p in folder.glob("*.txt") if wanted is None or p.stem in wanted)
    if not paths:
        raise DataNotFoundError(f"no stay files (<RecordID>.txt) in {folder.name}/.")
    table = _outcomes(outcomes) if outcomes is not None else {}
    report = LoadReport(source=f"physionet2012 {folder.name}")
    records: list[PatientRecord] = []
    for path in paths:
        if outcomes is not None and path.stem not in table:
            raise DataError(f"stay {path.stem} has no row in {outcomes.name}.")
        record = _parse_stay(path, spec, report, table.get(path.stem))
        if record is not None:
            records.append(record)
    report.patients = len(records)
    return Cohort(tuple(records), report)
