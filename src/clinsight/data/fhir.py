"""FHIR R4 in: a Bundle parsed with fhir.resources (R4B models) into a typed patient record.

The record keeps what risk models use: demographics, conditions (SNOMED CT), observations
with their LOINC code, value and unit (blood-pressure-style panels become one observation
per component, still pointing at the panel's id), and medication requests (RxNorm); and, for
the longitudinal record (`data.fhir_longitudinal`), encounters, procedures and allergies.
Every item keeps the reference (``Observation/<id>``) that a `RiskAssessment.basis` can
cite, and the encounter it belongs to where the resource names one. Feature extraction from
a record lives in `clinsight.data.fhir_features`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from clinsight.errors import DataError, DataNotFoundError

__all__ = [
    "LOINC",
    "CodedItem",
    "FhirObservation",
    "PatientRecord",
    "parse_bundle",
    "read_bundle",
]

LOINC = "http://loinc.org"


@dataclass(frozen=True)
class FhirObservation:
    """One measured value: LOINC (or other) code, number or coded text, unit, time, source."""

    reference: str
    system: str | None
    code: str
    display: str
    value: float | str | None
    unit: str | None
    effective: datetime | None


@dataclass(frozen=True)
class CodedItem:
    """A condition or a medication request: its code, what it is called, when, its status."""

    reference: str
    system: str | None
    code: str
    display: str
    start: datetime | None
    end: datetime | None
    status: str | None
    encounter: str | None = None
    """``Encounter/<id>`` the resource belongs to, where it names one."""


@dataclass(frozen=True)
class PatientRecord:
    """A patient as read from a FHIR Bundle (no free text beyond coded displays)."""

    patient_id: str
    birth_date: date | None
    sex: str | None
    deceased: datetime | None
    conditions: tuple[CodedItem, ...]
    observations: tuple[FhirObservation, ...]
    medications: tuple[CodedItem, ...]
    source_sha256: str
    encounters: tuple[CodedItem, ...] = ()
    """Encounters: the type code, the period, and the class (AMB, IMP, EMER ...) as status."""
    procedures: tuple[CodedItem, ...] = ()
    allergies: tuple[CodedItem, ...] = ()
    """AllergyIntolerance: the substance code (or only its text), onset or recorded date."""

    @property
    def reference(self) -> str:
        """``Patient/<id>``, the subject of resources about this patient."""
        return f"Patient/{self.patient_id}"

    def age_at(self, when: datetime) -> float | None:
        """Age in years at `when`, or at death if that came first (None without a birth date)."""
        if self.birth_date is None:
            return None
        if self.deceased is not None and self.deceased < when:
            when = self.deceased
        return (when.date() - self.birth_date).days / 365.25

    def observations_of(self, codes: Iterable[str]) -> list[FhirObservation]:
        """Observations with one of `codes` (``code`` or ``system|code``), oldest first."""
        wanted = set(codes)
        found = [
            o for o in self.observations if o.code in wanted or f"{o.system}|{o.code}" in wanted
        ]
        return sorted(found, key=lambda o: o.effective or datetime.min.replace(tzinfo=UTC))


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _coding(concept: Any) -> tuple[str | None, str, str]:
    if concept is None or not concept.coding:
        return None, "", getattr(concept, "text", None) or ""
    first = concept.coding[0]
    return first.system, str(first.code or ""), first.display or concept.text or ""


def _quantity(value: Any) -> tuple[float | str | None, str | None]:
    if value is None:
        return None, None
    return (float(value.value) if value.value is not None else None), value.code or value.unit


def _observations(resource: Any) -> list[FhirObservation]:
    reference = f"Observation/{resource.id}"
    when = _when(resource.effectiveDateTime) or _when(getattr(resource, "issued", None))
    parts = [(resource.code, resource)] + [(c.code, c) for c in resource.component or []]
    found = []
    for concept, holder in parts:
        system, code, display = _coding(concept)
        if holder.valueQuantity is not None:
            value, unit = _quantity(holder.valueQuantity)
        elif holder.valueCodeableConcept is not None:
            value, unit = _coding(holder.valueCodeableConcept)[2] or None, None
        elif getattr(holder, "valueString", None) is not None:
            value, unit = holder.valueString, None
        else:
            continue
        found.append(FhirObservation(reference, system, code, display, value, unit, when))
    return found


def _encounter_of(resource: Any) -> str | None:
    reference = getattr(resource, "encounter", None)
    return None if reference is None else reference.reference


def _condition(resource: Any) -> CodedItem:
    system, code, display = _coding(resource.code)
    status = _coding(resource.clinicalStatus)[1] or None
    start = _when(resource.onsetDateTime) or _when(resource.recordedDate)
    end = _when(resource.abatementDateTime)
    return CodedItem(f"Condition/{resource.id}", system, code, display, start, end, status,
                     _encounter_of(resource))  # fmt: skip


def _medication(resource: Any) -> CodedItem:
    system, code, display = _coding(resource.medicationCodeableConcept)
    start = _when(resource.authoredOn)
    return CodedItem(f"MedicationRequest/{resource.id}", system, code, display, start, None,
                     resource.status, _encounter_of(resource))  # fmt: skip


def _encounter(resource: Any) -> CodedItem:
    system, code, display = _coding(resource.type[0] if resource.type else None)
    period = resource.period
    start, end = (_when(period.start), _when(period.end)) if period else (None, None)
    kind = getattr(resource, "class_fhir", None) or getattr(resource, "class", None)
    return CodedItem(f"Encounter/{resource.id}", system, code, display, start, end,
                     getattr(kind, "code", None))  # fmt: skip


def _procedure(resource: Any) -> CodedItem:
    system, code, display = _coding(resource.code)
    period = getattr(resource, "performedPeriod", None)
    start = _when(getattr(resource, "performedDateTime", None)) or (
        _when(period.start) if period else None
    )
    return CodedItem(f"Procedure/{resource.id}", system, code, display, start, None,
                     resource.status, _encounter_of(resource))  # fmt: skip


def _allergy(resource: Any) -> CodedItem:
    system, code, display = _coding(resource.code)
    start = _when(resource.onsetDateTime) or _when(resource.recordedDate)
    status = _coding(resource.clinicalStatus)[1] or None
    return CodedItem(f"AllergyIntolerance/{resource.id}", system, code, display, start, None,
                     status, _encounter_of(resource))  # fmt: skip


def parse_bundle(content: bytes | str, *, source: str = "bundle") -> PatientRecord:
    """Parse a FHIR R4 Bundle holding one Patient into a `PatientRecord`.

    Raises:
        DataError: the content is not a valid FHIR Bundle, or it holds no Patient or more
            than one (the message names `source`).
    """
    raw = content.encode("utf-8") if isinstance(content, str) else content
    try:
        bundle = Bundle.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0:3]
        raise DataError(f"{source} is not a valid FHIR R4 Bundle: {' '.join(first)}") from exc
    resources: list[Any] = [e.resource for e in bundle.entry or [] if e.resource is not None]
    patients = [r for r in resources if r.get_resource_type() == "Patient"]
    if len(patients) != 1:
        raise DataError(
            f"{source} holds {len(patients)} Patient resources; a patient bundle needs exactly one."
        )
    patient: Any = patients[0]
    conditions, observations, medications = [], [], []
    encounters, procedures, allergies = [], [], []
    for resource in resources:
        kind = resource.get_resource_type()
        if kind == "Observation":
            observations.extend(_observations(resource))
        elif kind == "Condition":
            conditions.append(_condition(resource))
        elif kind == "MedicationRequest" and resource.medicationCodeableConcept is not None:
            medications.append(_medication(resource))
        elif kind == "Encounter":
            encounters.append(_encounter(resource))
        elif kind == "Procedure":
            procedures.append(_procedure(resource))
        elif kind == "AllergyIntolerance":
            allergies.append(_allergy(resource))
    return PatientRecord(
        patient_id=str(patient.id),
        birth_date=patient.birthDate,
        sex=patient.gender,
        deceased=_when(patient.deceasedDateTime),
        conditions=tuple(conditions),
        observations=tuple(observations),
        medications=tuple(medications),
        source_sha256=hashlib.sha256(raw).hexdigest(),
        encounters=tuple(encounters),
        procedures=tuple(procedures),
        allergies=tuple(allergies),
    )


def read_bundle(path: Path) -> PatientRecord:
    """Read and parse a patient Bundle file (JSON).

    Raises:
        DataNotFoundError: the file does not exist.
        DataError: the file is not a patient Bundle (see `parse_bundle`).
    """
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; pass a FHIR Bundle JSON file.")
    return parse_bundle(path.read_bytes(), source=str(path))
