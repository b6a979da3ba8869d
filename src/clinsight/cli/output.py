"""Terminal output shared by the CLI modules: the consoles, the one way to fail, report tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from clinsight.errors import ClinsightError

if TYPE_CHECKING:
    from clinsight.evaluation.report import EvaluationReport

__all__ = ["ERROR_EXIT_CODE", "console", "err_console", "fail", "print_error", "print_report"]

ERROR_EXIT_CODE = 2
"""Exit status of a command refused with a message (bad input, a ClinsightError)."""

console = Console()
err_console = Console(stderr=True)


def print_error(error: ClinsightError | str) -> None:
    """Print an actionable error on stderr."""
    err_console.print(f"[bold red]Error:[/] {error}")


def fail(message: str) -> typer.Exit:
    """Print an actionable error and return the exit to raise (status 2)."""
    print_error(message)
    return typer.Exit(code=ERROR_EXIT_CODE)


def print_report(title: str, report: EvaluationReport) -> None:
    """An evaluation report as a table: each metric with its 95% interval, then the ECE."""
    table = Table(title=title)
    for column in ("metric", "value", "95% interval"):
        table.add_column(column)
    for name, value in report.metrics.values.items():
        low, high = report.metrics.intervals.get(name, (float("nan"), float("nan")))
        table.add_row(name, f"{value:.4f}", f"{low:.4f} - {high:.4f}")
    table.add_row("ECE (raw)", f"{report.ece_before:.4f}", "")
    method = f"T={report.temperature:.3f}"
    if report.calibrator is not None and report.calibrator.method != "temperature":
        method = f"{report.calibrator.method} chosen on validation"
    table.add_row(f"ECE ({method})", f"{report.ece_after:.4f}", "")
    if report.decision_rule is not None:
        table.add_row("decision rule (chosen on validation)", report.decision_rule.name, "")
    console.print(table)
