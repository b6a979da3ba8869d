"""Tabular risk datasets: task specs, typed loaders and row-and-column input checks.

Built-in tasks: Wisconsin diagnostic breast cancer (shipped with scikit-learn; the
embedded default), UCI heart disease (Cleveland and any other site file in the same
format) and Pima diabetes, read from ``<data_dir>/tabular``. Any other CSV is loaded
with a small task spec (JSON or YAML) naming the target, its positive value, the
feature types, units and (optionally) plausible ranges. Every loader returns a
`TabularDataset` with the source's sha256, and bad input raises `DataError` naming the row
and the column. A value outside its feature's plausible range (`data.plausibility`) is read
as missing and reported in ``TabularDataset.plausibility``, as is a column that is 0 in
every row (a site coding "not measured" as 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clinsight.config import get_settings
from clinsight.data.plausibility import (
    ImplausibleValue,
    PlausibilityReport,
    PlausibleRange,
    parse_range,
    short_unit,
)
from clinsight.errors import DataError, DataNotFoundError
from clinsight.files import read_mapping_file, sha256_file

__all__ = [
    "DATASETS", "MISSING_TOKENS", "PIMA_RANGES", "FeatureSpec", "FeatureType", "TabularDataset",
    "TaskSpec", "check_plausibility", "coerce_features", "input_errors", "load_breast_cancer",
    "load_csv",
    "load_dataset", "load_pima", "load_uci_heart", "uci_heart_sites",
]  # fmt: skip

MISSING_TOKENS = frozenset({"", "?", "na", "n/a", "nan", "null", "none"})
"""Cell texts read as a missing value (compared case-insensitively)."""

_INTEGRAL_TEXT = re.compile(r"^[+-]?\d+\.0*$")


class FeatureType(StrEnum):
    """How a feature is encoded by the pipeline."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BINARY = "binary"


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its type, unit, (categorical) allowed values and (numeric) the
    plausible range (None: not checked)."""

    name: str
    type: FeatureType
    unit: str | None = None
    categories: tuple[str, ...] | None = None
    zero_is_missing: bool = False
    plausible: PlausibleRange | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A binary risk task: which column is the outcome, which value is positive, the inputs."""

    name: str
    target: str
    positive: str
    positive_label: str
    features: tuple[FeatureSpec, ...]
    sex_column: str | None = None
    age_column: str | None = None
    sex_codes: dict[str, str] | None = None
    population_sex: str | None = None
    site: str | None = None

    @property
    def feature_names(self) -> list[str]:
        """Input column names, in model order."""
        return [f.name for f in self.features]

    @property
    def feature_types(self) -> dict[str, FeatureType]:
        """Feature name → type."""
        return {f.name: f.type for f in self.features}

    @property
    def units(self) -> dict[str, str | None]:
        """Feature name → unit (None where unitless or unknown)."""
        return {f.name: f.unit for f in self.features}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Build a spec from parsed JSON/YAML (``features`` maps name → type or details:
        ``type``, ``unit``, ``categories``, ``zero_is_missing``, ``plausible``). Optional
        population keys (`data.population`): ``age_column``, ``sex_column``, ``sex_codes``
        (column value → female/male/other; default 0 female, 1 male), ``population_sex``
        (the one sex of every row when there is no sex column) and ``site``.

        Raises:
            DataError: a required key is missing, a feature type is unknown, or a plausible
                range is malformed or given for a non-numeric feature (the feature named).
        """
        for key in ("target", "positive", "features"):
            if key not in data:
                raise DataError(f"task spec lacks {key!r}; it needs target, positive, features.")
        if not isinstance(data["features"], Mapping) or not data["features"]:
            raise DataError(
                "task spec 'features' must map each feature name to its type, e.g. "
                '{"Glucose": "numeric", "Sex": "binary"}; '
                f"types: {[t.value for t in FeatureType]}."
            )
        features = []
        for name, detail in data["features"].items():
            entry = {"type": detail} if isinstance(detail, str) else dict(detail)
            try:
                kind = FeatureType(str(entry.get("type", "")).lower())
            except ValueError:
                raise DataError(
                    f"task spec feature {name!r}: type {entry.get('type')!r} is not one of "
                    f"{[t.value for t in FeatureType]}."
                ) from None
            cats = entry.get("categories")
            cats = tuple(_category_label(c) for c in cats) if cats else None
            zeros = bool(entry.get("zero_is_missing", False))
            plausible = parse_range(str(name), entry.get("plausible"))
            if plausible is not None and kind is not FeatureType.NUMERIC:
                raise DataError(
                    f"feature {name!r}: a plausible range needs a numeric feature, not {kind}."
                )
            unit = entry.get("unit")
            features.append(FeatureSpec(str(name), kind, unit, cats, zeros, plausible))
        positive, target = _category_label(data["positive"]), str(data["target"])
        label = str(data.get("positive_label", positive))
        name = str(data.get("name", target))
        sex, age = data.get("sex_column"), data.get("age_column")
        codes = data.get("sex_codes")
        codes = {_category_label(k): str(v).lower() for k, v in codes.items()} if codes else None
        return cls(
            name, target, positive, label, tuple(features), sex, age, codes,
            data.get("population_sex"), data.get("site"),
        )  # fmt: skip

    @classmethod
    def from_file(cls, path: Path) -> TaskSpec:
        """Read a spec from a ``.json``, ``.yaml`` or ``.yml`` file.

        Raises:
            DataNotFoundError: the file does not exist.
            DataError: the file cannot be parsed or lacks a required key.
        """
        return cls.from_mapping(read_mapping_file(path, "task spec"))


@dataclass(frozen=True)
class TabularDataset:
    """Typed features, a 0/1 outcome (1 = ``spec.positive_label``), and where they came from."""

    X: pd.DataFrame
    y: pd.Series
    spec: TaskSpec
    sha256: str
    source: str
    notes: tuple[str, ...] = field(default=())
    plausibility: PlausibilityReport = field(default_factory=PlausibilityReport)

    @property
    def feature_types(self) -> dict[str, FeatureType]:
        """Feature name → type."""
        return self.spec.feature_types

    @property
    def units(self) -> dict[str, str | None]:
        """Feature name → unit."""
        return self.spec.units


def _category_label(value: object) -> str:
    """Canonical text of a category: integral numbers lose their ``.0``."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float | np.number) and math.isfinite(float(value)):
        number = float(value)
        return str(int(number)) if number.is_integer() else str(number)
    text = str(value).strip()
    return text.split(".")[0] if _INTEGRAL_TEXT.match(text) else text


