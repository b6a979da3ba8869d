"""A FHIR R4 Bundle of `Observation` resources as a PhysioNet-2012-style ICU stay.

Each Observation names a variable of the progression spec by a code the spec lists for it
(``system|code``, e.g. LOINC ``http://loinc.org|8867-4`` for heart rate), or by the spec's
own name (``code.coding`` of system `physionet2012.SYSTEM`, or ``code.text`` equal to the
name). Its ``valueQuantity`` is converted to the spec's unit (UCUM ``code``, else ``unit``);
its time is ``effectiveDateTime`` (or ``effectivePeriod.start``).

The stay starts at the ``period.start`` of an Encounter in the Bundle, else at the earliest
Observation; times are hours since then. A Patient in the Bundle gives sex and, with a
birth date, the age at the start; a height Observation (LOINC 8302-2) the height.

Like the file loader, nothing is dropped silently: an implausible value is excluded and
reported; an Observation of a variable the spec does not know, a unit it does not know, a
time before the stay's start (time going backwards), no value, and a Bundle without any
usable Observation are errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from clinsight.data.longitudinal import (
    RELATIVE_EPOCH,
    Code,
    LoadReport,
    Measurement,
    PatientRecord,
    Visit,
)
from clinsight.data.physionet2012 import (
    SYSTEM,
    WINDOW,
    ProgressionSpec,
    VariableSpec,
    load_spec,
)
from clinsight.errors import DataError

__all__ = ["FhirStay", "stay_from_bundle"]

_DESCRIPTOR_CODES = ("Height",)


@dataclass(frozen=True)
class FhirStay:
    """The stay read from a Bundle, the report of what was excluded, and the ids of the
    Observations the record holds (for the RiskAssessment's ``basis``)."""

    record: PatientRecord
    report: LoadReport
    observation_ids: tuple[str, ...]


def _time(text: Any, where: str) -> datetime:
    if not isinstance(text, str) or not text:
        raise DataError(f"{where} has no effectiveDateTime; each Observation needs its time.")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataError(f"{where}: time {text!r} is not an ISO 8601 date-time.") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _observed_at(resource: Mapping[str, Any], where: str) -> datetime:
    period = resource.get("effectivePeriod")
    text = resource.get("effectiveDateTime") or (
        period.get("start") if isinstance(period, Mapping) else None
    )
    return _time(text, where)


def _variable_name(
    resource: Mapping[str, Any], spec: ProgressionSpec, by_code: Mapping[str, str], where: str
) -> str:
    found = resource.get("code")
    code: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    codings = [c for c in code.get("coding") or [] if isinstance(c, Mapping)]
    named = set(spec.variables) | set(_DESCRIPTOR_CODES)
    for coding in codings:
        key = f"{coding.get('system', '')}|{coding.get('code', '')}"
        if key in by_code:
            return by_code[key]
        if coding.get("system") == SYSTEM and coding.get("code") in named:
            return str(coding["code"])
    text = code.get("text")
    if isinstance(text, str) and text in named:
        return text
    shown = ", ".join(f"{c.get('system', '?')}|{c.get('code', '?')}" for c in codings) or (
        repr(text) if text else "no code"
    )
    raise DataError(
        f"{where}: {shown} is not a variable of the {spec.name} spec; use a LOINC code it "
        f"lists or one of its names ({', '.join(spec.variables)})."
    )


def _quantity(resource: Mapping[str, Any], where: str) -> tuple[float, str | None]:
    quantity = resource.get("valueQuantity")
    if not isinstance(quantity, Mapping) or not isinstance(quantity.get("value"), int | float):
        raise DataError(f"{where} has no numeric valueQuantity.value.")
    unit = quantity.get("code") or quantity.get("unit")
    return float(quantity["value"]), None if unit is None else str(unit)


def _patient(entries: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    patients = [e for e in entries if e.get("resourceType") == "Patient"]
    return patients[0] if patients else None


def _admission(entries: list[Mapping[str, Any]]) -> datetime | None:
    for entry in entries:
        period = entry.get("period")
        if (
            entry.get("resourceType") == "Encounter"
            and isinstance(period, Mapping)
            and period.get("start")
        ):
            return _time(period["start"], f"Encounter {entry.get('id', '')}".strip())
    return None


def _resources(bundle: Any) -> list[Mapping[str, Any]]:
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise DataError("the body must be a FHIR Bundle (resourceType 'Bundle').")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise DataError("the Bundle's 'entry' must be a list.")
    return [
        e["resource"]
        for e in entries
        if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
    ]


def stay_from_bundle(bundle: Any, stay: str, spec: ProgressionSpec | None = None) -> FhirStay:
    """The ICU stay `stay` held by a FHIR Bundle's Observations (see the module).

    Raises:
        DataError: not a Bundle; an Observation without time or numeric value, of an
            unknown variable or unit, or before the stay's start; no usable Observation.
    """
    spec = spec or load_spec()
    resources = _resources(bundle)
    observations = [r for r in resources if r.get("resourceType") == "Observation"]
    if not observations:
        raise DataError(
            f"the Bundle holds no Observation; a risk needs the vital signs and laboratory "
            f"values of the stay ({spec.name} variables)."
        )
    by_code = spec.by_code() | {
        code: name for name in _DESCRIPTOR_CODES for code in spec.descriptors[name].codes
    }
    read: list[tuple[datetime, str, float, str]] = []
    for number, resource in enumerate(observations, start=1):
        where = f"Observation {resource.get('id') or f'#{number}'}"
        name = _variable_name(resource, spec, by_code, where)
        value, unit = _quantity(resource, where)
        variable: VariableSpec = (
            spec.descriptors[name] if name in _DESCRIPTOR_CODES else spec.variable(name)
        )
        read.append((_observed_at(resource, where), name, variable.to_canonical(value, unit),
                     str(resource.get("id") or "")))  # fmt: skip
    start = _admission(resources) or min(t for t, *_ in read)
    report = LoadReport(source=f"FHIR Bundle stay {stay}")
    static: dict[str, float] = {}
    measurements: list[Measurement] = []
    used: list[str] = []
    for moment, name, value, ident in sorted(read, key=lambda r: r[0]):
        report.rows_read += 1
        where = f"Observation {ident or name}"
        if moment < start:
            raise DataError(
                f"{where} at {moment.isoformat()} is before the stay's start "
                f"{start.isoformat()}: time goes backwards."
            )
        variable = spec.descriptors[name] if name in _DESCRIPTOR_CODES else spec.variables[name]
        if not variable.plausible.contains(value):
            report.skip(
                f"implausible {name}",
                f"{where}: {name} {value:g} {variable.unit} outside "
                f"{variable.plausible.text(variable.unit)}",
            )
            continue
        if name in _DESCRIPTOR_CODES:
            static.setdefault(name.lower(), value)
        else:
            offset = moment - start
            if offset >= WINDOW:
                report.skip("observation after the first 48 h", f"{where}")
                continue
            measurements.append(
                Measurement(
                    Code(SYSTEM, name), RELATIVE_EPOCH + offset, value, variable.unit, visit_id=stay
                )
            )
            if name == "Weight":
                static.setdefault("weight", value)
        if ident:
            used.append(ident)
    if not measurements:
        raise DataError(
            f"stay {stay} has no usable time-series observation in its first 48 h "
            f"({'; '.join(report.lines()) or 'none given'}); there is nothing to predict from."
        )
    sex: str | None = None
    patient = _patient(resources)
    if patient is not None:
        gender = patient.get("gender")
        sex = gender if gender in ("female", "male") else None
        if sex is not None:
            static["gender"] = 1.0 if sex == "male" else 0.0
        birth = patient.get("birthDate")
        if isinstance(birth, str):
            try:
                born = date.fromisoformat(birth[:10])
            except ValueError as exc:
                raise DataError(f"Patient birthDate {birth!r} is not a date.") from exc
            static["age"] = (start.date() - born).days / 365.25
    report.patients = 1
    record = PatientRecord(
        patient_id=stay, sex=sex, visits=(Visit(stay, RELATIVE_EPOCH, RELATIVE_EPOCH + WINDOW,
                                                kind="icu"),),
        measurements=tuple(measurements), static=static, relative_times=True,
    )  # fmt: skip
    return FhirStay(record, report, tuple(used))
