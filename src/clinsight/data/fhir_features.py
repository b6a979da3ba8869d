"""Declarative maps from a FHIR patient record to model features, with missing data reported.

A feature spec (JSON or YAML) names, for each model feature, where its value comes from::

    {"name": "pima-synthea", "features": {
       "Glucose": {"source": "observation", "codes": ["http://loinc.org|2339-0"],
                   "aggregate": "latest", "unit": "mg/dL", "convert": {"mmol/L": 18.016},
                   "max_age_days": 730},
       "Age": {"source": "patient", "field": "age"}}}

Sources: ``observation`` (by code), ``condition`` and ``medication`` (by code), ``patient``
(``age`` in years or ``sex``, optionally through ``map``). Aggregates: ``latest`` value,
``mean`` value, ``count``, ``exists`` (1/0), ``days_since`` the latest. Values in another
unit are converted with the ``convert`` factors (source unit → factor to the feature's unit);
a value whose unit cannot be converted, a too-old value or no value at all leaves the
feature missing with a reason. A rule may give the feature's ``plausible`` range (in its
unit, see `data.plausibility`): a value outside it is left missing and listed in
``ExtractedFeatures.implausible``, which an assessment refuses. Nothing is invented: the
model's own missing-value handling then applies, and the reasons travel with the assessment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from clinsight.data.fhir import FhirObservation, PatientRecord
from clinsight.data.plausibility import ImplausibleValue, PlausibleRange, parse_range
from clinsight.errors import DataError
from clinsight.files import read_mapping_file

__all__ = [
    "BUILTIN_SPECS",
    "ExtractedFeatures",
    "FeatureRule",
    "FhirFeatureSpec",
    "MissingFeature",
    "extract_features",
]

Source = Literal["observation", "condition", "medication", "patient"]
Aggregate = Literal["latest", "mean", "count", "exists", "days_since"]
_SOURCES = ("observation", "condition", "medication", "patient")
_AGGREGATES = ("latest", "mean", "count", "exists", "days_since")
BUILTIN_SPECS = ("pima-synthea", "gbsg2-fhir")
"""Feature specs shipped with Clinsight (``clinsight/data/fhir_specs/<name>.json``)."""


@dataclass(frozen=True)
class FeatureRule:
    """Where one model feature comes from in a FHIR record."""

    feature: str
    source: Source
    codes: tuple[str, ...] = ()
    aggregate: Aggregate = "latest"
    unit: str | None = None
    convert: dict[str, float] = field(default_factory=dict)
    max_age_days: float | None = None
    patient_field: Literal["age", "sex"] | None = None
    mapping: dict[str, float] = field(default_factory=dict)
    plausible: PlausibleRange | None = None


@dataclass(frozen=True)
class FhirFeatureSpec:
    """A named set of rules, with notes on what the source data can and cannot supply."""

    name: str
    rules: tuple[FeatureRule, ...]
    notes: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FhirFeatureSpec:
        """Build a spec from parsed JSON/YAML.

        Raises:
            DataError: a rule lacks its source or codes, names an unknown source,
                aggregate or patient field, or has a malformed plausible range.
        """
        features = data.get("features")
        if not isinstance(features, Mapping) or not features:
            raise DataError("feature spec needs 'features': a mapping of feature → rule.")
        rules = []
        for name, rule in features.items():
            if not isinstance(rule, Mapping) or rule.get("source") not in _SOURCES:
                raise DataError(f"feature spec {name!r}: 'source' must be one of {_SOURCES}.")
            aggregate = rule.get("aggregate", "latest")
            if aggregate not in _AGGREGATES:
                raise DataError(f"feature spec {name!r}: aggregate must be one of {_AGGREGATES}.")
            codes = tuple(str(c) for c in rule.get("codes", ()))
            patient_field = rule.get("field")
            if rule["source"] == "patient" and patient_field not in ("age", "sex"):
                raise DataError(f"feature spec {name!r}: a patient rule needs field age or sex.")
            if rule["source"] != "patient" and not codes:
                raise DataError(f"feature spec {name!r}: list the 'codes' that supply it.")
            convert = {str(k): float(v) for k, v in (rule.get("convert") or {}).items()}
            mapping = {str(k): float(v) for k, v in (rule.get("map") or {}).items()}
            args = (rule.get("unit"), convert, rule.get("max_age_days"), patient_field, mapping)
            plausible = parse_range(str(name), rule.get("plausible"))
            rules.append(FeatureRule(str(name), rule["source"], codes, aggregate, *args, plausible))
        notes = tuple(str(n) for n in data.get("notes", ()))
        return cls(str(data.get("name", "feature spec")), tuple(rules), notes)

    @classmethod
    def from_file(cls, path: Path) -> FhirFeatureSpec:
        """Read a spec from ``.json``, ``.yaml`` or ``.yml``.

        Raises:
            DataNotFoundError: the file does not exist.
            DataError: the file cannot be parsed or a rule is invalid.
        """
        return cls.from_mapping(read_mapping_file(path, "feature spec"))

    @classmethod
    def builtin(cls, name: str) -> FhirFeatureSpec:
        """A spec shipped with Clinsight (see `BUILTIN_SPECS`).

        Raises:
            DataError: no built-in spec has that name.
        """
        if name not in BUILTIN_SPECS:
            raise DataError(f"no built-in feature spec {name!r}; choose one of {BUILTIN_SPECS}.")
        folder = resources.files("clinsight.data").joinpath("fhir_specs")
        return cls.from_mapping(json.loads(folder.joinpath(f"{name}.json").read_text("utf-8")))


@dataclass(frozen=True)
class MissingFeature:
    """A feature the record could not supply, and why."""

    feature: str
    reason: str


@dataclass(frozen=True)
class ExtractedFeatures:
    """Feature values of one patient (None where missing), the reasons, the evidence, and
    the values left missing because they lie outside the rule's plausible range."""

    values: dict[str, float | str | None]
    missing: tuple[MissingFeature, ...]
    basis: dict[str, tuple[str, ...]]
    as_of: datetime
    implausible: tuple[ImplausibleValue, ...] = ()

    def frame(self) -> pd.DataFrame:
        """The values as a one-row DataFrame (missing as NaN), ready for a `RiskModel`."""
        return pd.DataFrame({k: [np.nan if v is None else v] for k, v in self.values.items()})

    @property
    def references(self) -> tuple[str, ...]:
        """Every resource a value was taken from, sorted and unique."""
        return tuple(sorted({ref for refs in self.basis.values() for ref in refs}))


