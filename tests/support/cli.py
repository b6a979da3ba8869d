"""The command line as the tests drive it: a wide console and one call of the Typer app."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clinsight.cli import app
from clinsight.cli import output as cli_output

__all__ = ["run_cli", "wide_console"]

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables and messages on one line each, as in a wide terminal (autouse where imported)."""
    monkeypatch.setattr(cli_output.console, "width", 300)
    monkeypatch.setattr(cli_output.err_console, "width", 300)


def run_cli(*args: str) -> tuple[int, str]:
    """Run `clinsight ARGS` in-process; the exit code and the output."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output
