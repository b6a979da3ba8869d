"""Use case: train an image model on a MedMNIST dataset, evaluate it on the untouched test
split (calibration and decision rule chosen on validation), and register it with its card."""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from clinsight.data.medmnist import MedMNISTSplits, Split, TaskType, load_medmnist
from clinsight.evaluation.drift import Baseline, build_baseline
from clinsight.evaluation.report import EvaluationReport, evaluate_predictions
from clinsight.evaluation.selection import (
    Calibrator,
    DecisionRule,
    choose_calibration,
    choose_decision_rule,
)
from clinsight.evaluation.thresholds import INDETERMINATE, DecisionThresholds, choose_thresholds
from clinsight.imaging.specs import TrainConfig, stopping_rule
from clinsight.imaging.training import (
    ProgressCallback,
    TrainResult,
    predict_logits,
    train_image_model,
)
from clinsight.imaging.transforms import Preprocess
from clinsight.inference.runtime import OnnxClassifier
from clinsight.registry.image import ModelVersion, get_model, register_model
from clinsight.services.distributed_training import train_data_parallel
from clinsight.services.intended_use import fit_intended_use_gate

__all__ = [
    "ImageTrainingOutcome",
    "choose_on_validation",
    "evaluate_registered_model",
    "split_logits",
    "train_and_register",
    "validation_baseline",
    "validation_thresholds",
]

LIMITATIONS = (
    "Trained on low-resolution public research images; not validated on this site's "
    "scanners, patients or prevalence. Re-evaluate before any clinical use.",
    "The probability is calibrated on the validation split of the training data; "
    "calibration may drift under dataset shift.",
    "Decision support only: the finding must be confirmed by a qualified clinician.",
)


@dataclass(frozen=True)
class ImageTrainingOutcome:
    """What a training run produced: the trained network, its test evaluation, its version."""

    train: TrainResult
    report: EvaluationReport
    model: ModelVersion | None
    run_dir: Path


