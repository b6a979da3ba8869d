"""`clinsight predict`: use a registered model on new data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinsight.cli.options import StageOpt, VersionOpt
from clinsight.cli.output import console
from clinsight.config import get_settings

__all__ = ["app", "predict_batch", "predict_image"]

app = typer.Typer(help="Use a registered model on new data.", no_args_is_help=True)


@app.command("image")
def predict_image(
    path: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file.")],
    model: Annotated[str, typer.Option(help="Registered model name.")] = "pneumoniamnist",
    version: VersionOpt = None,
    stage: StageOpt = None,
    frame: Annotated[int | None, typer.Option(help="Frame of a multi-frame DICOM.")] = None,
    heatmap: Annotated[Path | None, typer.Option(help="Write a Grad-CAM overlay PNG here.")] = None,
    birth_date: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The patient's birth date: warns when their "
            "age is outside the model's intended population.",
        ),
    ] = None,
    study_date: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="The study date (default: the DICOM's, else today)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Diagnose one image with a registered model (calibrated probability, optional heat map)."""
    from clinsight.data.images import read_image
    from clinsight.inference.cache import model_cache
    from clinsight.inference.predictors import ImagePredictor
    from clinsight.services.diagnosis import diagnose_image
    from clinsight.services.explanation_lungs import LungModels, image_lung_share
    from clinsight.services.predictions import warns_only

    settings = get_settings()
    predictor = ImagePredictor.from_registry(
        settings.resolved_registry_dir, model, version, stage, threads=settings.threads
    )
    on = study_date.date() if study_date else None
    if on is None and birth_date is not None:
        from clinsight.data.dicom_patient import read_dicom_patient

        on = read_dicom_patient(path.read_bytes()).study_date if path.is_file() else None
    image = read_image(path, frame=frame)
    result = diagnose_image(
        predictor, image, heatmap_path=heatmap,
        birth_date=birth_date.date() if birth_date else None, study_date=on,
        warn_only=warns_only(predictor, settings),
    )  # fmt: skip
    lungs = None
    if not result.refused:
        segmenters = model_cache(settings.resolved_registry_dir, threads=settings.threads)
        lungs = image_lung_share(LungModels.of(settings, segmenters.segmentation), predictor,
                                 image, heat=result.heat)  # fmt: skip
    if as_json:
        shown = {**result.to_dict(), "lungs": None if lungs is None else lungs.to_dict()}
        console.print_json(json.dumps(shown))
        return
    prediction, check = result.prediction, result.intended_use
    if check is not None and check.refused:
        console.print(f"[bold red]{path.name}: no finding (outside the intended use of "
                      f"{prediction.model_name} v{prediction.model_version})[/]")  # fmt: skip
        for reason in check.reasons:
            console.print(f"[bold red]Refused:[/] {reason}")
        return
    if prediction.label_probability is None:
        title = f"{path.name}: Indeterminate"
    else:
        title = f"{path.name}: {prediction.decision} ({prediction.label_probability:.1%})"
    table = Table(title=title)
    table.add_column("class")
    table.add_column("calibrated probability")
    for label, probability in prediction.probabilities.items():
        table.add_row(label, f"{probability:.4f}")
    console.print(table)
    band = prediction.thresholds
    if band is not None:
        console.print(
            f"P(positive) {prediction.positive_probability:.1%}: positive at >= {band.high:.1%}, "
            f"negative below {min(band.low, band.high):.1%}"
            f"{', indeterminate in between' if band.has_band else ''} "
            f"({band.split} sensitivity {band.sensitivity:.1%}, specificity {band.specificity:.1%})"
        )
    console.print(
        f"Model {prediction.model_name} v{prediction.model_version} "
        f"(sha256 {prediction.artifact_sha256[:12]}…), {prediction.latency_ms:.1f} ms"
    )
    if result.heatmap is not None:
        console.print(f"Grad-CAM overlay: {result.heatmap}")
    if lungs is not None:
        lead = "[bold yellow]Warning:[/]" if lungs.mostly_outside else "Explanation check:"
        console.print(f"{lead} {lungs.sentence()}")
    for warning in (*result.warnings, *(check.reasons if check else ())):
        console.print(f"[bold yellow]Warning:[/] {warning}")


