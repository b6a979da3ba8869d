"""`clinsight users`: accounts of the clinical service, administered on the server."""

from __future__ import annotations

from typing import Annotated

import typer

from clinsight.cli.output import console
from clinsight.config import get_settings
from clinsight.store.tables import Role

__all__ = ["app", "users_create"]

app = typer.Typer(help="Accounts of the clinical service.", no_args_is_help=True)


@app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="New username (3-64 of a-z 0-9 . _ -).")],
    role: Annotated[Role, typer.Option(help="admin, clinician or auditor.")] = Role.CLINICIAN,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Create an account (local administration: run on the server)."""
    from clinsight.services.users import create_local_account

    user = create_local_account(get_settings(), username=username, password=password, role=role)
    console.print(f"Created {user.role} {user.username} ({user.id})")
