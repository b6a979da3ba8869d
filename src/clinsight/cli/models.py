"""`clinsight models`: the image-model registry — versions, cards, promotion and rollback."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clinsight.cli.options import StageOpt, VersionOpt
from clinsight.cli.output import console
from clinsight.config import get_settings
from clinsight.registry.stages import Stage

__all__ = [
    "app",
    "models_history",
    "models_list",
    "models_promote",
    "models_rollback",
    "models_show",
    "models_verify",
]

app = typer.Typer(
    help="The model registry: versions, cards, promotion and rollback.", no_args_is_help=True
)


@app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
) -> None:
    """List registered models with their stage and headline test metrics."""
    from clinsight.registry.store import list_models

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


@app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: VersionOpt = None,
    stage: StageOpt = None,
) -> None:
    """Show a model card (verifies the version's files first)."""
    from rich.markdown import Markdown

    from clinsight.registry.store import get_model

    record = get_model(get_settings().resolved_registry_dir, name, version, stage)
    console.print(Markdown(record.card_path.read_text()))
    console.print(f"Folder: {record.path}")


@app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    stage: Annotated[Stage, typer.Option(help="Target stage.")] = Stage.PRODUCTION,
    note: Annotated[str, typer.Option(help="Why (kept in the stage history).")] = "",
) -> None:
    """Move a version to a stage (production archives the previous production version)."""
    from clinsight.registry.store import promote

    record = promote(get_settings().resolved_registry_dir, name, version, stage, note=note)
    console.print(f"[green]{record.name} v{record.version} is now {record.stage}.[/]")


@app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        int | None, typer.Argument(help="Version to restore (default: the previous one).")
    ] = None,
) -> None:
    """Put the previous (or a given) version back into production."""
    from clinsight.registry.store import rollback

    record = rollback(get_settings().resolved_registry_dir, name, version)
    console.print(f"[green]{record.name} v{record.version} is back in production.[/]")


@app.command("verify")
def models_verify(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to check.")],
) -> None:
    """Check every file of a version against the sha256 in its manifest."""
    from clinsight.registry.store import verify

    record = verify(get_settings().resolved_registry_dir, name, version)
    console.print(f"[green]OK[/] {record.name} v{record.version} sha256 {record.artifact_sha256}")


@app.command("history")
def models_history(name: Annotated[str, typer.Argument(help="Registered model name.")]) -> None:
    """Stage changes of a model, oldest first."""
    from clinsight.registry.store import history

    table = Table(title=f"{name}: stage history")
    for column in ("time", "version", "from", "to", "note"):
        table.add_column(column)
    for change in history(get_settings().resolved_registry_dir, name):
        table.add_row(
            change.at, str(change.version), str(change.from_stage), str(change.to_stage),
            change.note,
        )  # fmt: skip
    console.print(table)