def _converted(rule: FeatureRule, obs: FhirObservation) -> float:
    if not isinstance(obs.value, float):
        raise ValueError(f"{obs.reference} holds {obs.value!r}, not a number")
    if rule.unit is None or obs.unit == rule.unit:
        return obs.value
    if obs.unit in rule.convert:
        return obs.value * rule.convert[obs.unit]
    raise ValueError(
        f"{obs.reference} is in {obs.unit!r}, which is not convertible to {rule.unit!r}"
    )


def _from_observations(
    rule: FeatureRule, found: Sequence[FhirObservation], as_of: datetime
) -> tuple[float | str | None, str | None, tuple[str, ...]]:
    if rule.aggregate == "count":
        return float(len(found)), None, tuple(o.reference for o in found)
    if rule.aggregate == "exists":
        return float(bool(found)), None, tuple(o.reference for o in found[-1:])
    if not found:
        return None, f"no observation with code {' or '.join(rule.codes)}", ()
    latest = found[-1]
    if rule.aggregate == "days_since":
        when = latest.effective
        days = None if when is None else (as_of - when).total_seconds() / 86400
        return days, None if when else f"{latest.reference} has no time", (latest.reference,)
    try:
        if rule.aggregate == "mean":
            values = [_converted(rule, o) for o in found]
            return float(np.mean(values)), None, tuple(o.reference for o in found)
        if rule.mapping and isinstance(latest.value, str):
            if latest.value not in rule.mapping:
                return None, f"{latest.reference}: {latest.value!r} is not mapped", ()
            return rule.mapping[latest.value], None, (latest.reference,)
        return _converted(rule, latest), None, (latest.reference,)
    except ValueError as exc:
        return None, str(exc), ()


def _matching(record: PatientRecord, rule: FeatureRule, as_of: datetime) -> list[FhirObservation]:
    if rule.source == "observation":
        found = record.observations_of(rule.codes)
    else:
        items = record.conditions if rule.source == "condition" else record.medications
        wanted = set(rule.codes)
        found = [
            FhirObservation(i.reference, i.system, i.code, i.display, None, None, i.start)
            for i in sorted(items, key=lambda i: i.start or datetime.min.replace(tzinfo=UTC))
            if i.code in wanted or f"{i.system}|{i.code}" in wanted
        ]
    found = [o for o in found if o.effective is None or o.effective <= as_of]
    if rule.max_age_days is not None:
        limit = float(rule.max_age_days) * 86400
        found = [
            o
            for o in found
            if o.effective is not None and (as_of - o.effective).total_seconds() <= limit
        ]
    return found


def _rule_value(
    record: PatientRecord, rule: FeatureRule, as_of: datetime
) -> tuple[float | str | None, str | None, tuple[str, ...]]:
    if rule.source == "patient":
        if rule.patient_field == "age":
            age = record.age_at(as_of)
            return age, None if age is not None else "the Patient has no birthDate", ()
        if record.sex is None:
            return None, "the Patient has no gender", ()
        if rule.mapping and record.sex not in rule.mapping:
            return None, f"gender {record.sex!r} is not mapped for this model", ()
        return (rule.mapping.get(record.sex, record.sex) if rule.mapping else record.sex), None, ()
    found = _matching(record, rule, as_of)
    value, reason, basis = _from_observations(rule, found, as_of)
    if value is None and reason and rule.max_age_days is not None and not found:
        reason += f" in the last {rule.max_age_days:g} days"
    return value, reason, basis


def extract_features(
    record: PatientRecord,
    spec: FhirFeatureSpec,
    feature_names: Sequence[str] | None = None,
    *,
    as_of: datetime | None = None,
) -> ExtractedFeatures:
    """The features of `record` per `spec` at `as_of` (default: now), in `feature_names`
    order (default: the spec's); a model feature without a rule is reported missing.
    """
    when = as_of or datetime.now(UTC)
    rules = {r.feature: r for r in spec.rules}
    names = list(feature_names) if feature_names is not None else list(rules)
    values: dict[str, float | str | None] = {}
    missing: list[MissingFeature] = []
    basis: dict[str, tuple[str, ...]] = {}
    implausible: list[ImplausibleValue] = []
    for name in names:
        if name not in rules:
            values[name] = None
            missing.append(MissingFeature(name, f"feature spec {spec.name!r} has no rule for it"))
            continue
        rule = rules[name]
        value, reason, used = _rule_value(record, rule, when)
        limits = rule.plausible
        if isinstance(value, float) and limits is not None and not limits.contains(value):
            where = ", ".join(used) or record.reference
            implausible.append(ImplausibleValue(name, value, rule.unit, limits, where))
            value, reason = None, implausible[-1].message
        values[name] = value
        if value is None:
            missing.append(MissingFeature(name, reason or "no value"))
        if used:
            basis[name] = used
    return ExtractedFeatures(values, tuple(missing), basis, when, tuple(implausible))