def _is_missing(series: pd.Series) -> pd.Series:
    text = series.astype(object).map(lambda v: "" if v is None else str(v).strip().lower())
    return series.isna() | text.isin(MISSING_TOKENS)


def _row_name(frame: pd.DataFrame, position: int, first_line: int | None) -> str:
    if first_line is None:
        return f"row {frame.index[position]!r}"
    return f"row {position + 1} (line {position + first_line})"


def coerce_features(
    frame: pd.DataFrame, spec: TaskSpec, *, first_line: int | None = None
) -> pd.DataFrame:
    """Check and type the spec's feature columns: floats for numeric/binary, text for categories.

    ``first_line`` is the file line of the first data row (rows are then named by line);
    without it rows are named by their index label, as at prediction time.

    Raises:
        DataError: a feature column is absent, a numeric cell is not a number, a binary
            cell is not 0/1, or a category is not among the spec's categories.
    """
    missing_cols = [name for name in spec.feature_names if name not in frame.columns]
    if missing_cols:
        raise DataError(
            f"column {missing_cols[0]!r} is missing (task {spec.name!r} needs "
            f"{missing_cols}); columns found: {list(frame.columns)}."
        )
    out: dict[str, pd.Series] = {}
    for feat in spec.features:
        raw = frame[feat.name]
        missing = _is_missing(raw)
        if feat.type is FeatureType.CATEGORICAL:
            labels = raw.map(_category_label).astype(object).where(~missing, np.nan)
            if feat.categories is not None:
                unknown = ~missing & ~labels.isin(feat.categories)
                if unknown.any():
                    pos = int(np.flatnonzero(unknown.to_numpy())[0])
                    raise DataError(
                        f"{_row_name(frame, pos, first_line)}, column {feat.name!r}: unknown "
                        f"category {labels.iloc[pos]!r}; expected one of {list(feat.categories)}."
                    )
            out[feat.name] = labels
            continue
        numbers = pd.to_numeric(raw.where(~missing, np.nan), errors="coerce").astype(float)
        bad = ~missing & numbers.isna()
        if feat.type is FeatureType.BINARY:
            bad |= numbers.notna() & ~numbers.isin([0.0, 1.0])
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            expected = "0 or 1" if feat.type is FeatureType.BINARY else "a number"
            raise DataError(
                f"{_row_name(frame, pos, first_line)}, column {feat.name!r}: "
                f"{raw.iloc[pos]!r} is not {expected}; correct it or leave the cell empty."
            )
        if feat.zero_is_missing:
            numbers = numbers.mask(numbers == 0.0)
        out[feat.name] = numbers
    return pd.DataFrame(out, index=frame.index)


