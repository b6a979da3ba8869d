"""Command-line parameters shared by several command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from clinsight.registry.stages import Stage

__all__ = ["AsAdminOpt", "AsUserOpt", "StageOpt", "VersionOpt"]

AsUserOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="The admin account the stage change is made for (default: your operating-system "
        "account, recorded as unauthenticated).",
    ),
]
AsAdminOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="The admin account the change is made for (default: your operating-system "
        "account, recorded as os:<login>, unauthenticated).",
    ),
]
VersionOpt = Annotated[int | None, typer.Option("--version", "-v", help="Version number.")]
StageOpt = Annotated[
    Stage | None, typer.Option(help="Pick the newest version at this stage instead.")
]
