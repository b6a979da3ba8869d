"""`clinsight backup` and `clinsight restore`: verified snapshots of the whole store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clinsight.cli.output import console
from clinsight.config import get_settings

__all__ = ["app", "backup", "restore"]

app = typer.Typer()


@app.command("backup")
def backup(
    destination: Annotated[Path, typer.Argument(help="New, empty folder for the backup.")],
    include_keys: Annotated[
        bool,
        typer.Option(help="Also copy the key file (store such a backup apart from the data)."),
    ] = False,
) -> None:
    """Write a consistent snapshot (database, registry, encrypted files) with a sha256 manifest.

    The key file is left out unless --include-keys: keep keys and data apart.
    """
    from clinsight.store.backup import create_backup
    from clinsight.store.db import create_db_engine

    settings = get_settings()
    report = create_backup(
        settings, create_db_engine(settings=settings), destination, include_keys=include_keys
    )
    keys = "with the key file" if report.includes_keys else "without the key file"
    console.print(
        f"Backup written to {report.path} ({keys}): {sum(report.rows.values())} rows in "
        f"{len(report.rows)} tables, {report.files} files."
    )


@app.command("restore")
def restore(
    source: Annotated[Path, typer.Argument(help="A backup folder made by `clinsight backup`.")],
) -> None:
    """Verify a backup's manifest, restore it into an empty store, and check every row and file."""
    from clinsight.store.backup import restore_backup
    from clinsight.store.db import create_db_engine

    settings = get_settings()
    report = restore_backup(settings, create_db_engine(settings=settings), source)
    console.print(
        f"Restored and verified {sum(report.rows.values())} rows in {len(report.rows)} tables "
        f"and {report.files} files; audit chain "
        f"{'intact' if report.audit_ok else 'BROKEN'} ({report.audit_entries} entries)."
    )
    if not report.audit_ok:
        raise typer.Exit(code=1)