def input_errors(values: Mapping[str, Any], spec: TaskSpec) -> dict[str, str]:
    """Feature → message, in words, for each given value its feature cannot take (one
    patient's inputs: a form or an API body); empty when every value is valid or missing,
    e.g. ``Glucose must be a number (mg/dL); 'high' was entered``."""
    errors: dict[str, str] = {}
    for feat in spec.features:
        value = values.get(feat.name)
        if value is None or _is_missing(pd.Series([value], dtype=object)).iloc[0]:
            continue
        unit = f" ({short_unit(feat.unit)})" if feat.unit else ""
        if feat.type is FeatureType.CATEGORICAL:
            if feat.categories is not None and _category_label(value) not in feat.categories:
                errors[feat.name] = (
                    f"{feat.name} must be one of {', '.join(feat.categories)}; "
                    f"{str(value)!r} was entered"
                )
            continue
        number = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").iloc[0]
        if pd.isna(number):
            expected = "0 or 1" if feat.type is FeatureType.BINARY else "a number"
            errors[feat.name] = f"{feat.name} must be {expected}{unit}; {str(value)!r} was entered"
        elif feat.type is FeatureType.BINARY and float(number) not in (0.0, 1.0):
            errors[feat.name] = f"{feat.name} must be 0 or 1{unit}; {str(value)!r} was entered"
    return errors


def check_plausibility(
    raw: pd.DataFrame, typed: pd.DataFrame, spec: TaskSpec, *, first_line: int | None = None
) -> tuple[pd.DataFrame, PlausibilityReport]:
    """`typed` (from `coerce_features` on `raw`) with implausible values set missing, and the
    report: each such value by row and feature, and numeric columns that are 0 in every row
    that has a value (``first_line`` as in `coerce_features`)."""
    found: list[ImplausibleValue] = []
    zero_columns: list[str] = []
    kept: list[str] = []
    out = typed.copy()
    for feat in spec.features:
        if feat.type is not FeatureType.NUMERIC:
            continue
        column = raw[feat.name]
        given = pd.to_numeric(column.where(~_is_missing(column), np.nan), errors="coerce")
        if given.notna().any() and (given.dropna() == 0.0).all():
            zero_columns.append(feat.name)
        limits = feat.plausible
        values = out[feat.name].astype(float)
        if limits is not None:
            outside = values.notna() & ~values.between(limits.low, limits.high)
            for pos in np.flatnonzero(outside.to_numpy()):
                row = _row_name(typed, int(pos), first_line)
                found.append(ImplausibleValue(feat.name, float(values.iloc[pos]), feat.unit,
                                              limits, row))  # fmt: skip
            out[feat.name] = values = values.mask(outside)
        if zero_columns[-1:] == [feat.name] and values.notna().any():
            kept.append(feat.name)
    report = PlausibilityReport(
        tuple(found), tuple(zero_columns), len(typed), zero_kept=tuple(kept)
    )
    return out, report


def _build(
    raw: pd.DataFrame, spec: TaskSpec, source: str, sha256: str, first_line: int
) -> TabularDataset:
    if raw.empty:
        raise DataError(f"{source} has no data rows; add at least one row under the header.")
    if spec.target not in raw.columns:
        raise DataError(
            f"target column {spec.target!r} is missing from {source}; "
            f"columns found: {list(raw.columns)}."
        )
    typed = coerce_features(raw, spec, first_line=first_line)
    features, report = check_plausibility(raw, typed, spec, first_line=first_line)
    target = raw[spec.target]
    missing = _is_missing(target)
    if missing.any():
        pos = int(np.flatnonzero(missing.to_numpy())[0])
        raise DataError(
            f"{_row_name(raw, pos, first_line)}, column {spec.target!r}: the target is "
            "missing; drop the row or fill in the outcome."
        )
    y = (target.map(_category_label) == spec.positive).astype(int).rename(spec.target)
    zeroed = tuple(f.name for f in spec.features if f.zero_is_missing)
    notes = (f"zeros read as missing in {list(zeroed)}",) if zeroed else ()
    return TabularDataset(
        X=features, y=y, spec=spec, sha256=sha256, source=source,
        notes=notes + report.lines(), plausibility=report,
    )  # fmt: skip


def _read_csv(
    path: Path,
    *,
    header: bool = True,
    names: list[str] | None = None,
    missing_hint: str = "place the file in the data directory",
) -> pd.DataFrame:
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; {missing_hint}.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header row and data rows.")
    try:
        return pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True,
            header=0 if header else None, names=names,
        )  # fmt: skip
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as CSV: {exc}") from exc


