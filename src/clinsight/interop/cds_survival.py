"""A CDS Hooks ``patient-view`` card from a predicted survival.

The summary (< 140 characters) gives the risk by the headline horizon; the detail
(Markdown) lists the risk by each horizon with its band, the factors that move it and the
missing inputs; the card links to the model card. The indicator is always ``info``: no
alerting threshold on a survival risk has been chosen on validation data, so the card
informs and never alarms.
"""

from __future__ import annotations

import uuid
from typing import Any

from clinsight.errors import OutOfPopulationError
from clinsight.inference.survival import SurvivalResult
from clinsight.interop.cds_hooks import SUMMARY_LIMIT, CdsService
from clinsight.interop.fhir_survival import factors_text

__all__ = ["out_of_population_card", "survival_card"]


def survival_card(result: SurvivalResult, title: str, card_url: str) -> dict[str, Any]:
    """The card of `result` for the service titled `title`, linking to `card_url`."""
    model, headline = result.model, result.headline
    summary = (
        f"{headline.risk:.0%} risk of {model.event_label} within {headline.years:g} years - {title}"
    )
    if len(summary) >= SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 2] + "…"
    rows = []
    for item in result.horizons:
        band = "" if item.low is None or item.high is None else (
            f" (95 % band {item.low:.0%}-{item.high:.0%})")  # fmt: skip
        rows.append(f"- within {item.years:g} years: **{item.risk:.1%}**{band}")
    lines = [f"Predicted risk of {model.event_label}:", *rows, "",
             f"Factors: {factors_text(result)}."]  # fmt: skip
    if result.missing:
        lines += ["", f"Missing inputs (the model imputed them): {', '.join(result.missing)}."]
    label = f"Clinsight {model.name} v{model.version}"
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": {"label": label, "url": card_url},
        "links": [{"label": "Model card", "url": card_url, "type": "absolute"}],
    }


def out_of_population_card(service: CdsService, error: OutOfPopulationError) -> dict[str, Any]:
    """The warning card answered instead of a survival when the patient lies outside the
    population the model was trained on."""
    listing = "\n".join(f"- {message}" for message in error.fields.values())
    return {
        "uuid": str(uuid.uuid4()),
        "summary": f"No estimate: outside the model's training population - {service.title}"[
            : SUMMARY_LIMIT - 1
        ],
        "indicator": "warning",
        "detail": (
            "The survival was not predicted, because the patient lies outside the population "
            f"the model was trained on:\n{listing}\n\nThe model was not made for such patients."
        ),
        "source": {"label": f"Clinsight {service.model_name}"},
    }
