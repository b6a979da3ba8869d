"""Use cases of progression models: train (and register) on a PhysioNet-2012-layout set,
evaluate a registered version on any set in the same layout, predict one stay.

Training splits the set by patient (`patient_split`, 80/20, seed 0): the network trains on
the first part with early stopping on the second's AUPRC, the temperature is fitted on the
second, and the card's metrics are the second part's, with bootstrap intervals and
subgroups. A set given to `evaluate_progression` is scored as it is, once.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clinsight.data.longitudinal import PatientRecord, patient_split
from clinsight.data.physionet2012 import (
    load_physionet2012,
    load_spec,
    parse_stay_text,
    read_stay,
)
from clinsight.data.progression_fhir import stay_from_bundle
from clinsight.data.tasks import ProgressionTask, get_task, task_samples
from clinsight.errors import DataError
from clinsight.evaluation.progression import calibrate, risk_report
from clinsight.evaluation.thresholds import choose_thresholds
from clinsight.inference.cache import ModelCache
from clinsight.inference.progression import (
    ProgressionAssessment,
    ProgressionPredictor,
    ProgressionResult,
    alert_level,
    predict_stay,
)
from clinsight.registry.progression import ProgressionModelVersion, register_progression_model
from clinsight.security.access import require_patient_access
from clinsight.security.workspace import record_assessment
from clinsight.sequence.binning import BinSpec, SequenceArrays, bin_samples
from clinsight.sequence.model import fit_progression_model
from clinsight.sequence.training import ProgressCallback, SequenceTrainConfig
from clinsight.store.actors import PatientAccess
from clinsight.store.audit import Outcome
from clinsight.store.repositories import StoreContext

__all__ = [
    "ALERT_TARGETS",
    "LIMITATIONS",
    "ProgressionTrainingOutcome",
    "alert_thresholds",
    "assess_progression",
    "assess_stored_progression",
    "evaluate_progression",
    "load_set",
    "model_bins",
    "predict_progression",
    "read_posted_stay",
    "train_progression_model",
    "training_split",
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


ALERT_TARGETS = {"warning_sensitivity": 0.80, "critical_specificity": 0.95}
"""What the deterioration card's cut-offs must achieve on validation: a ``warning`` at
every risk from which 80 % of the validation deaths are flagged, ``critical`` from the
risk above which 95 % of the validation survivors stay."""


def alert_thresholds(risk: Any, labels: Any) -> dict[str, Any] | None:
    """The ``warning`` and ``critical`` cut-offs on the calibrated risk, chosen on
    validation (`ALERT_TARGETS`), with what they achieved; None when the validation part
    lacks a death or a survivor."""
    try:
        chosen = choose_thresholds(
            risk, labels, sensitivity_target=ALERT_TARGETS["warning_sensitivity"],
            specificity_target=ALERT_TARGETS["critical_specificity"],
        )  # fmt: skip
    except DataError:
        return None
    return {
        "warning": min(chosen.low, chosen.high), "critical": chosen.high,
        "split": "validation", **{k: v for k, v in chosen.to_dict().items() if k != "split"},
    }  # fmt: skip


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


def training_split(arrays: SequenceArrays) -> tuple[SequenceArrays, SequenceArrays]:
    """The training and validation stays of a set: 80 / 20 by `patient_split` (seed 0).

    Raises:
        DataError: the set is too small to give both parts.
    """
    parts = patient_split(list(arrays.patient_ids), {"train": 0.8, "validation": 0.2}, seed=0)
    which = np.array([parts[p] for p in arrays.patient_ids])
    train, val = (
        arrays.take(np.flatnonzero(which == "train")),
        arrays.take(np.flatnonzero(which == "validation")),
    )
    if len(train) == 0 or len(val) == 0:
        raise DataError("the set is too small to split into training and validation stays.")
    return train, val


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
    train, val = training_split(arrays)
    model, trained = fit_progression_model(
        train, val, model_bins(), config, checkpoint_dir=checkpoint_dir, progress=progress
    )
    temperature = calibrate(model, val)
    val_risk = model.risk(val)
    report = risk_report(val.labels, val_risk, sex=val.sex, age=val.age, n_bootstrap=bootstrap)
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
            limitations=LIMITATIONS, thresholds=alert_thresholds(val_risk, val.labels),
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


def read_posted_stay(
    patient_id: str, *, bundle: Any = None, stay: str | None = None
) -> tuple[PatientRecord, tuple[str, ...], tuple[str, ...], str]:
    """The record of a stay posted as a FHIR Bundle or as PhysioNet-format text (exactly
    one), the report lines, the Observation ids used and the sha256 of the input.

    Raises:
        DataError: neither or both given, or the input is refused (see `stay_from_bundle`
            and `parse_stay_text`).
    """
    if (bundle is None) == (stay is None):
        raise DataError(
            "give either 'bundle' (a FHIR Bundle of Observations) or 'stay' (the text of a "
            "PhysioNet 2012 stay file), not both or neither."
        )
    spec = load_spec()
    if bundle is not None:
        canonical = json.dumps(bundle, sort_keys=True, default=str)
        read = stay_from_bundle(bundle, patient_id, spec)
        record, lines, ids = read.record, read.report.lines(), read.observation_ids
    else:
        canonical = str(stay)
        record, report = parse_stay_text(str(stay), patient_id, spec)
        lines, ids = report.lines(), ()
    return record, lines, ids, hashlib.sha256(canonical.encode()).hexdigest()


def assess_progression(
    predictor: ProgressionPredictor,
    record: PatientRecord,
    skipped: tuple[str, ...],
    observation_ids: tuple[str, ...],
    input_sha256: str,
) -> ProgressionAssessment:
    """The risk of one record with the version's alert level.

    Raises:
        DataError: the record has nothing to predict from.
    """
    task = get_task(str(predictor.version.task.get("name", "mortality48")))
    result = predict_stay(predictor, record, task, skipped)
    level = alert_level(predictor.version, result.risk)
    return ProgressionAssessment(result, level, observation_ids, input_sha256)


def assess_stored_progression(
    ctx: StoreContext,
    predictors: ModelCache,
    patient_id: str,
    *,
    bundle: Any = None,
    stay: str | None = None,
    model: str,
    version: int | None = None,
) -> ProgressionAssessment:
    """A stored patient's deterioration risk from a posted stay, with `version` of `model`
    (default: production): access checked first, the assessment stored for the patient's
    timeline and audited (model, version, sha256 of the input, level; no PHI), committed.
    A refused input is audited too (outcome failure, level ``refused``) and committed
    before the error goes up.

    Raises:
        PermissionDeniedError: the actor may not open this patient.
        ModelNotFoundError: no such model or version.
        DataError: see `read_posted_stay`.
    """
    access = require_patient_access(ctx.session, ctx.actor, patient_id, "progression.assess")
    predictor = predictors.progression(model, version)
    audited = {"resource_id": patient_id, "patient_id": patient_id,
               "break_glass": access is PatientAccess.BREAK_GLASS}  # fmt: skip
    try:
        record, lines, ids, sha = read_posted_stay(patient_id, bundle=bundle, stay=stay)
        assessment = assess_progression(predictor, record, lines, ids, sha)
    except DataError:
        ctx.audit(
            "progression.assess", "patient", outcome=Outcome.FAILURE, **audited,
            details={"model": predictor.version.name, "version": predictor.version.version,
                     "level": "refused"},
        )  # fmt: skip
        ctx.session.commit()  # the refusal is kept; the caller's rollback cannot undo it
        raise
    kept = record_assessment(
        ctx, patient_id, "progression", model_name=predictor.version.name,
        model_version=str(predictor.version.version), input_sha256=sha,
        summary={"probability": round(assessment.result.risk, 6), "level": assessment.level,
                 "artifact_sha256": predictor.version.artifact_sha256,
                 "task": str(predictor.version.task.get("name", "mortality48"))},
    )  # fmt: skip
    ctx.audit(
        "progression.assess", "patient", **audited,
        details={"model": predictor.version.name, "version": predictor.version.version,
                 "input_sha256": sha, "level": assessment.level,
                 "observations": len(record.measurements), "assessment_id": kept.id},
    )  # fmt: skip
    ctx.session.commit()
    return assessment
