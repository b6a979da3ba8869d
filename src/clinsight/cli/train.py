"""`clinsight train`: train an image model, evaluate it on its test split, register it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clinsight.cli.output import console, fail, print_report
from clinsight.config import get_settings
from clinsight.imaging.specs import ARCHITECTURE_NAMES, CLASS_WEIGHTINGS, TrainConfig

if TYPE_CHECKING:
    from clinsight.imaging.training import EpochRecord

__all__ = ["app", "train_image"]

app = typer.Typer(help="Train a model and register it.", no_args_is_help=True)


@app.command("image")
def train_image(
    dataset: Annotated[str, typer.Option(help="MedMNIST dataset, e.g. pneumoniamnist.")],
    size: Annotated[int, typer.Option(help="Image size of the dataset file: 28/64/128/224.")] = 28,
    architecture: Annotated[
        str, typer.Option(help=f"Network: {', '.join(sorted(ARCHITECTURE_NAMES))}.")
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
    class_weighting: Annotated[
        str,
        typer.Option(
            help=(
                f"Loss weights per class: {', '.join(CLASS_WEIGHTINGS)}. 'auto' tries each on "
                "an imbalanced training split in short pilot runs and keeps the best "
                "validation AUC."
            )
        ),
    ] = TrainConfig.class_weighting,
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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help=(
                "Train data-parallel on this many Ray Train CPU workers (CLINSIGHT_RAY_ADDRESS "
                "for a cluster, else a local Ray instance). 1 trains in this process."
            ),
        ),
    ] = 1,
) -> None:
    """Train an image classifier, evaluate it on the untouched test split, register it."""
    from clinsight.data.medmnist import dataset_info
    from clinsight.services.training import train_and_register

    settings = get_settings()
    info = dataset_info(dataset)
    if architecture not in ARCHITECTURE_NAMES:
        raise fail(f"Unknown --architecture {architecture!r}; use {', '.join(ARCHITECTURE_NAMES)}.")
    if class_weighting not in CLASS_WEIGHTINGS:
        raise fail(
            f"Unknown --class-weighting {class_weighting!r}; use {', '.join(CLASS_WEIGHTINGS)}."
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = run_dir or settings.home / "runs" / f"{info.name}-{stamp}"
    config = TrainConfig(
        architecture=architecture, width=width, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, time_budget_minutes=time_budget,
        seed=seed, threads=settings.threads, train_subset=train_subset, ensemble=ensemble,
        class_weighting=class_weighting,
    )  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        where = f" on {workers} Ray workers (progress shown at the end)" if workers > 1 else ""
        task = progress.add_task(f"Training {info.name}{where}", total=epochs)

        def on_epoch(record: EpochRecord, planned: int) -> None:
            network = f" · network {record.member + 1}/{ensemble}" if ensemble > 1 else ""
            progress.update(
                task, completed=record.epoch, total=planned,
                description=(
                    f"Training {info.name}{network} · epoch {record.epoch} · loss "
                    f"{record.train_loss:.3f} · val AUC {record.val_auc:.4f}"
                ),
            )  # fmt: skip

        outcome = train_and_register(
            settings.resolved_data_dir, settings.resolved_registry_dir, info.name, config,
            size=size, name=name, run_dir=folder, register=register, resume=resume,
            progress=on_epoch, workers=workers, ray_address=settings.ray_address,
        )  # fmt: skip
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
    print_report(f"{info.name}: test split ({outcome.report.metrics.n} images)", outcome.report)
    if outcome.model is not None:
        console.print(
            f"[green]Registered[/] {outcome.model.name} v{outcome.model.version} "
            f"(stage {outcome.model.stage}); card: {outcome.model.card_path}"
        )
    console.print(f"Run folder: {folder}")
