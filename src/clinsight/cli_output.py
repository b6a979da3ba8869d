"""Terminal output shared by the CLI modules: consoles and the one way to fail."""

from __future__ import annotations

import typer
from rich.console import Console

from clinsight.errors import ClinsightError

__all__ = ["console", "err_console", "fail"]

console = Console()
err_console = Console(stderr=True)


def fail(error: ClinsightError | str) -> typer.Exit:
    """Print an actionable error and return the exit to raise (status 2)."""
    err_console.print(f"[bold red]Error:[/] {error}")
    return typer.Exit(code=2)
