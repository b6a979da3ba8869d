"""`clinsight keys`: the encryption keys of the PHI store."""

from __future__ import annotations

import typer

from clinsight.cli.output import console
from clinsight.config import get_settings

__all__ = ["app", "keys_rotate"]

app = typer.Typer(help="Encryption keys of the PHI store.", no_args_is_help=True)


@app.command("rotate")
def keys_rotate() -> None:
    """Add a new primary data key and re-encrypt every stored value and file with it."""
    from clinsight.services.keys import rotate_data_key

    rotation = rotate_data_key(get_settings())
    console.print(
        f"New key {rotation.key_id}: re-encrypted {rotation.fields} values, {rotation.files} files."
    )
