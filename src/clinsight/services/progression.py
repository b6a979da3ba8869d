"""Use cases of progression models: train (and register) on a PhysioNet-2012-layout set,
evaluate a registered version on any set in the same layout, predict one stay.

Training splits the set by patient (`patient_split`, 80/20, seed 0): the network trains on
the first part with early stopping on the second's AUPRC, the temperature is fitted on the
second, and the card's metrics are the second part's, with bootstrap intervals and
subgroups. A set given to `evaluate_progression` is scored as it is, once.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clinsight.data.longitudinal import patient_split
from clinsight.data.physionet2012 import load_physionet2012, load_spec, read_stay
from clinsight.data.tasks import ProgressionTask, get_task, task_samples
from clinsight.errors import DataError
from clinsight.evaluation.progression import calibrate, risk_report
from clinsight.inference.progression import ProgressionPredictor, ProgressionResult, predict_stay
from clinsight.registry.progression import ProgressionModelVersion, register_progression_model
from clinsight.sequence.binning import BinSpec, SequenceArrays, bin_samples
from clinsight.sequence.model import fit_progression_model
from clinsight.sequence.training import ProgressCallback, SequenceTrainConfig

__all__ = [
    "LIMITATIONS",
    "ProgressionTrainingOutcome",
    "evaluate_progression",
    "load_set",
    "predict_progression",
    "train_progression_model",
]

LIMITATIONS = (
    "Trained on adult ICU stays of one US hospital group (PhysioNet 2012, MIMIC-II origin); "
    "performance at another site or era is unknown until validated there.",
    "The risk is made at 48 h after ICU admission from those 48 h; earlier windows are not "
    "what it was trained on.",
    "Implausible values are read as not recorded and listed; the mask tells the model what "
    "was measured, so a stay measured rarely is scored from little.",
    "Decision support only: the risk and the variables that drove it must be reviewed by a "
    "clinician.",
)


def _fingerprint(arrays: SequenceArrays) -> str:
    digest = hashlib.sha256()
    for part in (arrays.values, arrays.static, arrays.labels):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def load_set(
    folder: Path, outcomes: Path | None, task: ProgressionTask
) -> tuple[SequenceArrays, tuple[str, ...]]:
    """A set's stays binned for `task`, and the loader's report lines.

    Raises:
        DataError: see `load_physionet2012` and `bin_samples`.
    """
    spec = load_spec()
    cohort = load_physionet2012(folder, outcomes, spec=spec)
    samples, report = task_samples(task, cohort, with_label=outcomes is not None)
    return bin_samples(samples, BinSpec.from_spec(spec)), report.lines()


@dataclass(frozen=True)
class ProgressionTrainingOutcome:
    """The validation metrics and the registered version (if a registry was given)."""

    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    version: ProgressionModelVersion | None


def train_progression_model(
    folder: Path,
    outcomes: Path,
    *,
    registry_dir: Path | None,
    name: str,
    config: SequenceTrainConfig,
    task_name: str = "mortality48",
    bootstrap: int = 1000,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> ProgressionTrainingOutcome:
    """Train, calibrate and validate a progression model; register it with a registry.

    Raises:
        DataError: the set is malformed or gives no stays.
        ModelError: the training configuration cannot be trained.
        RegistryError: the model could not be registered.
    """
    task = get_task(task_name)
    arrays, skipped = load_set(folder, outcomes, task)
    parts = patient_split(list(arrays.patient_ids), {"train": 0.8, "validation": 0.2}, seed=0)
    which = np.array([parts[p] for p in arrays.patient_ids])
    train, val = (
        arrays.take(np.flatnonzero(which == "train")),
        arrays.take(np.flatnonzero(which == "validation")),
    )
    if len(train) == 0 or len(val) == 0:
        raise DataError("the set is too small to split into training and validation stays.")
    model, trained = fit_progression_model(
        train, val, model_bins(), config, checkpoint_dir=checkpoint_dir, progress=progress
    )
    temperature = calibrate(model, val)
    report = risk_report(
        val.labels, model.risk(val), sex=val.sex, age=val.age, n_bootstrap=bootstrap
    )
    metrics = {
        "protocol": "20 % of the stays by patient_split (seed 0), used for early stopping "
        "and the temperature as well: optimistic; score a separate set with "
        "`clinsight progression evaluate`",
        "validation": report,
    }
    history = [vars(e) | {} for e in trained.history]
    version = None
    if registry_dir is not None:
        training = {
            "dataset": folder.name, "data_sha256": _fingerprint(arrays), "stays": len(arrays),
            "train_stays": len(train), "validation_stays": len(val),
            "config": config.to_dict(), "best_epoch": trained.best_epoch,
            "epochs_run": len(trained.history), "seconds": trained.seconds,
            "stopped_because": trained.stopped_because, "temperature": temperature,
            "skipped": list(skipped), "python": platform.python_version(),
            "torch": torch.__version__,
        }  # fmt: skip
        population = {
            "stays": len(arrays), "deaths": int(arrays.labels.sum()),
            "age_range": [float(np.nanmin(arrays.age)), float(np.nanmax(arrays.age))],
        }  # fmt: skip
        version = register_progression_model(
            registry_dir, name=name, model=model, task=task.describe(), population=population,
            metrics=metrics, training=training,
            intended_use=(
                "Decision support: the probability of in-hospital death of an adult ICU "
                "patient, at 48 h after admission, from the vital signs and laboratory "
                "values of those 48 h, with the variables and hours that drove it, for "
                "review by a clinician. Not a triage rule or a treatment decision."
            ),
            limitations=LIMITATIONS,
        )  # fmt: skip
    return ProgressionTrainingOutcome(metrics, history, version)


def model_bins() -> BinSpec:
    """The bins of the packaged PhysioNet 2012 variable spec (hourly over 48 h)."""
    return BinSpec.from_spec(load_spec())


def evaluate_progression(
    predictor: ProgressionPredictor, folder: Path, outcomes: Path, *, bootstrap: int = 1000
) -> dict[str, Any]:
    """A registered model's metrics on a set in the PhysioNet 2012 layout (scored once).

    Raises:
        DataError: the set is malformed or gives no labelled stays.
    """
    task = get_task(str(predictor.version.task.get("name", "mortality48")))
    arrays, skipped = load_set(folder, outcomes, task)
    report = risk_report(
        arrays.labels, predictor.risk(arrays), sex=arrays.sex, age=arrays.age,
        n_bootstrap=bootstrap,
    )  # fmt: skip
    return {"set": folder.name, "model": {"name": predictor.version.name,
            "version": predictor.version.version}, "skipped": list(skipped), **report}  # fmt: skip


def predict_progression(predictor: ProgressionPredictor, stay: Path) -> ProgressionResult:
    """One stay file's risk at 48 h and what drove it.

    Raises:
        DataError: the file is malformed, names an unknown variable, goes back in time, or
            holds no usable observation.
    """
    task = get_task(str(predictor.version.task.get("name", "mortality48")))
    record, report = read_stay(stay)
    return predict_stay(predictor, record, task, report.lines())
