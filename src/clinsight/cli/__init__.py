"""The `clinsight` command line: one Typer `app`, one module per command group.

Each module holds a Typer app of its own; named ones become groups (`clinsight data ...`),
unnamed ones add top-level commands (`clinsight serve`). Commands let a `ClinsightError`
propagate: the root command's `main` turns it into one "Error: ..." line and exit status 2,
whichever way the CLI is started (console script, `python -m clinsight`, a test's CliRunner).
Command modules import heavy libraries (torch, sklearn, spaCy, FastAPI) inside their bodies,
so `clinsight --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from clinsight.cli import (
    audit,
    backup,
    care_team,
    data,
    db,
    evaluate,
    keys,
    models,
    nlp,
    predict,
    progression,
    recommend,
    risk,
    segment,
    serve,
    survival,
    train,
    tune,
    users,
)
from clinsight.cli.output import ERROR_EXIT_CODE, print_error
from clinsight.config import get_settings
from clinsight.errors import ClinsightError

__all__ = ["app", "main"]


class _ClinsightGroup(TyperGroup):
    """The root command: where every deliberate error becomes a message."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; a `ClinsightError` prints "Error: <message>" and exits 2."""
        try:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        except ClinsightError as exc:
            print_error(exc)
            sys.exit(ERROR_EXIT_CODE)


app = typer.Typer(
    name="clinsight",
    help="Clinsight: train, evaluate, register and use clinical decision-support models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_ClinsightGroup,
)

_GROUPS: tuple[tuple[typer.Typer, str | None], ...] = (
    (serve.app, None),
    (backup.app, None),
    (evaluate.app, None),
    (data.app, "data"),
    (train.app, "train"),
    (tune.app, "tune"),
    (predict.app, "predict"),
    (models.app, "models"),
    (users.app, "users"),
    (care_team.app, "care-team"),
    (audit.app, "audit"),
    (keys.app, "keys"),
    (db.app, "db"),
    (nlp.app, "nlp"),
    (risk.app, "risk"),
    (survival.app, "survival"),
    (progression.app, "progression"),
    (recommend.app, "recommend"),
    (segment.app, "segment"),
)
for _group, _name in _GROUPS:
    app.add_typer(_group, name=_name)


@app.callback()
def _check_settings() -> None:
    """Refuse to run any command with malformed CLINSIGHT_ settings, saying which; mirror
    the registry folder to the shared registry where one is configured."""
    from clinsight.registry.mirror import attach_configured

    attach_configured(get_settings())


def main() -> None:
    """Entry point of the `clinsight` console script and of `python -m clinsight`."""
    app()
