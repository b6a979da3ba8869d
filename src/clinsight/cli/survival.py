"""`clinsight survival`: time-to-event models — train (and register), evaluate (the card's
cross-validated figures and the proportional-hazards check), predict one patient's survival.
Listing and stage changes: `clinsight models ... survival`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from clinsight.cli.options import AsUserOpt, feature_values
from clinsight.cli.output import console, fail
from clinsight.config import get_settings

__all__ = ["app", "evaluate", "predict", "train"]

app = typer.Typer(
    help="Survival models: train, evaluate, predict (the registry: `clinsight models`)."
)

NameOpt = Annotated[str, typer.Option("--name", help="Registered survival model name.")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", help="Version (default: production, else newest).")
]
CANDIDATES = "cox,coxnet,random_survival_forest,gradient_boosting,neural_cox"
"""The default `--candidates`: the names of `tabular.survival.DEFAULT_SURVIVAL_CANDIDATES`
(written out so that `clinsight --help` imports no model library)."""


def _shown(entry: Any, digits: int = 3) -> str:
    if not isinstance(entry, dict) or entry.get("mean") is None:
        return "n/a"
    low, high = entry.get("fold_interval", [None, None])
    if low is None or high is None:
        return f"{entry['mean']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


@app.command("train")
def train(
    dataset: Annotated[
        str, typer.Option(help="Built-in data set: gbsg2 or breast_cancer_genes.")
    ] = "gbsg2",
    features: Annotated[
        str | None, typer.Option(help="Feature group of the data set (e.g. clinical, genes).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the data set).")] = None,
    candidates: Annotated[
        str,
        typer.Option(
            help="Candidates compared: models (cox, coxnet, random_survival_forest, "
            "gradient_boosting, neural_cox) or named variants (cox_log1p: skewed inputs "
            "on a log scale; coxnet_log1p, neural_cox_log1p; random_survival_forest_leaf30, "
            "gradient_boosting_stumps, gradient_boosting_depth3)."
        ),
    ] = CANDIDATES,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    repeats: Annotated[int, typer.Option(min=1, help="Cross-validation repeats.")] = 3,
    trees: Annotated[int, typer.Option(min=1, help="Trees of the forest and boosting.")] = 200,
    band_refits: Annotated[
        int, typer.Option(min=0, help="Bootstrap refits behind the curve's band (0: none).")
    ] = 10,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the 95 % intervals (0: none).")
    ] = 200,
    production: Annotated[
        bool, typer.Option(help="Put the new version into production (audited).")
    ] = False,
    as_user: AsUserOpt = None,
) -> None:
    """Select a survival model by repeated CV on Uno's C, evaluate it, and register it."""
    from clinsight.data.survival import load_survival_dataset
    from clinsight.services.models import promote_trained
    from clinsight.services.survival_training import train_survival_model
    from clinsight.tabular.survival import SURVIVAL_CANDIDATES

    settings = get_settings()
    data = load_survival_dataset(dataset)
    if features:
        if features not in data.groups:
            raise fail(f"--features must be one of {sorted(data.groups) or 'none'} for {dataset}.")
        data = data.subset(data.groups[features])
    named = [c.strip() for c in candidates.split(",") if c.strip()]
    chosen = {c: SURVIVAL_CANDIDATES.get(c, {"model": c}) for c in named}
    with console.status(f"Selecting and evaluating on {data.spec.name} ({len(data.X)} rows)…"):
        outcome = train_survival_model(
            data, registry_dir=settings.resolved_registry_dir, name=name or dataset,
            candidates=chosen, n_splits=folds, n_repeats=repeats, n_trees=trees,
            band_refits=band_refits, bootstrap=bootstrap,
        )  # fmt: skip
    version = outcome.version
    if version is None:
        raise fail("The model was not registered.")
    if production:
        version = promote_trained(settings, version, as_user)
    table = Table(title=f"{version.name} v{version.version} ({version.stage})")
    for column in ("candidate", "Uno C (CV mean)", "per repeat", "Harrell C"):
        table.add_column(column)
    for score in outcome.selection.scores:
        shown = " ".join(f"{r:.3f}" for r in score.uno_repeats)
        table.add_row(score.name, f"{score.uno_mean:.3f}", shown, f"{score.harrell_mean:.3f}")
    console.print(table)
    console.print(f"Chosen: {outcome.selection.best.name}. Card: {version.card_path}")


