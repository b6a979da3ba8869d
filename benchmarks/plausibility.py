"""Plausibility figures: per built-in dataset and feature, the values read as missing.

For Pima, UCI heart (every ``processed.<site>.data`` in the data directory) and WDBC: each
numeric feature's plausible range (from clinical knowledge, `clinsight.data.tabular`), the
values outside it that the loader read as missing, the zeros a task reads as missing
(``zero_is_missing``), and whether the column is 0 in every row (a site's "not measured").
An assessment refuses an implausible value instead (HTTP 422, the form, a CDS warning card).

Run through ``benchmarks/safety.py --part plausibility`` (seconds): its ``plausibility``
key of ``benchmarks/results/safety.json`` and the ``safety-plausibility`` section of
``benchmarks/README.md``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from clinsight.config import get_settings
from clinsight.data.plausibility import ImplausibleValue
from clinsight.data.tabular import (
    PIMA_RANGES,
    FeatureType,
    TabularDataset,
    load_breast_cancer,
    load_pima,
    load_uci_heart,
    uci_heart_sites,
)

__all__ = ["ISSUE_INPUTS", "plausibility_figures", "readme_section"]

ISSUE_INPUTS = {"Glucose": 2000.0, "BMI": 300.0, "BloodPressure": -5.0}
"""The Pima inputs issue 13 saw accepted (and scored "critical")."""


def _zeros(data: TabularDataset, name: str) -> int:
    """Zeros the task reads as missing (``zero_is_missing``; Pima's file has a header)."""
    feature = next(f for f in data.spec.features if f.name == name)
    if not feature.zero_is_missing:
        return 0
    raw = pd.to_numeric(pd.read_csv(data.source, dtype=str)[name], errors="coerce")
    return int((raw == 0.0).sum())


def _dataset_figures(data: TabularDataset) -> dict[str, Any]:
    report = data.plausibility
    features: dict[str, Any] = {}
    for feature in data.spec.features:
        if feature.type is not FeatureType.NUMERIC:
            continue
        limits = feature.plausible
        features[feature.name] = {
            "unit": feature.unit,
            "plausible": limits.to_dict() if limits else None,
            "implausible_set_missing": report.counts.get(feature.name, 0),
            "zeros_read_as_missing": _zeros(data, feature.name),
            "constant_zero": feature.name in report.constant_zero,
            "missing_total": int(data.X[feature.name].isna().sum()),
        }
    return {"source": data.source, "sha256": data.sha256, "rows": len(data.X),
            "features": features, "notes": list(data.notes)}  # fmt: skip


def plausibility_figures() -> dict[str, Any]:
    """Per built-in dataset (and UCI heart site): per numeric feature, the range, values
    set missing as implausible, zeros read as missing, constant-zero flag, missing total.

    Raises:
        DataNotFoundError: Pima or the Cleveland file is not in the data directory.
    """
    data_dir = get_settings().resolved_data_dir
    loaded = {"wdbc": load_breast_cancer(), "pima": load_pima(data_dir)}
    for site in uci_heart_sites(data_dir):
        loaded[f"uci_heart_{site}"] = load_uci_heart(site, data_dir)
    datasets = {name: _dataset_figures(data) for name, data in loaded.items()}
    total = sum(
        f["implausible_set_missing"] for d in datasets.values() for f in d["features"].values()
    )
    units = {f.name: f.unit for f in loaded["pima"].spec.features}
    probes = {
        name: {"value": value, "refused": not PIMA_RANGES[name].contains(value),
               "message": ImplausibleValue(name, value, units[name], PIMA_RANGES[name]).message}
        for name, value in ISSUE_INPUTS.items()
    }  # fmt: skip
    return {"datasets": datasets, "implausible_set_missing_total": int(total),
            "issue_inputs": probes}  # fmt: skip


def readme_section(figures: dict[str, Any]) -> str:
    """The Markdown table of the README (features with a range, or any value read missing)."""
    lines = [
        "## Safety: plausible ranges (values read as missing per built-in dataset)",
        "",
        "Run `benchmarks/safety.py --part plausibility`. Ranges are clinical limits (sources in",
        "`clinsight.data.tabular`), not fitted to the files; WDBC's image features have none.",
        "An assessment refuses a value outside its range (422 naming the field).",
        "",
        "| dataset | rows | feature | plausible range | implausible → missing "
        "| zeros → missing | constant 0 |",
        "|---|---:|---|---|---:|---:|---|",
    ]
    for name, data in figures["datasets"].items():
        for feature, item in data["features"].items():
            limits = item["plausible"]
            if limits is None and not item["zeros_read_as_missing"]:
                continue
            shown = "—" if limits is None else f"{limits['min']:g}–{limits['max']:g}"
            unit = (item["unit"] or "").split(" (")[0]
            lines.append(
                f"| {name} | {data['rows']} | {feature} | {shown} {unit}".rstrip()
                + f" | {item['implausible_set_missing']} | {item['zeros_read_as_missing']} "
                f"| {'yes' if item['constant_zero'] else 'no'} |"
            )
    wdbc = figures["datasets"].get("wdbc", {}).get("features", {})
    lines += [
        "",
        f"WDBC: {len(wdbc)} numeric features, no range, "
        f"{sum(i['implausible_set_missing'] for i in wdbc.values())} values read as "
        f"missing. Total implausible values read as missing: "
        f"{figures['implausible_set_missing_total']}.",
        "",
        "The issue's inputs, assessed with the Pima model, are refused (422):",
        "",
    ]
    lines += [f"- {item['message']}" for item in figures["issue_inputs"].values()]  # fmt: skip
    return "\n".join(lines)
