"""`clinsight evaluate`: a registered model's metrics on a dataset's test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clinsight.cli.options import StageOpt, VersionOpt
from clinsight.cli.output import console, print_report
from clinsight.config import get_settings

__all__ = ["app", "evaluate"]

app = typer.Typer()


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
    record, report = evaluate_registered_model(
        settings.resolved_data_dir, settings.resolved_registry_dir, model,
        version=version, stage=stage, dataset=dataset, out_dir=out, threads=settings.threads,
    )  # fmt: skip
    print_report(f"{record.name} v{record.version}: test split", report)
    if out is not None:
        (out / "evaluation.json").write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"Plots and evaluation.json in {out}")
