"""The input files of a batch prediction: a folder of images, or a DICOM study list.

A folder is walked recursively (hidden files and folders skipped): every regular file is an
input, whatever its name, since formats are recognised by content; a file that is no image
gets a reason in the batch's error table rather than being silently left out. A study list
is a text file naming one file or folder per line (relative to the list's folder; blank
lines and lines starting with ``#`` ignored); a folder named there is walked the same way.
Each input is keyed by its path as given (relative to the folder, or as the list wrote it
with the folder's files below it), the key under which results are stored and resumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clinsight.errors import DataError, DataNotFoundError

__all__ = ["BatchInput", "collect_inputs"]


@dataclass(frozen=True)
class BatchInput:
    """One file to predict: its `key` in the results and its `path` on disk."""

    key: str
    path: Path


def collect_inputs(source: Path) -> list[BatchInput]:
    """The input files of `source` (a folder or a study list), sorted by key, each once.

    Raises:
        DataNotFoundError: `source` does not exist.
        DataError: `source` is neither a folder nor a readable text file.
    """
    if source.is_dir():
        return _unique(BatchInput(key, path) for key, path in _walk(source, ""))
    if not source.exists():
        raise DataNotFoundError(f"{source} does not exist; give a folder of images or a study list")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{source} is neither a folder nor a readable study list (a UTF-8 text file with "
            "one DICOM file or study folder per line)"
        ) from exc
    found: list[BatchInput] = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry) if Path(entry).is_absolute() else source.parent / entry
        if path.is_dir():
            found.extend(BatchInput(key, file) for key, file in _walk(path, entry))
        else:  # a listed file that is missing stays an input: the error table says so
            found.append(BatchInput(entry, path))
    return _unique(found)


def _walk(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        key = relative.as_posix() if not prefix else f"{prefix.rstrip('/')}/{relative.as_posix()}"
        found.append((key, path))
    return found


def _unique(inputs: Iterable[BatchInput]) -> list[BatchInput]:
    by_key: dict[str, BatchInput] = {}
    for item in inputs:
        by_key.setdefault(item.key, item)
    return [by_key[key] for key in sorted(by_key)]