def load_csv(path: Path, spec: TaskSpec) -> TabularDataset:
    """Load a user CSV (header row first) as the task the spec describes.

    Raises:
        DataNotFoundError: the file does not exist.
        DataError: the file is empty or unreadable, the target column is absent, or a cell
            is invalid (the message names its row, file line and column).
    """
    raw = _read_csv(path, missing_hint="check the path and the folder you run from")
    return _build(raw, spec, str(path), sha256_file(path), first_line=2)


def _tabular_dir(data_dir: Path | None, sub: str) -> Path:
    base = data_dir if data_dir is not None else get_settings().resolved_data_dir
    return base / "tabular" / sub


def load_breast_cancer() -> TabularDataset:
    """Wisconsin diagnostic breast cancer, 569 x 30; positive class = malignant.

    scikit-learn codes malignant as 0; here ``y == 1`` means malignant.
    """
    from sklearn.datasets import load_breast_cancer as sk_load

    bunch = sk_load(as_frame=True)
    frame = bunch.frame.astype(object)
    frame["diagnosis"] = np.where(bunch.target.to_numpy() == 0, "malignant", "benign")
    names = [str(c) for c in bunch.feature_names]
    features = tuple(FeatureSpec(n, FeatureType.NUMERIC) for n in names)
    spec = TaskSpec("wdbc", "diagnosis", "malignant", "malignant", features)
    csv = Path(str(resources.files("sklearn.datasets.data").joinpath("breast_cancer.csv")))
    return _build(frame, spec, "sklearn:breast_cancer.csv", sha256_file(csv), first_line=2)


# Plausible ranges: wide limits of a living patient's value from clinical knowledge, never
# fitted to a file (each source is recorded with the range and in the model card).
_AGE = PlausibleRange(0, 125, "age of the oldest verified human (122 years)")
_R = {
    "trestbps": PlausibleRange(
        40, 300, "resting systolic BP: below 40 mm Hg is shock without a measurable cuff "
        "pressure; above 300 mm Hg exceeds reported hypertensive emergencies"),
    "chol": PlausibleRange(
        20, 1500, "total cholesterol: about 20-50 mg/dL in abetalipoproteinaemia, up to about "
        "1000-1200 mg/dL in homozygous familial hypercholesterolaemia; 0 means not measured"),
    "thalach": PlausibleRange(
        20, 300, "heart rate: below 20/min is asystole-range bradycardia; above 300/min "
        "exceeds even tachyarrhythmias conducted to the ventricles"),
    "oldpeak": PlausibleRange(
        -10, 15, "exercise ST deviation: a few mm in practice; beyond 10-15 mm is an artefact"),
    "ca": PlausibleRange(0, 3, "by definition: 0-3 major vessels coloured by fluoroscopy"),
}  # fmt: skip

_HEART_FEATURES = (
    FeatureSpec("age", FeatureType.NUMERIC, "years", plausible=_AGE),
    FeatureSpec("sex", FeatureType.BINARY, "1 = male"),
    FeatureSpec("cp", FeatureType.CATEGORICAL, categories=("1", "2", "3", "4")),
    FeatureSpec("trestbps", FeatureType.NUMERIC, "mm Hg", plausible=_R["trestbps"]),
    FeatureSpec("chol", FeatureType.NUMERIC, "mg/dL", plausible=_R["chol"]),
    FeatureSpec("fbs", FeatureType.BINARY, "1 = fasting glucose > 120 mg/dL"),
    FeatureSpec("restecg", FeatureType.CATEGORICAL, categories=("0", "1", "2")),
    FeatureSpec("thalach", FeatureType.NUMERIC, "beats/min", plausible=_R["thalach"]),
    FeatureSpec("exang", FeatureType.BINARY, "1 = exercise-induced angina"),
    FeatureSpec("oldpeak", FeatureType.NUMERIC, "mm", plausible=_R["oldpeak"]),
    FeatureSpec("slope", FeatureType.CATEGORICAL, categories=("1", "2", "3")),
    FeatureSpec("ca", FeatureType.NUMERIC, "vessels", plausible=_R["ca"]),
    FeatureSpec("thal", FeatureType.CATEGORICAL, categories=("3", "6", "7")),
)


def uci_heart_sites(data_dir: Path | None = None) -> list[str]:
    """Sites with a ``processed.<site>.data`` file in ``<data_dir>/tabular/uci_heart``."""
    folder = _tabular_dir(data_dir, "uci_heart")
    return sorted(p.name.split(".")[1] for p in folder.glob("processed.*.data"))


