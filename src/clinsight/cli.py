"""The `clinsight` command line: data, training, evaluation, prediction and the model registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from clinsight.cli_nlp import register_nlp_commands
from clinsight.cli_output import console, fail
from clinsight.cli_risk import register_risk_commands
from clinsight.cli_serve import register_service_commands
from clinsight.config import get_settings
from clinsight.data.medmnist import CATALOGUE, dataset_info, fetch_medmnist, medmnist_path
from clinsight.errors import ClinsightError
from clinsight.evaluation.report import EvaluationReport
from clinsight.imaging.networks import ARCHITECTURES
from clinsight.imaging.training import EpochRecord, TrainConfig
from clinsight.registry.stages import Stage

__all__ = ["app"]


app = typer.Typer(
    name="clinsight",
    help="Clinsight: train, evaluate, register and use clinical decision-support models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _check_settings() -> None:
    """Refuse to run any command with malformed CLINSIGHT_ settings, saying which."""
    try:
        get_settings()
    except ClinsightError as exc:
        raise fail(exc) from exc


data_app = typer.Typer(
    help="Find and fetch the public datasets Clinsight trains on.", no_args_is_help=True
)
train_app = typer.Typer(help="Train a model and register it.", no_args_is_help=True)
predict_app = typer.Typer(help="Use a registered model on new data.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model registry: versions, cards, promotion and rollback.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(predict_app, name="predict")
app.add_typer(models_app, name="models")
register_service_commands(app)
register_nlp_commands(app)
register_risk_commands(app)

VersionOpt = Annotated[int | None, typer.Option("--version", "-v", help="Version number.")]
StageOpt = Annotated[
    Stage | None, typer.Option(help="Pick the newest version at this stage instead.")
]


@data_app.command("list")
def data_list() -> None:
    """List the MedMNIST datasets and whether each is in the data directory."""
    data_dir = get_settings().resolved_data_dir
    table = Table(title=f"MedMNIST 2D datasets (data directory: {data_dir})")
    for column in ("name", "task", "classes", "channels", "sizes", "present"):
        table.add_column(column)
    for info in CATALOGUE.values():
        present = [
            str(s) for s in sorted(info.md5) if medmnist_path(data_dir, info.name, s).exists()
        ]
        table.add_row(
            info.name,
            info.task.value,
            str(info.num_classes),
            str(info.channels),
            ",".join(str(s) for s in sorted(info.md5)),
            ",".join(present) or "-",
        )
    console.print(table)


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. pneumoniamnist.")],
    size: Annotated[int, typer.Option(help="Image size: 28, 64, 128 or 224.")] = 28,
) -> None:
    """Make sure a dataset is in the data directory (download if allowed) and verify its md5."""
    settings = get_settings()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"{name} ({size}px)", total=None)
        try:
            path = fetch_medmnist(
                settings.resolved_data_dir,
                name,
                size,
                allow_download=settings.allow_download,
                progress=lambda done, total: progress.update(
                    task, completed=done, total=total or None
                ),
            )
        except ClinsightError as exc:
            raise fail(exc) from exc
    console.print(f"[green]OK[/] {path} (md5 verified)")


def _print_report(title: str, report: EvaluationReport) -> None:
    table = Table(title=title)
    for column in ("metric", "value", "95% interval"):
        table.add_column(column)
    for name, value in report.metrics.values.items():
        low, high = report.metrics.intervals.get(name, (float("nan"), float("nan")))
        table.add_row(name, f"{value:.4f}", f"{low:.4f} - {high:.4f}")
    table.add_row("ECE (raw)", f"{report.ece_before:.4f}", "")
    table.add_row(f"ECE (T={report.temperature:.3f})", f"{report.ece_after:.4f}", "")
    console.print(table)


@train_app.command("image")
def train_image(
    dataset: Annotated[str, typer.Option(help="MedMNIST dataset, e.g. pneumoniamnist.")],
    size: Annotated[int, typer.Option(help="Image size of the dataset file: 28/64/128/224.")] = 28,
    architecture: Annotated[
        str, typer.Option(help=f"Network: {', '.join(sorted(ARCHITECTURES))}.")
    ] = TrainConfig.architecture,
    width: Annotated[int, typer.Option(help="Channels of the first stage.")] = TrainConfig.width,
    epochs: Annotated[int, typer.Option(help="Most epochs to run.")] = TrainConfig.epochs,
    time_budget: Annotated[
        float | None, typer.Option(help="Stop training after this many minutes.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Images per optimisation step.")
    ] = TrainConfig.batch_size,
    learning_rate: Annotated[
        float, typer.Option(help="Peak AdamW learning rate.")
    ] = TrainConfig.learning_rate,
    patience: Annotated[
        int, typer.Option(help="Epochs without better val AUC.")
    ] = TrainConfig.patience,
    seed: Annotated[int, typer.Option(help="Random seed (runs are reproducible).")] = 0,
    ensemble: Annotated[
        int,
        typer.Option(
            min=1,
            help=(
                "Number of networks to train, each from its own random start, whose answers "
                "are averaged into one model (a 'deep ensemble'). Usually steadier and better "
                "calibrated than one network; training and prediction take about this many "
                "times longer, and a --time-budget is shared between the networks."
            ),
        ),
    ] = TrainConfig.ensemble,
    name: Annotated[
        str | None, typer.Option(help="Registry name (default: the dataset name).")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Folder for checkpoint, plots and evaluation.json.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the run folder's checkpoint.")
    ] = False,
    register: Annotated[bool, typer.Option(help="Register the trained model.")] = True,
    train_subset: Annotated[
        int | None, typer.Option(help="Use only this many training images (quick trials).")
    ] = None,
) -> None:
    """Train an image classifier, evaluate it on the untouched test split, register it."""
    from clinsight.services.training import train_and_register

    settings = get_settings()
    try:
        info = dataset_info(dataset)
    except ClinsightError as exc:
        raise fail(exc) from exc
    if architecture not in ARCHITECTURES:
        raise fail(f"Unknown --architecture {architecture!r}; use {', '.join(ARCHITECTURES)}.")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = run_dir or settings.home / "runs" / f"{info.name}-{stamp}"
    config = TrainConfig(
        architecture=architecture, width=width, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, time_budget_minutes=time_budget,
        seed=seed, threads=settings.threads, train_subset=train_subset, ensemble=ensemble,
    )  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"Training {info.name}", total=epochs)

        def on_epoch(record: EpochRecord, planned: int) -> None:
            network = f" · network {record.member + 1}/{ensemble}" if ensemble > 1 else ""
            progress.update(
                task, completed=record.epoch, total=planned,
                description=(
                    f"Training {info.name}{network} · epoch {record.epoch} · loss "
                    f"{record.train_loss:.3f} · val AUC {record.val_auc:.4f}"
                ),
            )  # fmt: skip

        try:
            outcome = train_and_register(
                settings.resolved_data_dir, settings.resolved_registry_dir, info.name, config,
                size=size, name=name, run_dir=folder, register=register, resume=resume,
                progress=on_epoch,
            )  # fmt: skip
        except ClinsightError as exc:
            raise fail(exc) from exc
    result = outcome.train
    if len(result.members) > 1:
        for member in result.members:
            console.print(
                f"Network {member.member + 1}/{len(result.members)} (seed {member.seed}): "
                f"{member.epochs_run} epochs in {member.seconds / 60:.1f} min (best epoch "
                f"{member.best_epoch}, val AUC {member.best_val_auc:.4f}, stopped by "
                f"{member.stopped_because})."
            )
        console.print(
            f"Ensemble of {len(result.members)} networks: val AUC {result.val_auc:.4f}, "
            f"{result.seconds / 60:.1f} min in all."
        )
    else:
        console.print(
            f"Trained {result.epochs_run} epochs in {result.seconds / 60:.1f} min "
            f"(best epoch {result.best_epoch}, stopped by {result.stopped_because})."
        )
    _print_report(f"{info.name}: test split ({outcome.report.metrics.n} images)", outcome.report)
    if outcome.model is not None:
        console.print(
            f"[green]Registered[/] {outcome.model.name} v{outcome.model.version} "
            f"(stage {outcome.model.stage}); card: {outcome.model.card_path}"
        )
    console.print(f"Run folder: {folder}")


@app.command("evaluate")
def evaluate(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: VersionOpt = None,
    stage: StageOpt = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset to test on (default: the model's own).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for plots and evaluation.json.")] = None,
) -> None:
    """Evaluate a registered model through ONNX Runtime on a dataset's test split."""
    from clinsight.services.training import evaluate_registered_model

    settings = get_settings()
    try:
        record, report = evaluate_registered_model(
            settings.resolved_data_dir, settings.resolved_registry_dir, model,
            version=version, stage=stage, dataset=dataset, out_dir=out,
            threads=settings.threads,
        )  # fmt: skip
    except ClinsightError as exc:
        raise fail(exc) from exc
    _print_report(f"{record.name} v{record.version}: test split", report)
    if out is not None:
        (out / "evaluation.json").write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"Plots and evaluation.json in {out}")


