"""Model cards: what a registered model is for, how it was made and how well it works.

`build_card` assembles the card (stored as card.json) from a model's record;
`render_card_markdown` writes the human-readable card.md. Metrics may be nested
dictionaries. A metric given as ``{"value": v, "low": l, "high": h}`` or
``{"value": v, "ci": [l, h]}``, or an evaluation report's ``values`` beside its
``intervals`` (and ``confidence``), is shown with its confidence interval.
"""

from __future__ import annotations

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
        **(
            {"intended_population": record["intended_population"]}
            if "intended_population" in record
            else {}
        ),
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
        **(
            {"intended_use_gate": record["intended_use_gate"]}
            if "intended_use_gate" in record
            else {}
        ),
        "limitations": list(dict.fromkeys([*_default_limitations(record), *limitations])),
        "plots": list(plots),
    }


def _population_lines(population: Mapping[str, Any] | None) -> list[str]:
    """The intended population (ages at the study date) under the intended use, if known."""
    if not population:
        return []
    return [
        f"Intended population: {population['description']} (ages {population['min_age_years']}"
        f"–{population['max_age_years']} years at the study date; source: "
        f"{population['source']}). Predictions for patients outside it carry a warning.",
        "",
    ]


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
    if isinstance(value, Mapping):  # a small mapping reads as "key: value; key: value"
        return "; ".join(f"{human_key(str(k))}: {format_metric(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if len(value) > _MAX_INLINE_LIST:
            return f"{len(value)} values (see card.json)"
        return "[" + ", ".join(format_metric(v) for v in value) + "]"
    return _number(value)


_WORDS = {"auc": "AUC", "auroc": "AUROC", "auprc": "AUPRC", "roc": "ROC", "ece": "ECE",
          "mce": "MCE", "ci": "CI", "id": "ID", "ood": "OOD", "onnx": "ONNX", "sha256": "SHA-256",
          "lr": "learning rate", "val": "validation", "qwk": "QWK", "psi": "PSI"}  # fmt: skip


def human_key(key: str) -> str:
    """A stored key as a label: "val_auc" -> "Validation AUC", "image_size" -> "Image size"."""
    words = [_WORDS.get(w.lower(), w) for w in key.replace("-", "_").split("_") if w]
    if not words:
        return key
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def _rows(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Table rows for nested data; ``values`` with ``intervals`` (evaluation reports) merge."""
    rows: list[tuple[str, str]] = []
    confidence = data.get("confidence", 0.95)
    values, intervals = data.get("values"), data.get("intervals")
    if isinstance(values, Mapping) and isinstance(intervals, Mapping):
        for key, value in values.items():
            merged = {"value": value, "ci": intervals.get(key)}
            rows.append((f"{prefix}{human_key(str(key))}", format_metric(merged, confidence)))
        data = {k: v for k, v in data.items() if k not in ("values", "intervals")}
    for key, value in data.items():
        name = f"{prefix}{human_key(str(key))}"
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


def _population_section(population: Mapping[str, Any] | None) -> list[str]:
    """The population a risk model was trained and validated on, if recorded."""
    if not population:
        return []
    age = population.get("age")
    rows = [("Site / data set", str(population["site"])), ("Rows", str(population["rows"]))]
    if age:
        rows += [
            ("Age (years), min–max", f"{_number(age['min'])}–{_number(age['max'])}"),
            ("Age (years), 2.5th–97.5th percentile",
             f"{_number(age['p2_5'])}–{_number(age['p97_5'])}"),
        ]  # fmt: skip
    sexes = population.get("sex")
    if sexes:
        total = sum(sexes.values()) or 1
        shown = ", ".join(f"{k} {v} ({v / total:.0%})" for k, v in sexes.items())
        rows.append(("Sex", shown))
    return [
        "## Validated population",
        "",
        f"Trained and validated on: **{population['description']}**. An assessment of a "
        "patient outside these ages or of another sex carries an 'outside the validated "
        "population' warning.",
        "",
        *_table(("Item", "Value"), rows),
        "",
    ]


def _gate_section(gate: Mapping[str, Any] | None) -> list[str]:
    """The intended-use gate of an image model: what it checks and its validation limit."""
    if gate is None:
        return []
    headers = [
        (f"DICOM {key.replace('_', ' ')}", "/".join(values))
        for key, values in gate["headers"].items()
        if values
    ]
    features = gate.get("features")
    rows = [
        ("Meant for", f"{gate['noun']}s"), *headers,
        ("Greyscale only", f"yes (colour saturation limit {gate['saturation_limit']})"
         if gate["greyscale"] else "no"),
        ("On a failed check", str(gate["action"])),
    ]  # fmt: skip
    if features:
        rows += [
            ("Out-of-distribution score", f"{features['method']} on penultimate features"),
            ("Score limit", f"{features['limit']:.2f} ({features['split']} split, target "
             f"{features['rejection_target']:.0%} rejected, {features['validation_rejected']:.1%} "
             f"of {features['n_validation']} rejected)"),
        ]  # fmt: skip
    return ["## Intended-use gate", "", *_table(("Check", "Value"), rows), ""]


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
        *_population_section(card.get("population")),
        *_population_lines(card.get("intended_population")),
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
        *_gate_section(card.get("intended_use_gate")),
        "## Limitations",
        "",
        *[f"- {item}" for item in card["limitations"]],
    ]
    if card["plots"]:
        lines += ["", "## Plots", ""]
        lines += [f"![{plot.rsplit('/', 1)[-1]}]({plot})" for plot in card["plots"]]
    return "\n".join(lines) + "\n"
