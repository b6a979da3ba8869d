"""`clinsight audit`: the hash-chained audit log."""

from __future__ import annotations

import typer

from clinsight.cli.output import console, err_console
from clinsight.config import get_settings

__all__ = ["app", "audit_verify"]

app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 if any entry was altered, moved or removed."""
    from clinsight.store import audit
    from clinsight.store.db import create_db_engine, session_factory

    engine = create_db_engine(settings=get_settings())
    with session_factory(engine)() as session:
        result = audit.verify(session)
    if not result.ok:
        err_console.print(f"[bold red]Audit chain broken[/] at entry {result.first_bad_seq}: "
                          f"{result.problem}")  # fmt: skip
        raise typer.Exit(code=1)
    console.print(f"Audit chain intact: {result.entries} entries verified.")
