"""`clinsight tune`: hyper-parameter search with Ray Tune (ASHA); the best trial registered.

Trials run on CLINSIGHT_RAY_ADDRESS (or RAY_ADDRESS), else on a local Ray instance with
--workers CPUs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clinsight.cli.output import console
from clinsight.cli.progression import OutcomesOpt, SetOpt, stay_set
from clinsight.config import get_settings

if TYPE_CHECKING:
    from clinsight.registry.versions import RegisteredVersion
    from clinsight.services.tuning import SearchSettings, TuningOutcome

__all__ = ["app", "tune_image", "tune_progression", "tune_risk"]

app = typer.Typer(help="Search hyper-parameters with Ray Tune (ASHA).", no_args_is_help=True)

TrialsOpt = Annotated[int, typer.Option(min=1, help="Configurations sampled (seeded).")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Trials at once (one CPU each).")]


def _print(outcome: TuningOutcome, what: str) -> None:
    table = Table(title=f"{what}: {len(outcome.trials)} trials, {outcome.stopped_early} "
                        "stopped early by ASHA")  # fmt: skip
    for column in ("configuration", "val AUC", "steps", "stopped early"):
        table.add_column(column)
    for trial in sorted(outcome.trials, key=lambda t: -t.val_auc):
        config = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.config.items())  # fmt: skip
        table.add_row(config, f"{trial.val_auc:.4f}", str(trial.steps),
                      "yes" if trial.stopped_early else "")  # fmt: skip
    console.print(table)
    console.print(f"Best validation AUC {outcome.best.val_auc:.4f}; search "
                  f"{outcome.search_seconds / 60:.1f} min.")  # fmt: skip


def _search(trials: int, workers: int, seed: int) -> SearchSettings:
    """The search size and the configured Ray cluster (CLINSIGHT_RAY_ADDRESS)."""
    from clinsight.services.tuning import SearchSettings

    settings = get_settings()
    return SearchSettings(trials=trials, workers=workers, seed=seed,
                          address=settings.ray_address,
                          object_store_mb=settings.ray_object_store_mb)  # fmt: skip


def _print_registered(version: RegisteredVersion | None) -> None:
    if version is not None:
        console.print(f"[green]Registered[/] {version.name} v{version.version} "
                      f"(stage {version.stage}); card: {version.card_path}")  # fmt: skip


@app.command("risk")
def tune_risk(
    dataset: Annotated[str, typer.Option(help="Built-in data set: wdbc, cleveland or pima.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the data set).")] = None,
    trials: TrialsOpt = 16,
    workers: WorkersOpt = 2,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    repeats: Annotated[int, typer.Option(min=1, help="CV repeats (ASHA's steps).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the sampling and the folds.")] = 0,
) -> None:
    """Search risk models by repeated CV (ASHA over repeats); register the best as a candidate."""
    from clinsight.data.tabular import load_dataset
    from clinsight.services.tuning import tune_risk as run

    settings = get_settings()
    data = load_dataset(dataset, settings.resolved_data_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    search = _search(trials, workers, seed)
    with console.status(f"Searching {trials} configurations on {data.spec.name}…"):
        outcome = run(
            data, registry_dir=settings.resolved_registry_dir, name=name or dataset.lower(),
            storage=settings.home / "runs" / f"tune-{dataset}-{stamp}", search=search,
            n_splits=folds, n_repeats=repeats,
        )  # fmt: skip
    _print(outcome, data.spec.name)
    _print_registered(getattr(outcome.registered, "version", None))


@app.command("image")
def tune_image(
    dataset: Annotated[str, typer.Option(help="MedMNIST dataset, e.g. pneumoniamnist.")],
    size: Annotated[int, typer.Option(help="Image size of the dataset file.")] = 28,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per trial (ASHA's steps).")] = 10,
    architecture: Annotated[
        str, typer.Option(help="Network: cnn, resnet18, resnet10.")
    ] = "resnet18",
    train_subset: Annotated[
        int | None, typer.Option(help="Use only this many training images (quick searches).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Registry name (default: the dataset).")] = None,
    trials: TrialsOpt = 8,
    workers: WorkersOpt = 2,
    seed: Annotated[int, typer.Option(help="Seed of the sampling and the training.")] = 0,
    run_dir: Annotated[
        Path | None, typer.Option(help="Folder of the search and the best run.")
    ] = None,
) -> None:
    """Search image training settings on validation AUC (ASHA over epochs); train the best
    again, evaluate it once on the test split and register it."""
    from clinsight.data.medmnist import dataset_info
    from clinsight.imaging.specs import TrainConfig
    from clinsight.services.tuning import tune_image as run

    settings = get_settings()
    info = dataset_info(dataset)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = run_dir or settings.home / "runs" / f"tune-{info.name}-{stamp}"
    base = TrainConfig(architecture=architecture, seed=seed, train_subset=train_subset)
    search = _search(trials, workers, seed)
    with console.status(f"Searching {trials} configurations on {info.name}…"):
        outcome = run(
            settings.resolved_data_dir, settings.resolved_registry_dir, info.name, base,
            size=size, epochs=epochs, name=name, run_dir=folder, search=search,
        )  # fmt: skip
    _print(outcome, info.name)
    _print_registered(getattr(outcome.registered, "model", None))
    console.print(f"Run folder: {folder}")


@app.command("progression")
def tune_progression(
    folder: SetOpt = None,
    outcomes: OutcomesOpt = None,
    name: Annotated[str, typer.Option(help="Model name.")] = "mortality48-tuned",
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per trial (ASHA's steps).")] = 10,
    trials: TrialsOpt = 8,
    workers: WorkersOpt = 2,
    seed: Annotated[int, typer.Option(help="Seed of the sampling and the training.")] = 0,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap replicates.")] = 1000,
) -> None:
    """Search sequence models on the set's validation stays (ASHA over epochs, validation
    AUROC); train the best again on the same split, calibrate and register it."""
    from clinsight.sequence.training import SequenceTrainConfig
    from clinsight.services.tuning import tune_progression as run

    settings = get_settings()
    stays, outcome_file = stay_set(folder, outcomes, "a")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    search = _search(trials, workers, seed)
    with console.status(f"Searching {trials} configurations on {stays.name}…"):
        outcome = run(
            stays, outcome_file, SequenceTrainConfig(seed=seed),
            registry_dir=settings.resolved_registry_dir, name=name,
            storage=settings.home / "runs" / f"tune-{name}-{stamp}", search=search,
            epochs=epochs, bootstrap=bootstrap,
        )  # fmt: skip
    _print(outcome, stays.name)
    _print_registered(getattr(outcome.registered, "version", None))
