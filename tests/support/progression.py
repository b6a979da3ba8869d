"""A few real PhysioNet 2012 stays copied from set A into a temporary set (never into git),
and a tiny progression model trained on them."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clinsight.data.physionet2012 import SYSTEM, load_spec
from clinsight.registry.progression import ProgressionModelVersion
from clinsight.sequence.training import SequenceTrainConfig
from clinsight.services.progression import train_progression_model

__all__ = ["TINY_CONFIG", "set_a", "stay_bundle", "tiny_set", "train_tiny"]

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


def stay_bundle(stay: Path, start: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    """The time series of a PhysioNet 2012 stay file as a FHIR Bundle of Observations coded
    with the spec's LOINC codes (the variables without one by the spec's name), each with
    an id, starting at an ICU Encounter at `start`."""
    spec = load_spec()
    origin = datetime.fromisoformat(start)
    entries: list[dict[str, Any]] = [{"resource": {
        "resourceType": "Encounter", "id": "icu", "status": "finished",
        "class": {"code": "IMP"}, "period": {"start": start},
    }}]  # fmt: skip
    for number, line in enumerate(stay.read_text().splitlines()[1:]):
        time, name, value = line.split(",")
        if (
            name not in spec.variables
            or float(value) < 0
            or (time == "00:00" and name in spec.descriptors)
        ):
            continue
        variable = spec.variables[name]
        hours, minutes = (int(p) for p in time.split(":"))
        coding = (
            {"system": "http://loinc.org", "code": variable.codes[0].split("|")[1]}
            if variable.codes else {"system": SYSTEM, "code": name}
        )  # fmt: skip
        moment = origin + timedelta(hours=hours, minutes=minutes)
        entries.append({"resource": {
            "resourceType": "Observation", "id": f"obs-{number}", "status": "final",
            "code": {"coding": [coding]}, "effectiveDateTime": moment.isoformat(),
            "valueQuantity": {"value": float(value), "unit": variable.unit},
        }})  # fmt: skip
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
