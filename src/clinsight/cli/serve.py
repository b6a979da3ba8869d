"""`clinsight serve`: the HTTPS service, bootstrapped on first run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clinsight.cli.output import console
from clinsight.config import get_settings

if TYPE_CHECKING:
    from clinsight.imaging.training import EpochRecord

__all__ = ["app", "serve"]

app = typer.Typer()


@app.command("serve")
def serve(
    train: Annotated[
        bool, typer.Option(help="Train the default model if the registry has none.")
    ] = True,
) -> None:
    """Start the HTTPS service, bootstrapping the embedded store, keys, admin and model once."""
    from clinsight.serve import run_server, service_url
    from clinsight.services.bootstrap import bootstrap

    settings = get_settings()
    console.print("Preparing the store, keys, admin account and certificate (first run only).")
    with Progress(
        TextColumn("Training the default model"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a log file gets plain lines instead (below)
    ) as progress:
        task = progress.add_task("train", total=None)

        def on_epoch(record: EpochRecord, planned: int) -> None:
            progress.update(task, completed=record.epoch, total=planned)
            if not console.is_terminal:
                console.print(
                    f"Training the default model: epoch {record.epoch} of {planned} "
                    f"(validation AUC {record.val_auc:.3f}, {record.seconds:.0f} s)",
                    soft_wrap=True,
                )

        result = bootstrap(settings, train_model=train, progress=on_epoch)
    if result.admin_password:
        console.print(
            "[bold]Admin account created[/]: username [cyan]admin[/]. "
            "Its password is on the next line (shown once: store it now):",
            soft_wrap=True,
        )
        console.print(f"[cyan]{result.admin_password}[/]", soft_wrap=True, highlight=False)
    console.print(f"Model in production: {result.model or 'none'}")
    console.print(f"Open [link]{service_url(settings)}[/link]")
    run_server(settings, result.certificate, result.private_key)
