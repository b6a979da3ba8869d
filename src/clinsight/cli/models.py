"""`clinsight models`: the registry of every model kind (image, risk, ner, ...) — versions,
cards, verification, and audited stage changes (promote, rollback, archive).

Stage changes go through `services.models`, as the API's do: each appends an audit entry
and records its actor in the model's stage history — the admin account named with
``--as``, else the operating-system account (flagged in the audit entry as unauthenticated).
"""

from __future__ import annotations

from pathlib import Path
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
    "models_monitor",
    "models_promote",
    "models_recalibrate",
    "models_rollback",
    "models_show",
    "models_sync",
    "models_verify",
]

app = typer.Typer(
    help="The model registry of every kind: versions, cards, promotion, rollback, archive.",
    no_args_is_help=True,
)

KindArg = Annotated[
    ModelKind, typer.Argument(help=f"Model kind: {', '.join(kind.value for kind in ModelKind)}.")
]
NameArg = Annotated[str, typer.Argument(help="Registered model name.")]
NoteOpt = Annotated[str, typer.Option(help="Why (kept in the stage history).")]


def _registry_dir() -> Path:
    """The registry folder, pulled first from the shared registry where one is configured."""
    from clinsight.registry.mirror import pull_due

    registry_dir = get_settings().resolved_registry_dir
    pull_due(registry_dir)
    return registry_dir


def headline_metric(version: RegisteredVersion) -> str:
    """The one number a list shows: test AUC (image), cross-validated AUC (risk), test F1
    over all labels (NER), cross-validated Uno C (survival), validation AUPRC (progression),
    validation NDCG@10 (recommendation), validation Dice (segmentation)."""
    metrics: dict[str, Any] = version.metrics
    paths = {
        ModelKind.IMAGE: ("test AUC", ("metrics", "values", "auc")),
        ModelKind.RISK: ("CV AUC", ("cross_validation", "auc", "mean")),
        ModelKind.NER: ("test F1", ("test", "ALL", "f1", "value")),
        ModelKind.SURVIVAL: ("CV Uno C", ("cross_validation", "uno_c", "mean")),
        ModelKind.PROGRESSION: ("validation AUPRC", ("validation", "values", "auprc")),
        ModelKind.RECOMMENDATION: ("validation NDCG@10", ("validation", "ndcg_at_10")),
        ModelKind.SEGMENTATION: ("validation Dice", ("validation", "values", "dice")),
    }
    label, path = paths[version.kind]  # every kind needs an entry (tests/test_cli_models)
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
    versions = list_versions(_registry_dir(), kind, name)
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

    record = get_version(_registry_dir(), kind, name, version, stage)
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

    record = get_version(_registry_dir(), kind, name, version, verify=True)
    console.print(f"[green]OK[/] {record.kind} model {record.name} v{record.version} sha256 "
                  f"{record.artifact_sha256}")  # fmt: skip


@app.command("sync")
def models_sync(
    push: Annotated[
        bool, typer.Option("--push", help="Also upload local versions the shared one lacks.")
    ] = False,
) -> None:
    """Bring the shared registry (CLINSIGHT_REGISTRY_URL) and the local folder in step:
    pull its new versions and stage records; with --push, seed it with local ones."""
    from clinsight.registry.mirror import mirror_for

    settings = get_settings()
    mirror = mirror_for(settings.resolved_registry_dir)
    if mirror is None:
        raise fail(
            "No shared registry is configured: set CLINSIGHT_REGISTRY_URL to an fsspec URL "
            "(s3://bucket/registry, file:///mnt/shared/registry) and run this again."
        )
    pulled = mirror.pull()
    console.print(f"Pulled {pulled} model folder(s) from {mirror.url}.")
    if push:
        console.print(f"Pushed {mirror.push_all()} file(s) to {mirror.url}.")


@app.command("history")
def models_history(kind: KindArg, name: NameArg) -> None:
    """Stage changes of a model, oldest first, with who made them."""
    from clinsight.registry.kinds import stage_history

    table = Table(title=f"{kind} model {name}: stage history")
    for column in ("time", "version", "from", "to", "actor", "note"):
        table.add_column(column)
    for change in stage_history(_registry_dir(), kind, name):
        table.add_row(
            change.at, str(change.version), str(change.from_stage), str(change.to_stage),
            change.actor or "-", change.note,
        )  # fmt: skip
    console.print(table)


RequiredAsOpt = Annotated[
    str, typer.Option("--as", help="Your admin (or, for monitor, auditor) account's username.")
]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command("monitor")
def models_monitor(
    name: NameArg,
    version: Annotated[int, typer.Argument(help="Image model version to monitor.")],
    as_user: RequiredAsOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """An image model version in use by ISO week against its validation baseline: agreement,
    refusals, indeterminate share, positive rate, input statistics, PSI and drift."""
    import json

    from clinsight.services.monitoring import monitoring_locally

    report = monitoring_locally(get_settings(), name, version, as_user=as_user)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    if report.drift_alert and report.latest_psi is not None:
        console.print(f"[bold red]Drift:[/] PSI > 0.2 in {report.latest_psi.week}.")
    if report.baseline is None:
        console.print("No baseline: this version was registered without one.")
    console.print(f"Agreement rate {_percent(report.agreement_rate)} ({report.verdicts}); "
                  f"{report.confirmed_labels} confirmed labels.")  # fmt: skip
    table = Table(title=f"image model {name} v{version}: by ISO week")
    for column in ("week", "n", "refused", "indeterminate", "positive", "PSI p", "PSI intensity",
                   "agreement"):  # fmt: skip
        table.add_column(column)
    for week in report.weeks:
        psi = [("-" if v is None else f"{v:.2f}") for v in week.psi.values()]
        table.add_row(week.week, str(week.predictions), str(week.refused),
                      _percent(week.indeterminate_share), _percent(week.predicted_positive_rate),
                      *psi, _percent(week.agreement_rate))  # fmt: skip
    console.print(table)


@app.command("recalibrate")
def models_recalibrate(
    name: NameArg,
    version: Annotated[int, typer.Argument(help="Image model version to recalibrate.")],
    as_user: RequiredAsOpt,
) -> None:
    """Propose a recalibration from the clinicians' confirmed labels: a new candidate version
    (audited, not serving until promoted)."""
    from clinsight.services.monitoring import propose_recalibration_locally

    found = propose_recalibration_locally(get_settings(), name, version, as_user=as_user)
    console.print(
        f"[green]Proposed {found.model.name} v{found.model.version} (candidate)[/]: temperature "
        f"{found.temperature_before:.4g} -> {found.temperature_after:.4g} on {found.labels} "
        f"confirmed labels (NLL {found.nll_before:.4f} -> {found.nll_after:.4f}). Promote it "
        f"with `clinsight models promote image {found.model.name} {found.model.version}`."
    )
