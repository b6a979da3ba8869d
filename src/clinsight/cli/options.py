"""Command-line parameters shared by several command groups."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from clinsight.cli.output import fail
from clinsight.registry.stages import Stage

__all__ = ["AsAdminOpt", "AsUserOpt", "StageOpt", "VersionOpt", "feature_values"]

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


def feature_values(pairs: list[str]) -> dict[str, Any]:
    """``--value FEATURE=VALUE`` options as a dict: numbers as floats, other text as
    strings, an empty value as missing (None).

    Raises:
        typer.Exit: a pair has no ``=`` (after printing why).
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise fail(f"--value {pair!r} must be FEATURE=VALUE.")
        try:
            values[key.strip()] = float(raw)
        except ValueError:
            values[key.strip()] = raw.strip() or None
    return values