def split_logits(
    network: torch.nn.Module, data: MedMNISTSplits, preprocess: Preprocess, split: Split
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """PyTorch logits and labels of one split, preprocessed exactly as at inference."""
    images, labels = data.split(split)
    return predict_logits(network, torch.from_numpy(preprocess.batch(images))), labels


def _labels_for_metrics(labels: NDArray[np.int64], multi_label: bool) -> NDArray[np.int64]:
    return labels if multi_label else labels[:, 0]


def validation_thresholds(
    val_logits: NDArray[np.float32],
    val_labels: NDArray[np.int64],
    calibrator: Calibrator,
    task: TaskType,
    positive_index: int,
) -> DecisionThresholds | None:
    """The decision band of a binary model from its calibrated validation probabilities
    (targets: sensitivity and specificity 0.95); None for other tasks.

    Raises:
        DataError: the logits are malformed or the validation split lacks a class.
    """
    if task is not TaskType.BINARY:
        return None
    probs = calibrator.probabilities(val_logits, task)[:, positive_index]
    return choose_thresholds(probs, val_labels.ravel() == positive_index)


def validation_baseline(
    data: MedMNISTSplits,
    val_logits: NDArray[np.float32],
    calibrator: Calibrator,
    thresholds: DecisionThresholds | None,
) -> Baseline | None:
    """The drift baseline of a binary model (`evaluation.drift`): its calibrated validation
    probabilities, findings and images' mean intensity; None for other tasks.

    Raises:
        DataError: the logits are malformed.
    """
    info = data.info
    if info.task is not TaskType.BINARY:
        return None
    probs = calibrator.probabilities(val_logits, info.task)[:, info.positive_index]
    positive, negative = info.labels[info.positive_index], info.labels[1 - info.positive_index]
    if thresholds is None:
        decisions = [positive if p >= 0.5 else negative for p in probs]
    else:
        decisions = [thresholds.decide(float(p), positive, negative) for p in probs]
    images = data.split(Split.VAL)[0]
    intensity = images.reshape(len(images), -1).mean(axis=1) / 255.0
    return build_baseline(
        probs, intensity, decisions, positive_label=positive,
        indeterminate=INDETERMINATE if thresholds is not None else None,
    )  # fmt: skip


def choose_on_validation(
    val_logits: NDArray[np.float32],
    val_labels: NDArray[np.int64],
    train_labels: NDArray[np.int64],
    task: TaskType,
    positive_index: int,
    seed: int = 0,
) -> tuple[Calibrator, DecisionRule | None]:
    """The calibration (cross-fitted validation ECE) and, for single-label tasks, the
    decision rule (on the out-of-fold calibrated validation probabilities) of a model.

    Raises:
        DataError: the logits are malformed or the validation split is too small.
    """
    labels = _labels_for_metrics(val_labels, task is TaskType.MULTI_LABEL)
    calibrator, out_of_fold = choose_calibration(val_logits, labels, task, seed=seed)
    if task is TaskType.MULTI_LABEL:
        return calibrator, None
    rule = choose_decision_rule(
        out_of_fold, labels, train_labels, task, positive_index=positive_index
    )
    return calibrator, rule


def _intended_use(data: MedMNISTSplits) -> str:
    info = data.info
    return (
        f"Decision support for {info.description.lower()} ({info.modality}): suggests one of "
        f"{', '.join(info.labels)} with a calibrated probability and a Grad-CAM heat map, for "
        "review by a clinician. Not for autonomous diagnosis."
    )


def train_and_register(
    data_dir: Path,
    registry_dir: Path,
    dataset: str,
    config: TrainConfig,
    *,
    size: int = 28,
    name: str | None = None,
    run_dir: Path,
    register: bool = True,
    resume: bool = False,
    n_bootstrap: int = 1000,
    progress: ProgressCallback | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    limitations: Sequence[str] = (),
) -> ImageTrainingOutcome:
    """Train on `dataset`, evaluate on its test split, and (by default) register the model
    (its card lists the standard limitations and then `limitations`).

    With `workers` > 1 the training is data-parallel on Ray Train
    (`services.distributed_training`, a local Ray instance unless `ray_address`); the rest
    (evaluation, choices on validation, card, registration) is the same.

    Nothing here looks at the test split before the model, its class weighting, its epoch,
    its calibration, its decision rule and (binary tasks) its decision thresholds are fixed,
    all on the validation split; the card records each choice with its validation evidence.
    The run folder keeps the checkpoint, plots and `evaluation.json`.

    Raises:
        DataNotFoundError, ChecksumError: the dataset file is missing or corrupt.
        ModelError: training or export failed.
        RegistryError: the model could not be registered.
    """
    data = load_medmnist(data_dir, dataset, size)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint"
    if not resume:
        shutil.rmtree(checkpoint, ignore_errors=True)  # an ensemble keeps one folder per network
    if workers > 1:
        result = train_data_parallel(
            data_dir, dataset, config, size=size, workers=workers, checkpoint_dir=checkpoint,
            address=ray_address,
        )  # fmt: skip
    else:
        result = train_image_model(data, config, checkpoint_dir=checkpoint, progress=progress)
    preprocess = Preprocess(result.preprocess)
    multi_label = data.info.task.value == "multi-label"
    val_logits, val_labels = split_logits(result.network, data, preprocess, Split.VAL)
    calibrator, rule = choose_on_validation(
        val_logits, val_labels, data.labels[Split.TRAIN], data.info.task,
        data.info.positive_index, config.seed,
    )  # fmt: skip
    test_logits, test_labels = split_logits(result.network, data, preprocess, Split.TEST)
    report = evaluate_predictions(
        _labels_for_metrics(test_labels, multi_label),
        test_logits,
        val_logits,
        _labels_for_metrics(val_labels, multi_label),
        data.info.task,
        data.info.labels,
        data.info.positive_index,
        out_dir=run_dir,
        n_bootstrap=n_bootstrap,
        seed=config.seed,
        calibrator=calibrator,
        decision_rule=rule,
    )
    training = {
        "dataset": data.info.name,
        "image_size": size,
        "data_file_md5": data.md5,
        "data_sha256": result.data_sha256,
        "splits": {s.value: len(data.labels[s]) for s in Split},
        "config": config.to_dict(),
        "data_parallel_workers": workers,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_because": result.stopped_because,
        "seconds": round(result.seconds, 1),
        "networks": [asdict(member) for member in result.members],
        "val_auc": result.val_auc,
        "class_weighting": result.class_weighting,
        "early_stopping": stopping_rule(config),
        "history": [asdict(record) for record in result.history],
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} threads",
    }
    thresholds = validation_thresholds(
        val_logits, val_labels, calibrator, data.info.task, data.info.positive_index
    )
    record = {"training": training, "evaluation": report.to_dict()}
    if thresholds is not None:
        record["decision_thresholds"] = thresholds.to_dict()
    (run_dir / "evaluation.json").write_text(json.dumps(record, indent=2, default=str))
    model = None
    if register:
        gate = fit_intended_use_gate(result.network, data, preprocess)  # validation limit
        model = register_model(
            registry_dir,
            name=name or data.info.name,
            network=result.network,
            network_config=result.network_config,
            preprocess=result.preprocess,
            labels=data.info.labels,
            task=data.info.task,
            positive_index=data.info.positive_index,
            temperature=report.temperature,
            metrics=report.to_dict(),
            training=training,
            plots=list(report.plots.values()),
            intended_use=_intended_use(data),
            limitations=(*LIMITATIONS, *limitations),
            decision_thresholds=thresholds,
            intended_population=data.info.population,
            baseline=validation_baseline(data, val_logits, calibrator, thresholds),
            intended_use_gate=gate,
            calibration=calibrator,
            decision_rule=rule,
        )
    return ImageTrainingOutcome(train=result, report=report, model=model, run_dir=run_dir)


