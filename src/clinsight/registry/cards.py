"""Model cards: what a registered model is for, how it was made and how well it works.

`build_card` assembles the card (stored as card.json) from a model's record;
`render_card_markdown` writes the human-readable card.md. Metrics may be nested
dictionaries. A metric given as ``{"value": v, "low": l, "high": h}`` or
``{"value": v, "ci": [l, h]}``, or an evaluation report's ``values`` beside its
``intervals`` (and ``confidence``), is shown with its confidence interval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_card", "format_metric", "render_card_markdown"]

_MAX_INLINE_LIST = 20
# Evaluation details kept in card.json but left out of card.md (the plots show them).
_DETAIL_KEYS = frozenset({"bootstrap_used", "reliability_before", "reliability_after"})


def _default_intended_use(record: Mapping[str, Any]) -> str:
    dataset = record["training"].get("dataset", "the training data set")
    labels = ", ".join(record["labels"])
    return (
        f"Decision support: classify images like those of {dataset} into {labels}, as "
        f"calibrated probabilities reviewed by a qualified clinician. Not for autonomous "
        f"diagnosis; not a certified medical device."
    )


def _calibration_limitation(record: Mapping[str, Any]) -> str:
    method = record.get("calibration", {}).get("method", "temperature")
    drift = "calibration can drift when the input population shifts."
    if method == "none":
        return (
            "Probabilities are the network's own: neither temperature nor vector scaling "
            f"lowered the cross-fitted validation calibration error; {drift}"
        )
    how = f"temperature scaling (T = {record['temperature']:.4g})"
    if method == "vector":
        how = "vector scaling (a scale and a bias per class)"
    return f"Probabilities are calibrated by {how} on held-out data; {drift}"


def _default_limitations(record: Mapping[str, Any]) -> list[str]:
    dataset = record["training"].get("dataset", "a single data set")
    size = record["preprocess"]["image_size"]
    return [
        f"Trained and evaluated on {dataset} only, at {size}x{size} pixels; performance on "
        f"other sites, devices or populations is unknown until validated externally.",
        _calibration_limitation(record),
        "Performance in patient subgroups is known only where the metrics list it.",
    ]


def build_card(
    record: Mapping[str, Any],
    *,
    artifact_sha256: str,
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
    plots: Sequence[str] = (),
) -> dict[str, Any]:
    """The model card of a registered model, JSON-ready.

    `record` is the model's model.json content; `plots` are paths relative to the
    version folder; `limitations` are added to the standard ones.
    """
    metrics = dict(record["metrics"])
    calibration = metrics.pop("calibration", {})
    for repeated in ("plots", "task", "labels"):  # the card shows these once, elsewhere
        metrics.pop(repeated, None)
    labels = list(record["labels"])
    return {
        "model": {
            "name": record["name"],
            "version": record["version"],
            "created": record["created"],
            "architecture": record["network"]["architecture"],
            "ensemble_members": int(record["network"].get("members", 1)),
            "network": record["network"],
            "artifact_sha256": artifact_sha256,
        },
        "intended_use": intended_use or _default_intended_use(record),
        "outputs": {
            "task": record["task"],
            "labels": labels,
            "positive_label": labels[record["positive_index"]],
        },
        "preprocessing": record["preprocess"],
        "training": record["training"],
        "metrics": metrics,
        "calibration": {"temperature": record["temperature"], **calibration},
        **{key: record[key] for key in ("decision_thresholds", "decision_rule") if key in record},
        "limitations": [*_default_limitations(record), *limitations],
        "plots": list(plots),
    }


def _ensemble_rows(model: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The image network's ensemble size (risk models' cards have none to state)."""
    members = model.get("ensemble_members")
    if members is None:
        return []
    if members == 1:
        return [("Ensemble", "none (a single network)")]
    return [("Ensemble", f"{members} independently trained networks; their logits are averaged")]


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def format_metric(value: Any, confidence: float = 0.95) -> str:
    """A metric as text: ``0.912 (95% CI 0.89–0.931)`` for an interval, else the value.

    Intervals are ``{"value": v, "low": l, "high": h}`` or ``{"value": v, "ci": [l, h]}``.
    """
    if isinstance(value, Mapping) and "value" in value:
        ci = value.get("ci")
        low, high = ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
        low, high = value.get("low", low), value.get("high", high)
        if low is None or high is None:
            return _number(value["value"])
        return f"{_number(value['value'])} ({confidence:.0%} CI {_number(low)}–{_number(high)})"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list | tuple):
        if len(value) > _MAX_INLINE_LIST:
            return f"{len(value)} values (see card.json)"
        return "[" + ", ".join(format_metric(v) for v in value) + "]"
    return _number(value)


def _rows(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Table rows for nested data; ``values`` with ``intervals`` (evaluation reports) merge."""
    rows: list[tuple[str, str]] = []
    confidence = data.get("confidence", 0.95)
    values, intervals = data.get("values"), data.get("intervals")
    if isinstance(values, Mapping) and isinstance(intervals, Mapping):
        for key, value in values.items():
            merged = {"value": value, "ci": intervals.get(key)}
            rows.append((f"{prefix}{key}", format_metric(merged, confidence)))
        data = {k: v for k, v in data.items() if k not in ("values", "intervals")}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key in _DETAIL_KEYS:
            continue
        if isinstance(value, Mapping) and value and "value" not in value:
            rows.extend(_rows(value, f"{name} / "))
        else:
            rows.append((name, format_metric(value)))
    return rows


def _table(header: tuple[str, str], rows: Sequence[tuple[str, str]]) -> list[str]:
    if not rows:
        return ["(none recorded)"]
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines.extend(f"| {k} | {v.replace('|', '/')} |" for k, v in rows)
    return lines


def _threshold_section(thresholds: Mapping[str, Any] | None) -> list[str]:
    """The decision band of a binary image model (chosen on validation), if it has one."""
    if thresholds is None:
        return []
    return [
        "## Decision thresholds (validation split)",
        "",
        "Positive when P(positive) >= high, negative below min(low, high), indeterminate "
        "in between.",
        "",
        *_table(("Item", "Value"), _rows(thresholds)),
        "",
    ]


def render_card_markdown(card: Mapping[str, Any]) -> str:
    """card.md: the card as Markdown, with metric intervals and links to the plots."""
    model, outputs = card["model"], card["outputs"]
    lines = [
        f"# Model card: {model['name']} v{model['version']}",
        "",
        *_table(
            ("Field", "Value"),
            [
                ("Created", model["created"]),
                ("Architecture", model["architecture"]),
                *_ensemble_rows(model),
                ("Task", outputs["task"]),
                ("Labels", ", ".join(outputs["labels"])),
                ("Positive label", outputs["positive_label"]),
                ("Artifact sha256", f"`{model['artifact_sha256']}`"),
            ],
        ),
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Data and training",
        "",
        *_table(("Item", "Value"), _rows(card["training"])),
        "",
        "## Preprocessing",
        "",
        *_table(("Item", "Value"), _rows(card["preprocessing"])),
        "",
        "## Metrics (95% confidence intervals)",
        "",
        *_table(("Metric", "Value"), _rows(card["metrics"])),
        "",
        "## Calibration",
        "",
        *_table(("Item", "Value"), _rows(card["calibration"])),
        "",
        *_threshold_section(card.get("decision_thresholds")),
        "## Limitations",
        "",
        *[f"- {item}" for item in card["limitations"]],
    ]
    if card["plots"]:
        lines += ["", "## Plots", ""]
        lines += [f"![{plot.rsplit('/', 1)[-1]}]({plot})" for plot in card["plots"]]
    return "\n".join(lines) + "\n"
