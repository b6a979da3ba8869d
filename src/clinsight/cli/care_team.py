"""`clinsight care-team`: who is on a patient's care team (by MRN), administered on the
server through `services.care_teams` (audited; the admin sees no patient data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clinsight.cli.options import AsAdminOpt
from clinsight.cli.output import console
from clinsight.config import get_settings

if TYPE_CHECKING:
    from clinsight.services.care_teams import CareTeam

__all__ = ["app", "care_team_add", "care_team_list", "care_team_remove"]

app = typer.Typer(help="Care teams: which clinicians may open a patient.", no_args_is_help=True)
MrnOpt = Annotated[str, typer.Option("--mrn", help="The patient's MRN.")]
UserOpt = Annotated[str, typer.Option("--user", help="The clinician's username.")]


def _show(team: CareTeam) -> None:
    table = Table(title=f"Care team of {team.reference}")
    for column in ("clinician", "since (UTC)"):
        table.add_column(column)
    for member in team.members:
        table.add_row(member.username, f"{member.assigned_at:%Y-%m-%d %H:%M}")
    console.print(table if team.members else f"Nobody is on the care team of {team.reference}.")


@app.command("add")
def care_team_add(mrn: MrnOpt, user: UserOpt, as_user: AsAdminOpt = None) -> None:
    """Put a clinician on a patient's care team (idempotent)."""
    from clinsight.services.care_teams import add_member
    from clinsight.services.users import local_admin

    team = local_admin(get_settings(), as_user, "care_team.assign",
                       lambda ctx: add_member(ctx, mrn, user))  # fmt: skip
    console.print(f"{user} is on the care team of {team.reference}.")
    _show(team)


@app.command("remove")
def care_team_remove(mrn: MrnOpt, user: UserOpt, as_user: AsAdminOpt = None) -> None:
    """Take a clinician off a patient's care team."""
    from clinsight.services.care_teams import remove_member
    from clinsight.services.users import local_admin

    team = local_admin(get_settings(), as_user, "care_team.remove",
                       lambda ctx: remove_member(ctx, mrn, user))  # fmt: skip
    console.print(f"{user} is off the care team of {team.reference}.")
    _show(team)


@app.command("list")
def care_team_list(mrn: MrnOpt, as_user: AsAdminOpt = None) -> None:
    """The clinicians on a patient's care team."""
    from clinsight.services.care_teams import care_team
    from clinsight.services.users import local_admin

    _show(local_admin(get_settings(), as_user, "care_team.list", lambda ctx: care_team(ctx, mrn)))
