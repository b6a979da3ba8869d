"""`clinsight risk`: risk models — train (and register), explain one patient (feature values
or a FHIR Bundle), validate on another site. Listing and stage changes: `clinsight models`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from clinsight.cli.options import AsUserOpt, feature_values
from clinsight.cli.output import console, fail
from clinsight.config import get_settings
from clinsight.data.plausibility import PlausibilityReport

__all__ = ["app", "explain", "train", "validate"]


def _print_plausibility(report: PlausibilityReport) -> None:
    """Each value read as missing because implausible, and each constant-zero column."""
    for line in report.lines():
        console.print(f"[yellow]Plausibility[/] {line}")


app = typer.Typer(help="Risk models: train, explain, validate (the registry: `clinsight models`).")

NameOpt = Annotated[str, typer.Option("--name", help="Registered risk model name.")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", help="Version (default: production, else newest).")
]


@app.command("train")
def train(
    dataset: Annotated[
        str | None, typer.Option(help="Built-in data set: wdbc, cleveland or pima.")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Your CSV (header row first).")] = None,
    spec: Annotated[
        Path | None, typer.Option(help="Task spec of --csv (JSON/YAML: target, features).")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated subset of features to train on.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the data set).")] = None,
    candidates: Annotated[
        str, typer.Option(help="Models compared: logistic, gradient_boosting, random_forest, …")
    ] = "logistic,gradient_boosting,random_forest,ensemble",
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    repeats: Annotated[int, typer.Option(min=1, help="Cross-validation repeats.")] = 3,
    warning: Annotated[float, typer.Option(help="Risk at which cards warn.")] = 0.2,
    critical: Annotated[float, typer.Option(help="Risk at which cards are critical.")] = 0.5,
    production: Annotated[
        bool, typer.Option(help="Put the new version into production (audited).")
    ] = False,
    as_user: AsUserOpt = None,
) -> None:
    """Select, calibrate and evaluate a risk model by repeated CV, and register it with its card."""
    from clinsight.data.tabular import TaskSpec, load_csv, load_dataset
    from clinsight.services.models import promote_trained
    from clinsight.services.risk_training import subset_features, train_risk_model

    if (dataset is None) == (csv is None) or (csv is not None and spec is None):
        raise fail("Give either --dataset NAME, or --csv FILE with --spec SPEC.")
    settings = get_settings()
    data = (
        load_dataset(dataset, settings.resolved_data_dir)
        if dataset is not None
        else load_csv(Path(str(csv)), TaskSpec.from_file(Path(str(spec))))
    )
    if features:
        data = subset_features(data, [f.strip() for f in features.split(",") if f.strip()])
    _print_plausibility(data.plausibility)
    chosen = {c.strip(): {"model": c.strip()} for c in candidates.split(",") if c.strip()}
    with console.status(f"Selecting and evaluating on {data.spec.name} ({len(data.X)} rows)…"):
        outcome = train_risk_model(
            data, registry_dir=settings.resolved_registry_dir,
            name=name or (dataset or data.spec.name).lower(), candidates=chosen,
            n_splits=folds, n_repeats=repeats,
            thresholds={"warning": warning, "critical": critical},
        )  # fmt: skip
    version = outcome.version
    if version is None:
        raise fail("The model was not registered.")
    if production:
        version = promote_trained(settings, version, as_user)
    table = Table(title=f"{version.name} v{version.version} ({version.stage})")
    for column in ("candidate", "AUC (CV mean ± sd)", "Brier"):
        table.add_column(column)
    for score in outcome.selection.scores:
        table.add_row(score.name, f"{score.auc_mean:.3f} ± {score.auc_std:.3f}",
                      f"{score.brier_mean:.3f}")  # fmt: skip
    console.print(table)
    cv = outcome.metrics["cross_validation"]
    console.print(
        f"Chosen: {outcome.selection.best.name}, calibrated ({version.calibration}): AUC "
        f"{cv['auc']['mean']:.3f}, Brier {cv['brier']['mean']:.3f}, ECE {cv['ece']['mean']:.3f}"
    )
    if version.population is not None:
        console.print(
            f"Validated population: {version.population.describe()} ({version.population.site})"
        )
    console.print(f"Card: {version.card_path}")


@app.command("explain")
def explain(
    name: NameOpt,
    version: VersionOpt = None,
    value: Annotated[
        list[str] | None, typer.Option("--value", help="FEATURE=VALUE (repeat).")
    ] = None,
    fhir: Annotated[Path | None, typer.Option(help="A FHIR R4 patient Bundle.")] = None,
    fhir_spec: Annotated[
        str, typer.Option(help="Feature spec for --fhir: built-in name or file.")
    ] = "pima-synthea",
    as_of: Annotated[
        str | None, typer.Option(help="Date the FHIR data is read at (YYYY-MM-DD; default now).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the FHIR RiskAssessment JSON.")
    ] = False,
) -> None:
    """A patient's calibrated risk and the factors that pushed it up or down."""
    from clinsight.data.fhir import read_bundle
    from clinsight.data.fhir_features import BUILTIN_SPECS, FhirFeatureSpec
    from clinsight.inference.cache import ModelCache
    from clinsight.interop.fhir_out import risk_assessment, risk_assessment_json
    from clinsight.services.risk import assess_features, assess_record

    if (fhir is None) == (not value):
        raise fail("Give the patient as --fhir BUNDLE or as --value FEATURE=VALUE pairs.")
    registry = get_settings().resolved_registry_dir
    predictor = ModelCache(registry).risk(name, version, newest=True)
    subject = "Patient/unknown"
    if fhir is not None:
        spec = (
            FhirFeatureSpec.builtin(fhir_spec)
            if fhir_spec in BUILTIN_SPECS
            else FhirFeatureSpec.from_file(Path(fhir_spec))
        )
        when = datetime.fromisoformat(as_of).replace(tzinfo=UTC) if as_of else None
        record = read_bundle(fhir)
        result = assess_record(predictor, record, spec, as_of=when)
        subject = record.reference
    else:
        result = assess_features(predictor, feature_values(value or []))
    assessment = risk_assessment(result, subject)
    if as_json:
        console.print_json(json.dumps(risk_assessment_json(assessment)))
        return
    model = result.model
    if result.population_warning is not None:
        console.print(f"[bold yellow]Warning[/] {result.population_warning.message}")
    console.print(
        f"[bold]{model.task.positive_label}[/] risk {result.probability:.1%} ({result.level}) "
        f"— {model.name} v{model.version}"
    )
    table = Table(title=f"Contributions ({result.explanation.method}, log-odds)")
    for column in ("feature", "value", "push"):
        table.add_column(column)
    for item in result.explanation.contributions:
        shown = "missing" if item.value is None else f"{item.value:.4g}" if isinstance(
            item.value, float) else str(item.value)  # fmt: skip
        table.add_row(item.feature, f"{shown} {item.unit or ''}".strip(), f"{item.log_odds:+.3f}")
    console.print(table)
    for missing in result.missing:
        console.print(f"[yellow]Missing[/] {missing.feature}: {missing.reason}")