def load_uci_heart(site: str = "cleveland", data_dir: Path | None = None) -> TabularDataset:
    """UCI heart disease, one site's processed file; ``?`` is missing, positive = ``num > 0``.

    Raises:
        DataNotFoundError: the site's file is not in the data directory.
        DataError: a cell is malformed (named by row and column).
    """
    path = _tabular_dir(data_dir, "uci_heart") / f"processed.{site}.data"
    raw = _read_csv(path, header=False, names=[f.name for f in _HEART_FEATURES] + ["num"])
    num_spec = TaskSpec("num", "num", "1", "1", (FeatureSpec("num", FeatureType.NUMERIC),))
    num = coerce_features(raw, num_spec, first_line=1)["num"]
    raw["disease"] = np.where(num > 0, "1", np.where(num.isna(), "", "0"))
    label = "heart disease (num > 0)"
    spec = TaskSpec(
        f"uci_heart_{site}", "disease", "1", label, _HEART_FEATURES, "sex", "age",
        {"0": "female", "1": "male"}, site=f"UCI heart disease, {site}",
    )  # fmt: skip
    return _build(raw, spec, str(path), sha256_file(path), first_line=1)


_PIMA_ZERO_MISSING = {"Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"}
_PIMA_UNITS = {
    "Pregnancies": "count", "Glucose": "mg/dL (2-h OGTT)", "BloodPressure": "mm Hg",
    "SkinThickness": "mm", "Insulin": "µU/mL", "BMI": "kg/m²",
    "DiabetesPedigreeFunction": None, "Age": "years",
}  # fmt: skip
PIMA_RANGES = {
    "Pregnancies": PlausibleRange(
        0, 30, "count: the most documented pregnancies of one woman are 27"),
    "Glucose": PlausibleRange(
        10, 1500, "plasma glucose: below 10 mg/dL is incompatible with consciousness; "
        "hyperosmolar crises rarely exceed 1500 mg/dL"),
    "BloodPressure": PlausibleRange(
        10, 200, "diastolic BP: a living patient has a diastolic pressure above 10 mm Hg; "
        "hypertensive emergencies stay below 200 mm Hg"),
    "SkinThickness": PlausibleRange(
        1, 100, "triceps skinfold: calipers open to about 80 mm; 100 mm allows any device"),
    "Insulin": PlausibleRange(
        1, 3000, "2-h serum insulin: severe insulin resistance reaches about 1000-2000 µU/mL"),
    "BMI": PlausibleRange(
        7, 200, "BMI: about 7 kg/m² in extreme starvation, about 186 kg/m² in the heaviest "
        "person recorded"),
    "DiabetesPedigreeFunction": PlausibleRange(
        0, 10, "a non-negative family-history score (Smith et al. 1988); 10 is far above "
        "any pedigree of the cohort's definition"),
    "Age": _AGE,
}  # fmt: skip
"""Plausible ranges of the Pima features (also those of the ``pima-synthea`` FHIR spec)."""


def load_pima(data_dir: Path | None = None) -> TabularDataset:
    """Pima Indians diabetes (768 women); zeros in glucose, BP, skin, insulin, BMI are missing.

    Raises:
        DataNotFoundError: ``tabular/pima/diabetes_kaggle_header.csv`` is not in the data dir.
        DataError: a cell is malformed (named by row and column).
    """
    path = _tabular_dir(data_dir, "pima") / "diabetes_kaggle_header.csv"
    features = tuple(
        FeatureSpec(
            n,
            FeatureType.NUMERIC,
            u,
            zero_is_missing=n in _PIMA_ZERO_MISSING,
            plausible=PIMA_RANGES[n],
        )
        for n, u in _PIMA_UNITS.items()
    )
    spec = TaskSpec(
        "pima", "Outcome", "1", "diabetes", features, age_column="Age", population_sex="female",
        site="Pima Indians diabetes (NIDDK; women of Pima heritage aged 21 or more)",
    )  # fmt: skip
    return _build(_read_csv(path), spec, str(path), sha256_file(path), first_line=2)


DATASETS = ("wdbc", "cleveland", "pima")
"""Names `load_dataset` accepts."""


def load_dataset(name: str = "wdbc", data_dir: Path | None = None) -> TabularDataset:
    """Load a built-in dataset by name (``wdbc`` is the embedded default).

    Raises:
        DataError: the name is not one of `DATASETS`, or the file is malformed.
        DataNotFoundError: the dataset's file is not in the data directory.
    """
    if name == "wdbc":
        return load_breast_cancer()
    if name == "cleveland":
        return load_uci_heart("cleveland", data_dir)
    if name == "pima":
        return load_pima(data_dir)
    raise DataError(f"unknown tabular dataset {name!r}; choose one of {list(DATASETS)}.")
