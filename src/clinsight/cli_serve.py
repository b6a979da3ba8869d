"""CLI commands of the clinical service: serve, users, audit, keys, db (wired in `cli.py`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clinsight.cli_output import console, err_console, fail
from clinsight.config import get_settings
from clinsight.errors import ClinsightError
from clinsight.imaging.training import EpochRecord
from clinsight.security.records import create_user
from clinsight.store import audit
from clinsight.store.crypto import load_keyring, reencrypt_all, rotate_key
from clinsight.store.db import create_db_engine, migrate, session_factory
from clinsight.store.tables import Role

__all__ = [
    "audit_verify",
    "backup",
    "db_migrate",
    "keys_rotate",
    "register_service_commands",
    "restore",
    "serve",
    "users_create",
]


def serve(
    train: Annotated[
        bool, typer.Option(help="Train the default model if the registry has none.")
    ] = True,
) -> None:
    """Start the HTTPS service, bootstrapping the embedded store, keys, admin and model once."""
    from clinsight.serve import run_server, service_url
    from clinsight.services.bootstrap import bootstrap

    settings = get_settings()
    try:
        with Progress(
            TextColumn("Training the default model"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("train", total=None)

            def on_epoch(record: EpochRecord, planned: int) -> None:
                progress.update(task, completed=record.epoch, total=planned)

            result = bootstrap(settings, train_model=train, progress=on_epoch)
        if result.admin_password:
            console.print(
                "[bold]Admin account created[/]: username [cyan]admin[/], password "
                f"[cyan]{result.admin_password}[/] (shown once: store it now)"
            )
        console.print(f"Model in production: {result.model or 'none'}")
        console.print(f"Open [link]{service_url(settings)}[/link]")
        run_server(settings, result.certificate, result.private_key)
    except ClinsightError as exc:
        raise fail(exc) from exc


def users_create(
    username: Annotated[str, typer.Argument(help="New username (3-64 of a-z 0-9 . _ -).")],
    role: Annotated[Role, typer.Option(help="admin, clinician or auditor.")] = Role.CLINICIAN,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Create an account (local administration: run on the server)."""
    settings = get_settings()
    try:
        engine = create_db_engine(settings=settings)
        migrate(engine)
        with session_factory(engine)() as session:
            user = create_user(
                session, settings, username=username, password=password, role=role, actor=None
            )
            session.commit()
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print(f"Created {user.role} {user.username} ({user.id})")


def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 if any entry was altered, moved or removed."""
    try:
        engine = create_db_engine(settings=get_settings())
        with session_factory(engine)() as session:
            result = audit.verify(session)
    except ClinsightError as exc:
        raise fail(exc) from exc
    if not result.ok:
        err_console.print(f"[bold red]Audit chain broken[/] at entry {result.first_bad_seq}: "
                          f"{result.problem}")  # fmt: skip
        raise typer.Exit(code=1)
    console.print(f"Audit chain intact: {result.entries} entries verified.")


def keys_rotate() -> None:
    """Add a new primary data key and re-encrypt every stored value and file with it."""
    settings = get_settings()
    try:
        load_keyring(settings.resolved_key_file)
        keyring = rotate_key(settings.resolved_key_file)
        engine = create_db_engine(settings=settings)
        with session_factory(engine)() as session:
            report = reencrypt_all(session, keyring, settings.resolved_files_dir)
            audit.append(session, action="keys.rotate", resource_type="keyring",
                         details={"fields": report.fields, "files": report.files})  # fmt: skip
            session.commit()
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print(
        f"New key {keyring.primary}: re-encrypted {report.fields} values, {report.files} files."
    )


def db_migrate() -> None:
    """Upgrade the database schema to the newest migration."""
    try:
        migrate(create_db_engine(settings=get_settings()))
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print("Database schema is up to date.")


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

    settings = get_settings()
    try:
        engine = create_db_engine(settings=settings)
        report = create_backup(settings, engine, destination, include_keys=include_keys)
    except ClinsightError as exc:
        raise fail(exc) from exc
    keys = "with the key file" if report.includes_keys else "without the key file"
    console.print(
        f"Backup written to {report.path} ({keys}): {sum(report.rows.values())} rows in "
        f"{len(report.rows)} tables, {report.files} files."
    )


def restore(
    source: Annotated[Path, typer.Argument(help="A backup folder made by `clinsight backup`.")],
) -> None:
    """Verify a backup's manifest, restore it into an empty store, and check every row and file."""
    from clinsight.store.backup import restore_backup

    settings = get_settings()
    try:
        engine = create_db_engine(settings=settings)
        report = restore_backup(settings, engine, source)
    except ClinsightError as exc:
        raise fail(exc) from exc
    console.print(
        f"Restored and verified {sum(report.rows.values())} rows in {len(report.rows)} tables "
        f"and {report.files} files; audit chain "
        f"{'intact' if report.audit_ok else 'BROKEN'} ({report.audit_entries} entries)."
    )
    if not report.audit_ok:
        raise typer.Exit(code=1)


def register_service_commands(app: typer.Typer) -> None:
    """Add `serve`, `backup`, `restore`, `users`, `audit`, `keys` and `db` to the main CLI."""
    app.command("serve")(serve)
    app.command("backup")(backup)
    app.command("restore")(restore)
    groups: dict[str, tuple[str, dict[str, Callable[..., None]]]] = {
        "users": ("Accounts of the clinical service.", {"create": users_create}),
        "audit": ("The hash-chained audit log.", {"verify": audit_verify}),
        "keys": ("Encryption keys of the PHI store.", {"rotate": keys_rotate}),
        "db": ("The database schema.", {"migrate": db_migrate}),
    }
    for name, (text, commands) in groups.items():
        group = typer.Typer(help=text, no_args_is_help=True)
        for command, function in commands.items():
            group.command(command)(function)
        app.add_typer(group, name=name)
