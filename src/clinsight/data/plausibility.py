"""Plausible ranges of model inputs: limits a living patient's value cannot pass.

A range is a physiological or definitional limit taken from clinical knowledge (never
fitted to a data file), written in a feature spec as ``"plausible": [low, high]`` or
``{"min": low, "max": high, "source": "..."}``, bounds included. A value outside its
range is an error of entry or coding (2000 mg/dL glucose, a BMI of 300, 0 for "not
measured"): loaders read it as missing and report it (`PlausibilityReport`); an
assessment refuses it (`clinsight.errors.ImplausibleInputError`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clinsight.errors import DataError

__all__ = [
    "ImplausibleValue",
    "PlausibilityReport",
    "PlausibleRange",
    "parse_range",
    "short_unit",
]


def short_unit(unit: str | None) -> str:
    """The unit without its parenthesised remark: ``mg/dL (2-h OGTT)`` → ``mg/dL``."""
    return (unit or "").split(" (")[0].strip()


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class PlausibleRange:
    """Inclusive limits of a feature's value, and where they come from."""

    low: float
    high: float
    source: str | None = None

    def contains(self, value: float) -> bool:
        """Whether `value` lies within the limits (bounds included)."""
        return self.low <= value <= self.high

    def text(self, unit: str | None = None) -> str:
        """``10–1500 mg/dL``."""
        return f"{_number(self.low)}–{_number(self.high)} {short_unit(unit)}".strip()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as `parse_range` reads it."""
        out: dict[str, Any] = {"min": self.low, "max": self.high}
        if self.source:
            out["source"] = self.source
        return out


def parse_range(feature: str, entry: object) -> PlausibleRange | None:
    """The range of a spec entry (``[low, high]`` or ``{min, max, source}``); None if absent.

    Raises:
        DataError: the bounds are not two finite numbers with low < high (names the feature).
    """
    if entry is None:
        return None
    source: str | None = None
    if isinstance(entry, Mapping):
        bounds: list[object] = [entry.get("min"), entry.get("max")]
        source = str(entry["source"]) if entry.get("source") else None
    elif isinstance(entry, list | tuple):
        bounds = list(entry)
    else:
        bounds = []
    numbers = [float(b) for b in bounds if isinstance(b, int | float) and not isinstance(b, bool)]
    if len(bounds) != 2 or len(numbers) != 2 or not all(math.isfinite(n) for n in numbers):
        raise DataError(
            f"feature {feature!r}: plausible range {entry!r} must be two numbers "
            '[min, max] or {"min": ..., "max": ...}.'
        )
    low, high = numbers
    if not low < high:
        raise DataError(
            f"feature {feature!r}: plausible range min {_number(low)} must be below "
            f"max {_number(high)}."
        )
    return PlausibleRange(low, high, source)


@dataclass(frozen=True)
class ImplausibleValue:
    """One value outside its feature's plausible range (``row`` None for a single patient)."""

    feature: str
    value: float
    unit: str | None
    range: PlausibleRange
    row: str | None = None

    @property
    def message(self) -> str:
        """``Glucose 2000 mg/dL is outside the plausible range 10–1500 mg/dL``."""
        shown = f"{_number(self.value)} {short_unit(self.unit)}".strip()
        where = f"{self.row}: " if self.row else ""
        return (
            f"{where}{self.feature} {shown} is outside the plausible range "
            f"{self.range.text(self.unit)}"
        )


@dataclass(frozen=True)
class PlausibilityReport:
    """What a loader read as missing because it was implausible, and constant-zero columns
    (``zero_kept``: those of them whose 0 is a plausible value, so it was not set missing)."""

    implausible: tuple[ImplausibleValue, ...] = ()
    constant_zero: tuple[str, ...] = ()
    rows: int = 0
    detail_limit: int = field(default=5, compare=False)
    zero_kept: tuple[str, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        """Feature → number of values set missing as implausible (features with any)."""
        return dict(Counter(item.feature for item in self.implausible))

    def lines(self) -> tuple[str, ...]:
        """A summary per finding (empty when there is none), for notes and the CLI."""
        out = [
            f"{name} is 0 in every row ({self.rows}): kept as 0, a plausible value; check "
            "whether the site codes 'not measured' as 0"
            if name in self.zero_kept
            else f"{name} is 0 in every row ({self.rows}): read as 'not measured'"
            for name in self.constant_zero
        ]
        for name, count in self.counts.items():
            first = [i for i in self.implausible if i.feature == name][: self.detail_limit]
            shown = "; ".join(i.message for i in first)
            more = f"; and {count - len(first)} more" if count > len(first) else ""
            out.append(f"{count} implausible {name} value(s) read as missing ({shown}{more})")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rows": self.rows, "constant_zero": list(self.constant_zero),
            "zero_kept": list(self.zero_kept), "implausible": self.counts,
        }  # fmt: skip