@predict_app.command("image")
def predict_image(
    path: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file.")],
    model: Annotated[str, typer.Option(help="Registered model name.")] = "pneumoniamnist",
    version: VersionOpt = None,
    stage: StageOpt = None,
    frame: Annotated[int | None, typer.Option(help="Frame of a multi-frame DICOM.")] = None,
    heatmap: Annotated[Path | None, typer.Option(help="Write a Grad-CAM overlay PNG here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Diagnose one image with a registered model (calibrated probability, optional heat map)."""
    from clinsight.inference.predictors import ImagePredictor
    from clinsight.services.diagnosis import diagnose_image

    settings = get_settings()
    try:
        predictor = ImagePredictor.from_registry(
            settings.resolved_registry_dir, model, version, stage, threads=settings.threads
        )
        result = diagnose_image(predictor, path, frame=frame, heatmap_path=heatmap)
    except ClinsightError as exc:
        raise fail(exc) from exc
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    prediction = result.prediction
    table = Table(title=f"{path.name}: {prediction.label} ({prediction.probability:.1%})")
    table.add_column("class")
    table.add_column("calibrated probability")
    for label, probability in prediction.probabilities.items():
        table.add_row(label, f"{probability:.4f}")
    console.print(table)
    console.print(
        f"Model {prediction.model_name} v{prediction.model_version} "
        f"(sha256 {prediction.artifact_sha256[:12]}…), {prediction.latency_ms:.1f} ms"
    )
    if result.heatmap is not None:
        console.print(f"Grad-CAM overlay: {result.heatmap}")
    for warning in result.warnings:
        console.print(f"[bold yellow]Warning:[/] {warning}")


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
) -> None:
    """List registered models with their stage and headline test metrics."""
    from clinsight.registry.image import list_models

    versions = list_models(get_settings().resolved_registry_dir, name)
    table = Table(title="Registered models")
    for column in ("name", "version", "stage", "architecture", "test AUC", "test ACC", "created"):
        table.add_column(column)
    for v in versions:
        values = v.metrics.get("metrics", {}).get("values", {})
        table.add_row(
            v.name, str(v.version), str(v.stage), v.network_config.architecture,
            f"{values.get('auc', float('nan')):.4f}", f"{values.get('accuracy', float('nan')):.4f}",
            v.created,
        )  # fmt: skip
    console.print(table if versions else "No models registered yet: run `clinsight train image`.")


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: VersionOpt = None,
    stage: StageOpt = None,
) -> None:
    """Show a model card (verifies the version's files first)."""
    from clinsight.registry.image import get_model

    try:
        record = get_model(get_settings().resolved_registry_dir, name, version, stage)
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print(Markdown(record.card_path.read_text()))
    console.print(f"Folder: {record.path}")


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    stage: Annotated[Stage, typer.Option(help="Target stage.")] = Stage.PRODUCTION,
    note: Annotated[str, typer.Option(help="Why (kept in the stage history).")] = "",
) -> None:
    """Move a version to a stage (production archives the previous production version)."""
    from clinsight.registry.image import promote

    try:
        record = promote(get_settings().resolved_registry_dir, name, version, stage, note=note)
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print(f"[green]{record.name} v{record.version} is now {record.stage}.[/]")


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        int | None, typer.Argument(help="Version to restore (default: the previous one).")
    ] = None,
) -> None:
    """Put the previous (or a given) version back into production."""
    from clinsight.registry.image import rollback

    try:
        record = rollback(get_settings().resolved_registry_dir, name, version)
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print(f"[green]{record.name} v{record.version} is back in production.[/]")


@models_app.command("verify")
def models_verify(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to check.")],
) -> None:
    """Check every file of a version against the sha256 in its manifest."""
    from clinsight.registry.image import verify

    try:
        record = verify(get_settings().resolved_registry_dir, name, version)
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print(f"[green]OK[/] {record.name} v{record.version} sha256 {record.artifact_sha256}")


@models_app.command("history")
def models_history(name: Annotated[str, typer.Argument(help="Registered model name.")]) -> None:
    """Stage changes of a model, oldest first."""
    from clinsight.registry.image import history

    table = Table(title=f"{name}: stage history")
    for column in ("time", "version", "from", "to", "note"):
        table.add_column(column)
    for change in history(get_settings().resolved_registry_dir, name):
        table.add_row(
            change.at, str(change.version), str(change.from_stage), str(change.to_stage),
            change.note,
        )  # fmt: skip
    console.print(table)


def main() -> None:
    """Entry point used by `python -m clinsight`."""
    app()


if __name__ == "__main__":
    main()
