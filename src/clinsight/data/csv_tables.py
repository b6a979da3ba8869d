"""Folders of CSV tables (MIMIC-III, eICU): one table's rows as text dicts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clinsight.errors import DataNotFoundError

__all__ = ["read_table"]


def read_table(
    folder: Path, name: str, *, required: bool = True, hint: str = ""
) -> list[dict[str, str]]:
    """The rows of `name` (``NAME.csv`` or ``name.csv``, optionally gzipped) in `folder`,
    as dicts of text with lower-case column names; no rows if optional and absent.

    Raises:
        DataNotFoundError: a required table is not in the folder (`hint` says where to point).
    """
    for candidate in (name.upper(), name.lower()):
        for suffix in (".csv", ".csv.gz"):
            path = folder / f"{candidate}{suffix}"
            if path.is_file():
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
                return [{str(k).lower(): str(v) for k, v in row.items()}
                        for row in frame.to_dict("records")]  # fmt: skip
    if required:
        raise DataNotFoundError(f"{folder} has no {name}.csv{': ' + hint if hint else ''}.")
    return []
