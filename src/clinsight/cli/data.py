"""`clinsight data`: the public datasets Clinsight trains on."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from clinsight.cli.output import console
from clinsight.config import get_settings

__all__ = ["app", "data_fetch", "data_list"]

app = typer.Typer(
    help="Find and fetch the public datasets Clinsight trains on.", no_args_is_help=True
)


@app.command("list")
def data_list() -> None:
    """List the MedMNIST datasets and whether each is in the data directory."""
    from clinsight.data.medmnist import CATALOGUE, medmnist_path

    data_dir = get_settings().resolved_data_dir
    table = Table(title=f"MedMNIST 2D datasets (data directory: {data_dir})")
    for column in ("name", "task", "classes", "channels", "sizes", "present"):
        table.add_column(column)
    for info in CATALOGUE.values():
        present = [
            str(s) for s in sorted(info.md5) if medmnist_path(data_dir, info.name, s).exists()
        ]
        table.add_row(
            info.name,
            info.task.value,
            str(info.num_classes),
            str(info.channels),
            ",".join(str(s) for s in sorted(info.md5)),
            ",".join(present) or "-",
        )
    console.print(table)


@app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. pneumoniamnist.")],
    size: Annotated[int, typer.Option(help="Image size: 28, 64, 128 or 224.")] = 28,
) -> None:
    """Make sure a dataset is in the data directory (download if allowed) and verify its md5."""
    from clinsight.data.medmnist import fetch_medmnist

    settings = get_settings()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"{name} ({size}px)", total=None)
        path = fetch_medmnist(
            settings.resolved_data_dir,
            name,
            size,
            allow_download=settings.allow_download,
            progress=lambda done, total: progress.update(task, completed=done, total=total or None),
        )
    console.print(f"[green]OK[/] {path} (md5 verified)")
