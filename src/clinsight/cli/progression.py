"""`clinsight progression`: disease progression over time — train (and register) on a set in
the PhysioNet 2012 layout, evaluate a registered version on any such set, predict one stay.
Listing and stage changes: `clinsight models ... progression`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from clinsight.cli.options import AsUserOpt
from clinsight.cli.output import console, fail
from clinsight.config import get_settings
from clinsight.registry.versions import ModelKind

__all__ = ["app", "evaluate", "predict", "train"]

app = typer.Typer(help="Progression models over time: train, evaluate, predict.")

NameOpt = Annotated[str, typer.Option("--name", help="Registered progression model name.")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", help="Version (default: production, else newest).")
]
SetOpt = Annotated[
    Path | None,
    typer.Option(
        "--set", help="Folder of <RecordID>.txt stays (default: set-a of the data directory)."
    ),
]
OutcomesOpt = Annotated[
    Path | None,
    typer.Option(help="Outcomes file (default: Outcomes-<x>.txt beside the set folder)."),
]


def stay_set(folder: Path | None, outcomes: Path | None, default: str) -> tuple[Path, Path]:
    """The set folder and its outcomes file: as given, or set-`default` of the data dir."""
    from clinsight.data.physionet2012 import physionet2012_set

    if folder is None:
        return physionet2012_set(get_settings().resolved_data_dir, default)
    if outcomes is None:
        outcomes = folder.parent / f"Outcomes-{folder.name.removeprefix('set-')}.txt"
    if not folder.is_dir() or not outcomes.is_file():
        raise fail(f"{folder.name}/ or {outcomes.name} is missing; give --set and --outcomes.")
    return folder, outcomes


def _metrics_table(title: str, report: dict[str, Any]) -> Table:
    table = Table(title=title)
    for column in ("metric", "value", "95 % interval"):
        table.add_column(column)
    for key, value in report["values"].items():
        low, high = report["intervals"].get(key, [None, None])
        shown = "n/a" if low is None or high is None else f"{low:.3f}–{high:.3f}"
        table.add_row(key, "n/a" if value is None else f"{value:.3f}", shown)
    return table


@app.command("train")
def train(
    folder: SetOpt = None,
    outcomes: OutcomesOpt = None,
    name: Annotated[str, typer.Option(help="Model name.")] = "mortality48",
    architecture: Annotated[str, typer.Option(help="gru, grud, lstm or retain.")] = "gru",
    hidden: Annotated[int, typer.Option(min=4, help="Hidden units.")] = 64,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs.")] = 40,
    minutes: Annotated[float | None, typer.Option(help="Training time budget.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint folder: a rerun resumes from it.")
    ] = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap replicates.")] = 1000,
    production: Annotated[
        bool, typer.Option(help="Put the new version into production (audited).")
    ] = False,
    as_user: AsUserOpt = None,
) -> None:
    """Train a sequence model (early stopping on validation AUPRC), calibrate it on
    validation, and register it with its card."""
    from rich.progress import Progress

    from clinsight.sequence.training import SequenceEpoch, SequenceTrainConfig
    from clinsight.services.models import promote_trained
    from clinsight.services.progression import train_progression_model

    settings = get_settings()
    stays, outcome_file = stay_set(folder, outcomes, "a")
    config = SequenceTrainConfig(
        architecture=architecture, hidden=hidden, epochs=epochs, time_budget_minutes=minutes,
        seed=seed,
    )  # fmt: skip
    with Progress(console=console) as bar:
        job = bar.add_task(f"Training {architecture} on {stays.name}", total=epochs)

        def progress(record: SequenceEpoch, planned: int) -> None:
            shown = f"epoch {record.epoch}: validation AUPRC {record.val_auprc:.3f}"
            bar.update(job, completed=record.epoch, total=planned, description=shown)

        outcome = train_progression_model(
            stays, outcome_file, registry_dir=settings.resolved_registry_dir, name=name,
            config=config, bootstrap=bootstrap, checkpoint_dir=checkpoint, progress=progress,
        )  # fmt: skip
    version = outcome.version
    if version is None:
        raise fail("The model was not registered.")
    if production:
        version = promote_trained(settings, version, as_user)
    console.print(_metrics_table(
        f"{version.name} v{version.version} ({version.stage}) on validation",
        outcome.metrics["validation"],
    ))  # fmt: skip
    console.print(f"Card: {version.card_path}")


@app.command("evaluate")
def evaluate(
    name: NameOpt,
    folder: SetOpt = None,
    outcomes: OutcomesOpt = None,
    version: VersionOpt = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap replicates.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Score a registered version on a set in the PhysioNet 2012 layout (default: set-b)."""
    from clinsight.inference.cache import ModelCache
    from clinsight.inference.progression import ProgressionPredictor
    from clinsight.services.progression import evaluate_progression

    stays, outcome_file = stay_set(folder, outcomes, "b")
    loaded = ModelCache(get_settings().resolved_registry_dir).load(
        ModelKind.PROGRESSION, name, version, newest=True
    )
    predictor = cast(ProgressionPredictor, loaded.model)
    with console.status(f"Scoring {stays.name}…"):
        report = evaluate_progression(predictor, stays, outcome_file, bootstrap=bootstrap)
    if as_json:
        console.print_json(json.dumps(report))
        return
    console.print(_metrics_table(
        f"{name} v{predictor.version.version} on {stays.name}: {report['n']} stays, "
        f"{report['positives']} deaths", report,
    ))  # fmt: skip
    for line in report["skipped"]:
        console.print(f"  {line}")


@app.command("predict")
def predict(
    name: NameOpt,
    stay: Annotated[Path, typer.Option("--stay", help="One stay file (<RecordID>.txt).")],
    version: VersionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """One stay's risk of in-hospital death at 48 h and the variables that drove it."""
    from clinsight.inference.cache import ModelCache
    from clinsight.inference.progression import ProgressionPredictor
    from clinsight.services.progression import predict_progression

    if not stay.is_file():
        raise fail(f"{stay.name} is not a file.")
    loaded = ModelCache(get_settings().resolved_registry_dir).load(
        ModelKind.PROGRESSION, name, version, newest=True
    )
    result = predict_progression(cast(ProgressionPredictor, loaded.model), stay)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    console.print(
        f"[bold]Risk of in-hospital death {result.risk:.1%}[/] — stay {result.patient_id}, "
        f"{result.model.name} v{result.model.version}"
    )
    table = Table(title=f"What drove it ({result.method}, logit units)")
    for column in ("variable", "strongest hours", "contribution", ""):
        table.add_column(column)
    for driver in result.drivers:
        low, high = driver.hours
        table.add_row(driver.variable, f"{low:g}–{high:g} h", f"{driver.contribution:+.2f}",
                      driver.direction)  # fmt: skip
    console.print(table)
    for line in result.skipped:
        console.print(f"  {line}")