@app.command("validate")
def validate(
    name: NameOpt,
    site: Annotated[
        str, typer.Option(help="CSV in the model's format (with outcome), or a UCI heart site.")
    ],
    version: VersionOpt = None,
    fraction: Annotated[
        float, typer.Option(help="Share of the site's rows used to recalibrate (0: none).")
    ] = 0.2,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the 95 % intervals (0: none).")
    ] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """External validation on another site's labelled data, before and after recalibration
    (chosen by closed testing: keep the model, intercept only, or intercept and slope; none
    at all when the model does not rank the site's patients)."""
    from clinsight.data.tabular import load_csv, load_uci_heart
    from clinsight.evaluation.external import external_validation
    from clinsight.inference.cache import ModelCache

    settings = get_settings()
    predictor = ModelCache(settings.resolved_registry_dir).risk(name, version, newest=True)
    path = Path(site)
    data = (
        load_csv(path, predictor.version.task)
        if path.suffix in (".csv", ".txt") or path.is_file()
        else load_uci_heart(site, settings.resolved_data_dir)
    )
    report = external_validation(
        predictor.model, data.X[predictor.version.task.feature_names], data.y.to_numpy(),
        site=path.stem if path.is_file() else site, recalibration_fraction=fraction,
        n_bootstrap=bootstrap, data_warnings=data.plausibility.lines(),
    )  # fmt: skip
    if as_json:  # the plausibility findings are the report's warnings
        console.print_json(json.dumps(report.to_dict()))
        return
    _print_plausibility(data.plausibility)
    table = Table(title=f"{name} on {report.site}")
    for column in ("rows", "AUC", "Brier", "ECE", "in-the-large", "intercept", "slope"):
        table.add_column(column)
    rows = [("all rows, as shipped", report.before), ("rest, as shipped", report.before_on_rest),
            ("rest, recalibrated", report.after_on_rest)]  # fmt: skip
    for label, item in rows:
        if item is not None:
            table.add_row(f"{label} (n={item.n})", item.shown("auc"), item.shown("brier"),
                          item.shown("ece"), item.shown("calibration_in_the_large", 2),
                          item.shown("calibration_intercept", 2),
                          item.shown("calibration_slope", 2))  # fmt: skip
    console.print(table)
    if bootstrap:
        console.print(f"95 % bootstrap intervals ({bootstrap} resamples) in brackets.")
    if report.does_not_rank:
        console.print(f"[bold red]Do not use[/] {report.warnings[-1]}", soft_wrap=True)
    choice = report.recalibration
    if choice is None:
        return
    if choice.does_not_rank:
        console.print(f"Not recalibrated: {choice.reason}", soft_wrap=True)
        return
    console.print(
        f"Recalibration chosen on {report.recalibration_rows} rows ({choice.events} events): "
        f"[bold]{choice.method.label}[/], logit(new risk) = {choice.intercept:+.2f} + "
        f"{choice.slope:.2f} x logit(risk). The 'rest' rows were not used to choose or fit it."
    )
    console.print(f"Why: {choice.reason}", soft_wrap=True)
