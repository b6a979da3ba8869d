"""A few real PhysioNet 2012 stays copied from set A into a temporary set (never into git),
and a tiny progression model trained on them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clinsight.registry.progression import ProgressionModelVersion
from clinsight.sequence.training import SequenceTrainConfig
from clinsight.services.progression import train_progression_model

__all__ = ["TINY_CONFIG", "set_a", "tiny_set", "train_tiny"]

TINY_CONFIG = SequenceTrainConfig(architecture="grud", hidden=8, epochs=2, batch_size=16, threads=1)


def set_a(data_dir: Path) -> tuple[Path, Path]:
    """The shared set A folder and its Outcomes file (skips when absent)."""
    root = data_dir / "ehr" / "physionet2012"
    folder, outcomes = root / "set-a", root / "Outcomes-a.txt"
    if not folder.is_dir() or not outcomes.is_file():
        pytest.skip("PhysioNet 2012 set A is not in the shared data directory")
    return folder, outcomes


def tiny_set(
    data_dir: Path, target: Path, survivors: int = 24, deaths: int = 12
) -> tuple[Path, Path]:
    """The first `survivors` and `deaths` stays of set A (by Outcomes order) as set ``x``."""
    folder, outcomes = set_a(data_dir)
    lines = outcomes.read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    keep = [r for r in rows if r[5] == "0"][:survivors] + [r for r in rows if r[5] == "1"][:deaths]
    out = target / "set-x"
    out.mkdir(parents=True)
    for row in keep:
        shutil.copy(folder / f"{row[0]}.txt", out / f"{row[0]}.txt")
    table = target / "Outcomes-x.txt"
    table.write_text("\n".join([lines[0], *(",".join(r) for r in keep)]) + "\n")
    return out, table


def train_tiny(data_dir: Path, registry: Path, work: Path) -> ProgressionModelVersion:
    """A tiny GRU-D registered as ``tiny`` in `registry` from 36 real stays (copied to `work`)."""
    data = work / "progression-data"
    folder, outcomes = (
        (data / "set-x", data / "Outcomes-x.txt") if data.is_dir() else tiny_set(data_dir, data)
    )
    outcome = train_progression_model(
        folder, outcomes, registry_dir=registry, name="tiny", config=TINY_CONFIG, bootstrap=20
    )
    assert outcome.version is not None
    return outcome.version
