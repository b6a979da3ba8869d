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
    with Progress(
        TextColumn("Training the default model"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("train", total=None)

        def on_epoch(record: EpochRecord, planned: int) -> None:
            progress.update(task, completed=record.epoch, total=planned)

        result = bootstrap(settings, train_model=train, progress=on_epoch)
    if result.admin_password:
        console.print(
            "[bold]Admin account created[/]: username [cyan]admin[/], password "
            f"[cyan]{result.admin_password}[/] (shown once: store it now)"
        )
    console.print(f"Model in production: {result.model or 'none'}")
    console.print(f"Open [link]{service_url(settings)}[/link]")
    run_server(settings, result.certificate, result.private_key)
