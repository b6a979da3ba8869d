"""`clinsight models`: the registry of every model kind (image, risk, ner) — versions,
cards, verification, and audited stage changes (promote, rollback, archive).

Stage changes go through `services.models`, as the API's do: each appends an audit entry
and records its actor in the model's stage history — the admin account named with
``--as``, else the operating-system account (flagged in the audit entry as unauthenticated).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from clinsight.cli.options import AsUserOpt, StageOpt
from clinsight.cli.output import console, fail
from clinsight.config import get_settings
from clinsight.registry.versions import ModelKind, RegisteredVersion

__all__ = [
    "app",
    "headline_metric",
    "models_archive",
    "models_history",
    "models_list",
    "models_promote",
    "models_rollback",
    "models_show",
    "models_verify",
]

app = typer.Typer(
    help="The model registry of every kind: versions, cards, promotion, rollback, archive.",
    no_args_is_help=True,
)

KindArg = Annotated[ModelKind, typer.Argument(help="Model kind: image, risk, ner or survival.")]
NameArg = Annotated[str, typer.Argument(help="Registered model name.")]
NoteOpt = Annotated[str, typer.Option(help="Why (kept in the stage history).")]


def headline_metric(version: RegisteredVersion) -> str:
    """The one number a list shows: test AUC (image), cross-validated AUC (risk), test F1
    over all labels (NER)."""
    metrics: dict[str, Any] = version.metrics
    paths = {
        ModelKind.IMAGE: ("test AUC", ("metrics", "values", "auc")),
        ModelKind.RISK: ("CV AUC", ("cross_validation", "auc", "mean")),
        ModelKind.NER: ("test F1", ("test", "ALL", "f1", "value")),
        ModelKind.SURVIVAL: ("CV Uno C", ("cross_validation", "uno_c", "mean")),
    }
    label, path = paths[version.kind]
    value: Any = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return f"{label} {value:.4f}" if isinstance(value, int | float) else f"{label} n/a"


@app.command("list")
def models_list(
    kind: Annotated[ModelKind | None, typer.Option(help="Only this kind.")] = None,
    name: Annotated[str | None, typer.Option(help="Only this model (needs --kind).")] = None,
) -> None:
    """List registered versions of every kind (or one) with their stage and headline metric."""
    from clinsight.registry.kinds import list_versions

    if name is not None and kind is None:
        raise fail("--name needs --kind (names are per kind).")
    versions = list_versions(get_settings().resolved_registry_dir, kind, name)
    if not versions:
        console.print(
            "No models registered yet: run `clinsight train image`, `clinsight risk train` "
            "or `clinsight nlp train-ner`."
        )
        return
    table = Table(title="Registered models")
    for column in ("kind", "name", "version", "stage", "metric", "created"):
        table.add_column(column)
    for v in versions:
        table.add_row(str(v.kind), v.name, str(v.version), str(v.stage), headline_metric(v),
                      v.created)  # fmt: skip
    console.print(table)


@app.command("show")
def models_show(
    kind: KindArg,
    name: NameArg,
    version: Annotated[int | None, typer.Argument(help="Version (default: newest).")] = None,
    stage: StageOpt = None,
) -> None:
    """Show a model card (verifies the version's files first)."""
    from rich.markdown import Markdown

    from clinsight.registry.kinds import get_version

    record = get_version(get_settings().resolved_registry_dir, kind, name, version, stage)
    console.print(Markdown(record.card_path.read_text(encoding="utf-8")))
    console.print(f"Folder: {record.path}")


def _change(
    kind: ModelKind, name: str, action: str, version: int | None, as_user: str | None, note: str
) -> RegisteredVersion:
    from clinsight.registry.kinds import StageAction
    from clinsight.services.models import change_stage_locally

    return change_stage_locally(
        get_settings(), kind, name, StageAction(action), version, as_user=as_user, note=note
    )


@app.command("promote")
def models_promote(
    kind: KindArg,
    name: NameArg,
    version: Annotated[int, typer.Argument(help="Version to put into production.")],
    as_user: AsUserOpt = None,
    note: NoteOpt = "",
) -> None:
    """Put a version into production (the one before is archived); audited."""
    record = _change(kind, name, "promote", version, as_user, note)
    console.print(f"[green]{record.kind} model {record.name} v{record.version} is now "
                  f"{record.stage}.[/]")  # fmt: skip


@app.command("rollback")
def models_rollback(
    kind: KindArg,
    name: NameArg,
    version: Annotated[
        int | None, typer.Option(help="Version to restore (default: the previous one).")
    ] = None,
    as_user: AsUserOpt = None,
    note: NoteOpt = "rollback",
) -> None:
    """Put the previous (or a given) version back into production; audited."""
    record = _change(kind, name, "rollback", version, as_user, note)
    console.print(f"[green]{record.kind} model {record.name} v{record.version} is back in "
                  f"production.[/]")  # fmt: skip


@app.command("archive")
def models_archive(
    kind: KindArg,
    name: NameArg,
    version: Annotated[int, typer.Argument(help="Version to archive.")],
    as_user: AsUserOpt = None,
    note: NoteOpt = "",
) -> None:
    """Archive a version (out of service if it was in production); audited."""
    record = _change(kind, name, "archive", version, as_user, note)
    console.print(f"[green]{record.kind} model {record.name} v{record.version} is now "
                  f"{record.stage}.[/]")  # fmt: skip


@app.command("verify")
def models_verify(
    kind: KindArg,
    name: NameArg,
    version: Annotated[int, typer.Argument(help="Version to check.")],
) -> None:
    """Check every file of a version against the sha256 in its manifest."""
    from clinsight.registry.kinds import get_version

    record = get_version(get_settings().resolved_registry_dir, kind, name, version, verify=True)
    console.print(f"[green]OK[/] {record.kind} model {record.name} v{record.version} sha256 "
                  f"{record.artifact_sha256}")  # fmt: skip


@app.command("history")
def models_history(kind: KindArg, name: NameArg) -> None:
    """Stage changes of a model, oldest first, with who made them."""
    from clinsight.registry.kinds import stage_history

    table = Table(title=f"{kind} model {name}: stage history")
    for column in ("time", "version", "from", "to", "actor", "note"):
        table.add_column(column)
    for change in stage_history(get_settings().resolved_registry_dir, kind, name):
        table.add_row(
            change.at, str(change.version), str(change.from_stage), str(change.to_stage),
            change.actor or "-", change.note,
        )  # fmt: skip
    console.print(table)
