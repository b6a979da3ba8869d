"""`clinsight db`: the database schema."""

from __future__ import annotations

import typer

from clinsight.cli.output import console
from clinsight.config import get_settings

__all__ = ["app", "db_migrate"]

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("migrate")
def db_migrate() -> None:
    """Upgrade the database schema to the newest migration."""
    from clinsight.store.db import create_db_engine, migrate

    migrate(create_db_engine(settings=get_settings()))
    console.print("Database schema is up to date.")
