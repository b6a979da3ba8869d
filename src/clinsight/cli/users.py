"""`clinsight users`: accounts of the clinical service, administered on the server.

Every change goes through `services.users`, as the API's and the web's do (audited, and
the account's sessions end where the change calls for it); the actor is the admin named
with ``--as``, else the operating-system account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from clinsight.cli.options import AsAdminOpt
from clinsight.cli.output import console
from clinsight.config import get_settings
from clinsight.store.roles import Role

if TYPE_CHECKING:
    from clinsight.services.users import PasswordReset
    from clinsight.store.accounts import Account
    from clinsight.store.repositories import StoreContext

__all__ = [
    "app",
    "users_create",
    "users_disable",
    "users_enable",
    "users_list",
    "users_reset",
    "users_role",
]

app = typer.Typer(help="Accounts of the clinical service.", no_args_is_help=True)
T = TypeVar("T")
NameArg = Annotated[str, typer.Argument(help="The account's username.")]


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


def _as_admin(as_user: str | None, action: str, use: Callable[[StoreContext], T]) -> T:
    from clinsight.services.users import local_admin

    return local_admin(get_settings(), as_user, action, use)


@app.command("list")
def users_list(as_user: AsAdminOpt = None) -> None:
    """Accounts with role, state (active, disabled, locked) and creation time."""
    from clinsight.services.users import list_users

    table = Table(title="Accounts")
    for column in ("user", "role", "state", "created (UTC)", "id"):
        table.add_column(column)
    for u in _as_admin(as_user, "user.list", list_users):
        state = ("active" if u.active else "disabled") + (", locked" if u.locked else "")
        table.add_row(u.username, str(u.role), state, f"{u.created_at:%Y-%m-%d %H:%M}", u.id)
    console.print(table)


def _set_active(username: str, as_user: str | None, *, active: bool) -> Account:
    from clinsight.services.users import account_id, set_account_active

    def use(ctx: StoreContext) -> Account:
        user_id = account_id(ctx.session, username)
        return set_account_active(ctx, user_id, active=active)

    return _as_admin(as_user, "user.enable" if active else "user.disable", use)


@app.command("disable")
def users_disable(username: NameArg, as_user: AsAdminOpt = None) -> None:
    """Disable an account: its sessions end at once (not the last active admin)."""
    done = _set_active(username, as_user, active=False)
    console.print(f"Disabled {done.role} {done.username}; their sessions have ended.")


@app.command("enable")
def users_enable(username: NameArg, as_user: AsAdminOpt = None) -> None:
    """Enable a disabled account again."""
    done = _set_active(username, as_user, active=True)
    console.print(f"Enabled {done.role} {done.username}.")


@app.command("reset")
def users_reset(username: NameArg, as_user: AsAdminOpt = None) -> None:
    """Give an account a temporary password (printed once); its sessions end."""
    from clinsight.services.users import account_id, reset_account_password

    def use(ctx: StoreContext) -> PasswordReset:
        user_id = account_id(ctx.session, username)
        return reset_account_password(ctx, get_settings(), user_id)

    reset = _as_admin(as_user, "user.reset_password", use)
    console.print(f"Temporary password for {reset.account.username} (shown once; their "
                  "sessions have ended):", highlight=False)  # fmt: skip
    console.print(reset.temporary_password, highlight=False, soft_wrap=True)


@app.command("role")
def users_role(
    username: NameArg,
    role: Annotated[Role, typer.Argument(help="admin, clinician or auditor.")],
    as_user: AsAdminOpt = None,
) -> None:
    """Give an account another role; its sessions end (not your own, not the last admin's)."""
    from clinsight.services.users import account_id, change_account_role

    def use(ctx: StoreContext) -> Account:
        return change_account_role(ctx, account_id(ctx.session, username), role)

    done = _as_admin(as_user, "user.role", use)
    console.print(f"{done.username} is now {done.role}; their sessions have ended.")
