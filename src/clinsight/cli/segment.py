"""`clinsight segment`: segmentation models — train (and register), evaluate a registered
model on any folder in a supported layout, predict one image (mask, outline, areas).
Listing and stage changes: `clinsight models ... segmentation`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinsight.cli.output import console, fail
from clinsight.config import get_settings

if TYPE_CHECKING:
    from clinsight.evaluation.segmentation import SegmentationReport
    from clinsight.imaging.segmentation import SegmentationEpoch

__all__ = ["app", "evaluate", "predict", "train"]

app = typer.Typer(
    help="Segmentation models: train, evaluate, predict (the registry: `clinsight models`)."
)

ARCHITECTURES = ("unet", "attention_unet", "segresnet", "unetplusplus")
LayoutOpt = Annotated[
    str | None,
    typer.Option(help="kvasir-seg, covid19-cxr-segmentations or folder (default: guessed)."),
]
VersionOpt = Annotated[
    int | None, typer.Option("--version", help="Version (default: production, else newest).")
]


def _print_report(title: str, report: SegmentationReport) -> None:
    table = Table(title=title)
    for column in ("metric", "mean", "95% interval", "undefined"):
        table.add_column(column)
    for key, value in report.values.items():
        low, high = report.intervals[key]
        metric = key.rsplit(".", 1)[-1]
        unit = f" ({report.units})" if metric == "hd95" else ""
        table.add_row(f"{key}{unit}", f"{value:.3f}", f"{low:.3f} – {high:.3f}",
                      str(report.undefined.get(metric, 0)) if "." not in key else "")  # fmt: skip
    console.print(table)


@app.command("train")
def train(
    data: Annotated[Path, typer.Option(help="Dataset folder (images/ + masks/, or a layout).")],
    layout: LayoutOpt = None,
    name: Annotated[str | None, typer.Option(help="Registry name (default: dataset).")] = None,
    architecture: Annotated[str, typer.Option(help=", ".join(ARCHITECTURES))] = "unet",
    width: Annotated[int, typer.Option(help="Channels of the first stage.")] = 16,
    depth: Annotated[int, typer.Option(help="Down-sampling steps (2-5).")] = 4,
    image_size: Annotated[int, typer.Option(help="Square network input side.")] = 128,
    epochs: Annotated[int, typer.Option(help="Most epochs to run.")] = 100,
    time_budget: Annotated[float | None, typer.Option(help="Stop after this many minutes.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 8,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seed of the split and the run.")] = 0,
    heart: Annotated[bool, typer.Option(help="CXR layout: add the heart as a label.")] = False,
    run_dir: Annotated[Path | None, typer.Option(help="Checkpoint and plots folder.")] = None,
    register: Annotated[bool, typer.Option(help="Register the trained model.")] = True,
    keep_largest: Annotated[
        int,
        typer.Option(
            min=0,
            help="Keep this many largest pieces of each label, holes filled "
            "(e.g. 2 for both lungs; 0: off).",
        ),
    ] = 0,
) -> None:
    """Train a segmentation network (seeded image-level split, early stopping on validation
    Dice, resumable from --run-dir), score validation, fit the intended-use gate, register."""
    from clinsight.imaging.specs import TrainConfig
    from clinsight.services.segmentation_training import train_and_register_segmentation

    if architecture not in ARCHITECTURES:
        raise fail(f"Unknown --architecture {architecture!r}; use {', '.join(ARCHITECTURES)}.")
    settings = get_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = run_dir or settings.home / "runs" / f"segment-{data.name}-{stamp}"
    config = TrainConfig(
        architecture=architecture, width=width, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, weight_decay=1e-4, dropout=0.0,
        time_budget_minutes=time_budget, seed=seed, threads=settings.threads,
    )  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"Training on {data.name}", total=epochs)

        def on_epoch(record: SegmentationEpoch, planned: int) -> None:
            progress.update(
                task, completed=record.epoch, total=planned,
                description=(f"Training on {data.name} · epoch {record.epoch} · loss "
                             f"{record.train_loss:.3f} · val Dice {record.val_dice:.3f}"),
            )  # fmt: skip

        outcome = train_and_register_segmentation(
            settings.resolved_registry_dir, data, config, layout=layout, name=name,
            image_size=image_size, depth=depth, heart=heart, run_dir=folder,
            register=register, progress=on_epoch, keep_largest=keep_largest,
        )  # fmt: skip
    result = outcome.train
    console.print(
        f"Trained {result.epochs_run} epochs in {result.seconds / 60:.1f} min (best epoch "
        f"{result.best_epoch}, stopped by {result.stopped_because})."
    )
    _print_report(f"Validation ({len(outcome.validation.case_ids)} images)", outcome.validation)
    if outcome.model is not None:
        console.print(
            f"Registered segmentation model {outcome.model.name} v{outcome.model.version} "
            f"(stage {outcome.model.stage}); card: {outcome.model.card_path}"
        )


@app.command("evaluate")
def evaluate(
    name: Annotated[str, typer.Option(help="Registered segmentation model.")],
    data: Annotated[Path, typer.Option(help="Folder to score, in a supported layout.")],
    layout: LayoutOpt = None,
    version: VersionOpt = None,
    plots: Annotated[Path | None, typer.Option(help="Write the Dice histogram here.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the report as JSON.")] = None,
) -> None:
    """Score a registered model on every image of a folder (Dice, IoU, HD95, boundary
    precision per image, means with bootstrap 95% intervals)."""
    from clinsight.services.segmentation_training import evaluate_segmentation

    settings = get_settings()
    report = evaluate_segmentation(
        settings.resolved_registry_dir, name, data, version=version, layout=layout,
        plots_dir=plots, threads=settings.threads,
    )  # fmt: skip
    _print_report(f"{name} on {data.name} ({len(report.case_ids)} images)", report)
    if output is not None:
        output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        console.print(f"Report written to {output}")


@app.command("predict")
def predict(
    name: Annotated[str, typer.Option(help="Registered segmentation model.")],
    image: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file.")],
    version: VersionOpt = None,
    outline: Annotated[Path | None, typer.Option(help="Write the outline PNG here.")] = None,
    mask: Annotated[Path | None, typer.Option(help="Write the label mask PNG here.")] = None,
) -> None:
    """Segment one image: the intended-use check, each label's area (pixels; mm² with a
    DICOM pixel spacing), and optionally the outline picture and the mask."""
    import numpy as np
    from PIL import Image

    from clinsight.data.source import read_source_bytes
    from clinsight.inference.cache import model_cache
    from clinsight.registry.versions import ModelKind
    from clinsight.services.segmentation import outline_png, segment_content

    settings = get_settings()
    cache = model_cache(settings.resolved_registry_dir, threads=settings.threads)
    predictor = cache.load(ModelKind.SEGMENTATION, name, version, newest=True).model
    segmented = segment_content(predictor, read_source_bytes(image), settings)
    result = segmented.result
    console.print_json(json.dumps(result.to_dict()))
    if result.refused:
        raise fail("The image is outside the model's intended use: " + " ".join(
            result.intended_use.reasons))  # fmt: skip
    assert result.mask is not None
    if outline is not None:
        outline.write_bytes(outline_png(segmented.image.pixels, result.mask))
        console.print(f"Outline written to {outline}")
    if mask is not None:
        scaled = (result.mask * (255 // max(1, len(result.labels) - 1))).astype(np.uint8)
        Image.fromarray(scaled).save(mask, format="PNG")
        console.print(f"Mask written to {mask}")