def evaluate_registered_model(
    data_dir: Path,
    registry_dir: Path,
    name: str,
    *,
    version: int | None = None,
    stage: str | None = None,
    dataset: str | None = None,
    out_dir: Path | None = None,
    threads: int = 1,
    n_bootstrap: int = 1000,
) -> tuple[ModelVersion, EvaluationReport]:
    """Evaluate a registered model through ONNX Runtime on a dataset's test split.

    The model's calibration and decision rule (chosen on validation at training) are
    applied as registered; a model without them has its temperature refitted on the
    validation split (reproducing the registered one for the model's own dataset).

    Raises:
        ModelNotFoundError, IntegrityError: the version is missing or altered.
        DataNotFoundError, ChecksumError: the dataset file is missing or corrupt.
    """
    model = get_model(registry_dir, name, version, stage)
    dataset_name = dataset or str(model.training.get("dataset", name))
    size = int(model.training.get("image_size", 28))
    data = load_medmnist(data_dir, dataset_name, size)
    session = OnnxClassifier(model.onnx_path, threads=threads)
    preprocess = Preprocess(model.preprocess)
    multi_label = model.task.value == "multi-label"
    logits: dict[Split, NDArray[np.float32]] = {}
    for split in (Split.VAL, Split.TEST):
        batch = preprocess.batch(data.split(split)[0])
        logits[split] = np.concatenate(
            [session.logits(batch[i : i + 256]) for i in range(0, len(batch), 256)]
        )
    report = evaluate_predictions(
        _labels_for_metrics(data.labels[Split.TEST], multi_label),
        logits[Split.TEST],
        logits[Split.VAL],
        _labels_for_metrics(data.labels[Split.VAL], multi_label),
        model.task,
        model.labels,
        model.positive_index,
        out_dir=out_dir,
        n_bootstrap=n_bootstrap,
        calibrator=model.calibration,
        decision_rule=model.decision_rule,
    )
    return model, report