@app.command("evaluate")
def evaluate(
    name: NameOpt,
    version: VersionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """The registered version's cross-validated figures, population and PH check."""
    from clinsight.errors import ModelNotFoundError
    from clinsight.registry.survival import get_survival_model

    registry = get_settings().resolved_registry_dir
    try:
        entry = get_survival_model(registry, name, version, None if version else "production")
    except ModelNotFoundError:
        if version is not None:
            raise
        entry = get_survival_model(registry, name)
    if as_json:
        console.print_json(json.dumps(entry.to_dict()))
        return
    cv = entry.metrics["cross_validation"]
    population = entry.population
    console.print(
        f"[bold]{entry.name} v{entry.version}[/] ({entry.stage}, {entry.training['model']}): "
        f"{population['rows']} patients, {population['events']} events "
        f"({entry.event_label}), censoring {population['censoring_rate']:.0%}, median "
        f"follow-up {population['median_follow_up_days'] or 0:.0f} days; longest supported "
        f"horizon {entry.max_horizon_days / 365.25:.1f} years"
    )
    table = Table(title=f"{entry.metrics['protocol']}")
    for column in ("metric", "mean [fold 2.5-97.5 %]", "per repeat"):
        table.add_column(column)
    for key, value in cv.items():
        if isinstance(value, dict) and "mean" in value and "fold_interval" in value:
            repeats = " ".join(f"{r:.3f}" for r in value["repeats"] if r is not None)
            table.add_row(key, _shown(value), repeats)
    km = entry.metrics.get("kaplan_meier_integrated_brier")
    table.add_row("integrated_brier (Kaplan-Meier)", _shown(km), "")
    for horizon, cal in cv.get("calibration_slope", {}).items():
        table.add_row(
            f"calibration slope {horizon}",
            f"{cal['mean']:.2f}" if cal["mean"] is not None else "n/a",
            "",
        )
    console.print(table)
    ph = entry.proportional_hazards
    if ph:
        console.print(f"Proportional hazards (global p = {ph['global']['p']:.3f}): {ph['meaning']}")


@app.command("predict")
def predict(
    name: NameOpt,
    value: Annotated[list[str], typer.Option("--value", help="FEATURE=VALUE (repeat).")],
    version: VersionOpt = None,
    horizon: Annotated[
        list[float] | None, typer.Option("--horizon", help="Years (repeat; default 1, 3, 5).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the FHIR RiskAssessment JSON.")
    ] = False,
) -> None:
    """A patient's risk by each horizon, with its band and the factors that move it."""
    from clinsight.inference.cache import ModelCache
    from clinsight.interop.fhir_survival import survival_risk_assessment
    from clinsight.services.survival import DEFAULT_HORIZONS, predict_survival

    predictor = ModelCache(get_settings().resolved_registry_dir).survival(
        name, version, newest=True
    )
    result = predict_survival(predictor, feature_values(value), horizon or DEFAULT_HORIZONS)
    if as_json:
        console.print_json(json.dumps(survival_risk_assessment(result, "Patient/unknown")))
        return
    model = result.model
    console.print(f"[bold]{model.event_label}[/] — {model.name} v{model.version}")
    table = Table(title="Risk of the event by")
    for column in ("horizon", "risk", "95 % band"):
        table.add_column(column)
    for item in result.horizons:
        band = "n/a" if item.low is None or item.high is None else f"{item.low:.1%}–{item.high:.1%}"
        table.add_row(f"{item.years:g} years", f"{item.risk:.1%}", band)
    console.print(table)
    factors = Table(
        title=f"What moves the {result.headline.years:g}-year risk "
        "(against the population's typical value)"
    )
    for column in ("feature", "value", "typical", "effect (points)"):
        factors.add_column(column)
    for factor in result.factors[:8]:
        factors.add_row(factor.feature, "missing" if factor.value is None else str(factor.value),
                        str(factor.reference), f"{factor.effect * 100:+.1f}")  # fmt: skip
    console.print(factors)
