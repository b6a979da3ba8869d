"""Train, evaluate and register a segmentation model; score a registered one on any folder.

Training draws an image-level split with the run's seed (stored with the model), trains on
the training part with early stopping on validation Dice, scores the validation images at
their own resolution, fits the intended-use gate (input statistics on the training part,
limit on validation; colour or greyscale from the data) and registers the network with
its card and plots. `evaluate_segmentation` scores a registered version through ONNX
Runtime on a folder in any supported layout (a held-out set the model never saw).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clinsight.data.segmentation import (
    SegmentationDataset,
    SegmentationSample,
    load_segmentation_dataset,
    read_case,
    seeded_split,
)
from clinsight.errors import DataError
from clinsight.evaluation.ood import (
    SATURATION_LIMIT,
    ExpectedHeaders,
    IntendedUseGate,
    colour_saturation,
    fit_feature_gate,
    input_statistics,
)
from clinsight.evaluation.plots import plot_dice_histogram, plot_worst_cases
from clinsight.evaluation.segmentation import SegmentationReport, segmentation_report
from clinsight.imaging.mask_cleanup import keep_largest as cleaned
from clinsight.imaging.segmentation import (
    PairArrays,
    ProgressCallback,
    SegmentationTrainResult,
    network_input,
    predict_mask,
    prepare_pairs,
    train_segmentation_model,
)
from clinsight.imaging.segmentation_networks import SegmentationNetworkConfig
from clinsight.imaging.specs import TrainConfig
from clinsight.imaging.transforms import PreprocessSpec
from clinsight.inference.cache import model_cache
from clinsight.inference.segmentation import SegmentationPredictor
from clinsight.registry.segmentation import SegmentationModelVersion, register_segmentation_model
from clinsight.registry.versions import ModelKind

__all__ = [
    "SegmentationOutcome",
    "evaluate_segmentation",
    "fit_segmentation_gate",
    "train_and_register_segmentation",
]

REJECTION_TARGET = 0.02
_HEADERS = {
    "kvasir-seg": ExpectedHeaders(modality=("ES",)),
    "covid19-cxr-segmentations": ExpectedHeaders(modality=("CR", "DX"), body_part=("CHEST",)),
}
_INTENDED_USE = {
    "kvasir-seg": (
        "Research use: outline polyps in white-light colonoscopy frames for a clinician to "
        "review. Not for other endoscopy, other modalities, or unsupervised decisions."
    ),
    "covid19-cxr-segmentations": (
        "Research use: outline the lung fields of adult frontal chest radiographs (for "
        "measurements and for checking where an explanation lies). Not for children or "
        "other views."
    ),
}


@dataclass(frozen=True)
class SegmentationOutcome:
    """A training run, its validation report and the registered version (None if not)."""

    train: SegmentationTrainResult
    validation: SegmentationReport
    model: SegmentationModelVersion | None


def _samples(dataset: SegmentationDataset, ids: Sequence[str]) -> list[SegmentationSample]:
    return [read_case(dataset, case) for case in dataset.subset(ids)]


def _statistics(images: Sequence[Any], spec: PreprocessSpec) -> np.ndarray[Any, Any]:
    batch = np.stack([network_input(image, spec) for image in images])
    return input_statistics(batch)


def fit_segmentation_gate(
    dataset: SegmentationDataset,
    train: Sequence[SegmentationSample],
    val: Sequence[SegmentationSample],
    spec: PreprocessSpec,
    *,
    rejection_target: float = REJECTION_TARGET,
) -> IntendedUseGate:
    """The gate of a segmentation model: header values of its layout, the colour check
    (a greyscale model refuses colour pictures; a colour model greyscale ones, below half
    the training images' lowest 1 % of colour saturation) and an input-statistics gate.

    Raises:
        DataError: too few images to fit the gate (two training, one validation).
    """
    stats_train = _statistics([s.image for s in train], spec)
    stats_val = _statistics([s.image for s in val], spec)
    inputs = fit_feature_gate(
        stats_train, np.zeros(len(stats_train), dtype=np.int64), stats_val,
        rejection_target=rejection_target,
    )  # fmt: skip
    greyscale = dataset.channels == 1
    colour_minimum = None
    if not greyscale:
        saturation = [colour_saturation(s.image) for s in train]
        colour_minimum = min(SATURATION_LIMIT, 0.5 * float(np.quantile(saturation, 0.01)))
    return IntendedUseGate(
        noun=dataset.image_noun, headers=_HEADERS.get(dataset.layout, ExpectedHeaders()),
        inputs=inputs, greyscale=greyscale, colour_minimum=colour_minimum,
    )  # fmt: skip


def _plots(report: SegmentationReport, samples: Sequence[SegmentationSample],
           predicted: Sequence[Any], folder: Path) -> list[Path]:  # fmt: skip
    worst = report.worst(min(4, len(samples)))
    dice = report.dice_per_image()
    return [
        plot_dice_histogram(dice, folder / "dice_histogram.png", title="Validation Dice"),
        plot_worst_cases(
            [samples[i].image for i in worst], [samples[i].mask for i in worst],
            [predicted[i] for i in worst],
            [f"{samples[i].case_id[:18]} · Dice {dice[i]:.2f}" for i in worst],
            folder / "worst_cases.png",
        ),
    ]  # fmt: skip


def train_and_register_segmentation(
    registry_dir: Path,
    data_root: Path,
    config: TrainConfig,
    *,
    layout: str | None = None,
    name: str | None = None,
    image_size: int = 128,
    depth: int = 4,
    val_fraction: float = 0.1,
    heart: bool = False,
    run_dir: Path | None = None,
    register: bool = True,
    intended_use: str | None = None,
    progress: ProgressCallback | None = None,
    keep_largest: int = 0,
) -> SegmentationOutcome:
    """Split, train, score on validation and (with `register`) register a segmentation model.

    `run_dir` keeps the checkpoint (a later run with the same folder resumes) and plots.
    `keep_largest` > 0 keeps that many largest pieces of each label, holes filled, in the
    validation masks and, recorded with the model, in every mask it predicts.

    Raises:
        DataError: the dataset cannot be read or split (see `data.segmentation`).
        ModelError: the network cannot be trained or exported.
        RegistryError: the model cannot be registered.
    """
    dataset = load_segmentation_dataset(Path(data_root), layout, heart=heart)
    n_val = max(1, round(val_fraction * len(dataset.cases)))
    split = seeded_split(dataset.ids, val=n_val, seed=config.seed)
    spec = PreprocessSpec(image_size, dataset.channels)
    train_samples, val_samples = _samples(dataset, split.train), _samples(dataset, split.val)
    train: PairArrays = prepare_pairs(train_samples, spec)
    val: PairArrays = prepare_pairs(val_samples, spec)
    net = SegmentationNetworkConfig(
        config.architecture, dataset.channels, len(dataset.labels), config.width, depth,
        config.dropout,
    )  # fmt: skip
    checkpoint = None if run_dir is None else Path(run_dir) / "checkpoint"
    result = train_segmentation_model(
        train, val, config, net, spec, checkpoint_dir=checkpoint, progress=progress
    )
    predicted = [predict_mask(result.network, s.image, spec) for s in val_samples]
    if keep_largest:
        predicted = [cleaned(mask, keep_largest) for mask in predicted]
    report = segmentation_report(
        [s.case_id for s in val_samples], predicted, [s.mask for s in val_samples],
        dataset.labels, seed=config.seed,
    )  # fmt: skip
    model = None
    if register:
        gate = fit_segmentation_gate(dataset, train_samples, val_samples, spec)
        training = {
            "dataset": dataset.name, "layout": dataset.layout, "data_sha256":
            dataset.fingerprint(), "config": config.to_dict(), "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch, "stopped_because": result.stopped_because,
            "minutes": result.seconds / 60, "best_val_dice_network_size": result.best_val_dice,
            "keep_largest": keep_largest,
        }  # fmt: skip
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(run_dir) / "plots" if run_dir is not None else Path(scratch)
            plots = _plots(report, val_samples, predicted, folder)
            model = register_segmentation_model(
                registry_dir, name=name or dataset.name, network=result.network,
                network_config=net, preprocess=spec, labels=dataset.labels, split=split,
                metrics={"validation": report.to_dict(with_images=False)}, training=training,
                intended_use=intended_use or _INTENDED_USE.get(dataset.layout, (
                    f"Research use: outline the {dataset.labels[1]} in {dataset.image_noun}s "
                    "like the training images, for a clinician to review.")),
                intended_use_gate=gate, plots=plots,
            )  # fmt: skip
    return SegmentationOutcome(result, report, model)


def evaluate_segmentation(
    registry_dir: Path,
    name: str,
    data_root: Path,
    *,
    version: int | None = None,
    layout: str | None = None,
    plots_dir: Path | None = None,
    threads: int = 1,
) -> SegmentationReport:
    """Score a registered model (ONNX Runtime) on every case of a folder.

    Raises:
        ModelNotFoundError: no such model or version (none in production when unversioned).
        DataError: the folder cannot be read, or its labels differ from the model's.
    """
    cache = model_cache(registry_dir, threads=threads)
    predictor: SegmentationPredictor = cache.load(
        ModelKind.SEGMENTATION, name, version, newest=True
    ).model
    labels = predictor.model.labels
    dataset = load_segmentation_dataset(Path(data_root), layout, heart=len(labels) > 2)
    if dataset.labels[1:] != labels[1:] and dataset.layout != "folder":
        raise DataError(
            f"The folder's labels {list(dataset.labels[1:])} differ from the model's "
            f"{list(labels[1:])}."
        )
    samples = [read_case(dataset, case) for case in dataset.cases]
    predicted = [predictor.mask_of(s.image) for s in samples]
    report = segmentation_report(
        [s.case_id for s in samples], predicted, [s.mask for s in samples], labels
    )
    if plots_dir is not None:
        _plots(report, samples, predicted, Path(plots_dir))
    return report
