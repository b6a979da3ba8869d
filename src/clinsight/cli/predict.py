"""`clinsight predict`: use a registered model on new data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from clinsight.cli.options import StageOpt, VersionOpt
from clinsight.cli.output import console
from clinsight.config import get_settings

__all__ = ["app", "predict_image"]

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
    from clinsight.inference.predictors import ImagePredictor
    from clinsight.services.diagnosis import diagnose_image
    from clinsight.services.predictions import warns_only

    settings = get_settings()
    predictor = ImagePredictor.from_registry(
        settings.resolved_registry_dir, model, version, stage, threads=settings.threads
    )
    on = study_date.date() if study_date else None
    if on is None and birth_date is not None:
        from clinsight.data.dicom_patient import read_dicom_patient

        on = read_dicom_patient(path.read_bytes()).study_date if path.is_file() else None
    result = diagnose_image(
        predictor, path, frame=frame, heatmap_path=heatmap,
        birth_date=birth_date.date() if birth_date else None, study_date=on,
        warn_only=warns_only(predictor, settings),
    )  # fmt: skip
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
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
    for warning in (*result.warnings, *(check.reasons if check else ())):
        console.print(f"[bold yellow]Warning:[/] {warning}")