@app.command("batch")
def predict_batch(
    source: Annotated[
        Path,
        typer.Argument(
            help="A folder of PNG, JPEG or DICOM files (walked recursively), or a study list: "
            "a text file naming one DICOM file or study folder per line."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Results table (Parquet), one row per image.")] = Path(
        "results.parquet"
    ),
    model: Annotated[str, typer.Option(help="Registered model name.")] = "pneumoniamnist",
    version: VersionOpt = None,
    stage: StageOpt = None,
    backend: Annotated[
        Literal["local", "ray"],
        typer.Option(
            help="local: this process; ray: Ray Data on CLINSIGHT_RAY_ADDRESS "
            "(default: a local Ray instance with --workers CPUs)."
        ),
    ] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Ray actors (one CPU each).")] = 2,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per ONNX Runtime run.")] = 64,
    fhir_bundle: Annotated[
        Path | None, typer.Option(help="Also write the results as a FHIR Bundle (JSON) here.")
    ] = None,
) -> None:
    """Predict every image of a folder or DICOM study list into a Parquet table.

    The images are read from disk and the results written to --out (and --fhir-bundle): a
    batch run stores nothing in the patient store. Images already in --out are skipped, so
    an interrupted run resumes; unreadable files are listed, with the reason, in
    <out>.errors.parquet and tried again on the next run.
    """
    from clinsight.inference.cache import model_cache
    from clinsight.services.batch_predict import predict_batch as run_batch
    from clinsight.services.explanation_lungs import LungModels

    settings = get_settings()
    segmenters = model_cache(settings.resolved_registry_dir, threads=settings.threads)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    # The bar starts with the first batch, so a wrong input or model is one plain line.
    bar = Progress(*columns, TimeElapsedColumn(), console=console)
    task = bar.add_task(f"Predicting with {model} ({backend})", total=None)

    def on_batch(done: int, total: int) -> None:
        bar.start()
        bar.update(task, completed=done, total=total)

    try:
        outcome = run_batch(
            source, out, registry_dir=settings.resolved_registry_dir, model_name=model,
            version=version, stage=stage, backend=backend, workers=workers,
            threads=settings.threads, batch_size=batch_size,
            warn_only=model in settings.intended_use_warn_only,
            ray_address=settings.ray_address, object_store_mb=settings.ray_object_store_mb,
            fhir_bundle=fhir_bundle, progress=on_batch,
            lungs=LungModels.of(settings, segmenters.segmentation),
        )  # fmt: skip
    finally:
        bar.stop()
    console.print(
        f"{outcome.model_name} v{outcome.model_version}: {outcome.predicted} images predicted "
        f"({outcome.refused} outside the intended use, no finding), {outcome.skipped} already "
        f"in {outcome.out.name}, {len(outcome.errors)} unreadable; "
        f"{outcome.images_per_second:.1f} images/s."
    )
    if len(outcome.errors):
        table = Table(title=f"Unreadable inputs (all in {outcome.errors_file.name})")
        table.add_column("file")
        table.add_column("reason")
        for row in outcome.errors.head(20).itertuples(index=False):
            table.add_row(str(row.key), str(row.reason))
        console.print(table)
    if outcome.lung_flagged:
        console.print(
            f"[bold yellow]Warning:[/] {outcome.lung_flagged} finding(s) with an explanation "
            "mostly outside the lungs (column lung_mostly_outside)."
        )
    console.print(f"Results: {outcome.out}")
    if outcome.bundle is not None:
        console.print(f"FHIR Bundle: {outcome.bundle}")
