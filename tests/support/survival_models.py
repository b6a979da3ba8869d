"""A small real survival model (GBSG2, Cox PH, 3-fold CV, two band refits) shared by tests."""

from __future__ import annotations

from pathlib import Path

from clinsight.data.survival import load_survival_dataset
from clinsight.registry.stages import Stage
from clinsight.registry.survival import REGISTRY, SurvivalModelVersion
from clinsight.services.survival_training import train_survival_model

SURVIVAL_MODEL = "gbsg2-test"
PATIENT = {
    "age": 50.0, "estrec": 30.0, "horTh": "no", "menostat": "Post", "pnodes": 5.0,
    "progrec": 30.0, "tgrade": "II", "tsize": 25.0,
}  # fmt: skip


def train_gbsg2(
    registry_dir: Path, *, model: str = "cox", production: bool = True
) -> SurvivalModelVersion:
    """Cox PH (or `model`) on GBSG2: 3-fold CV, one repeat, 5 trees, 2 band refits."""
    outcome = train_survival_model(
        load_survival_dataset("gbsg2"), registry_dir=registry_dir, name=SURVIVAL_MODEL,
        candidates={model: {"model": model}}, n_splits=3, n_repeats=1, n_trees=5,
        band_refits=2, bootstrap=20,
    )  # fmt: skip
    assert outcome.version is not None
    if not production:
        return outcome.version
    return REGISTRY.promote(registry_dir, SURVIVAL_MODEL, outcome.version.version, Stage.PRODUCTION)
