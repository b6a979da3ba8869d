"""The image recipe's validation choices, measured on the test split of four task types.

For each task the default recipe's choices are made on validation only: class weighting
(pilot runs, `TrainConfig.class_weighting="auto"`), then the calibration (none, temperature
or vector scaling, cross-fitted ECE) and the decision rule (arg-max, prior-corrected, or for
ordinal tasks the median grade; validation balanced accuracy, QWK for ordinal). The test split
is read once, at the end: accuracy, balanced accuracy (QWK for ordinal) and ECE of the raw
arg-max ("before") and of the chosen calibration and rule ("after"), and for comparison the
ECE of the former calibration (a temperature fitted on the whole validation split).

Tasks, all 28 x 28 grey images from the two files in the data directory:

- ``pneumoniamnist`` and ``breastmnist``: the official files and splits (binary).
- ``dataset_x_label`` (multi-class, 4 classes): every image of both files, class =
  2 x dataset + label (0 pneumonia normal, 1 pneumonia pneumonia, 2 breast malignant,
  3 breast normal/benign); each official split is the union of both files' same split
  (train 1214/3494/147/399: imbalanced, 24 : 1).
- ``pneumonia_tiles`` (ordinal, 5 grades): a 2 x 2 mosaic of four PneumoniaMNIST images
  (each downscaled to 14 x 14 by 2 x 2 averaging) graded by how many show pneumonia (0-4).
  Each tile is drawn from the same official split (so no image crosses splits), pneumonia
  with probability 0.6, uniformly among that split's images of its class; 1,000 / 400 / 600
  mosaics (seeded), so grades are imbalanced (about 3 / 15 / 35 / 35 / 13 %).

Small fixed sizes keep the part near 20 minutes on 2 shared cores: the compact CNN (width
8), `EPOCHS` epochs, `PILOT_EPOCHS` per pilot, a seeded random `TRAIN_SUBSET` of each
training split larger than that (validation and test splits whole), one seed (`SEED`).
Run through ``benchmarks/safety.py --part imaging_recipe``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from clinsight.config import get_settings
from clinsight.data.medmnist import (
    MedMNISTInfo,
    MedMNISTSplits,
    Split,
    TaskType,
    load_medmnist,
)
from clinsight.evaluation.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)
from clinsight.evaluation.report import evaluate_predictions
from clinsight.imaging.specs import TrainConfig
from clinsight.imaging.training import train_image_model
from clinsight.imaging.transforms import Preprocess
from clinsight.services.training import choose_on_validation, split_logits

__all__ = ["EPOCHS", "PILOT_EPOCHS", "SEED", "readme_section", "recipe_figures"]

SEED = 0
EPOCHS = 5
PILOT_EPOCHS = 2
TRAIN_SUBSET = 800
CONFIG = TrainConfig(
    architecture="cnn", width=8, epochs=EPOCHS, pilot_epochs=PILOT_EPOCHS, seed=SEED, threads=1,
    train_subset=TRAIN_SUBSET,
)  # fmt: skip
MOSAICS = {Split.TRAIN: 1000, Split.VAL: 400, Split.TEST: 600}
TILE_PNEUMONIA = 0.6


def _info(name: str, task: TaskType, labels: tuple[str, ...], description: str) -> MedMNISTInfo:
    return MedMNISTInfo(
        name=name, description=description, modality="synthetic (from MedMNIST files)",
        task=task, labels=labels, channels=1, md5={28: "0" * 32},
    )  # fmt: skip


def dataset_x_label(pneumonia: MedMNISTSplits, breast: MedMNISTSplits) -> MedMNISTSplits:
    """The 4-class task: class = 2 x dataset (0 pneumonia, 1 breast) + the file's label."""
    images, labels = {}, {}
    for split in Split:
        (pi, pl), (bi, bl) = pneumonia.split(split), breast.split(split)
        images[split] = np.concatenate([pi, bi])
        labels[split] = np.concatenate([pl, bl + 2]).astype(np.int64)
    labels_ = ("chest normal", "chest pneumonia", "breast malignant", "breast normal/benign")
    info = _info("dataset_x_label", TaskType.MULTI_CLASS, labels_, "Dataset x label")
    return MedMNISTSplits(info=info, size=28, images=images, labels=labels, md5="0" * 32)


def _tile(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """28 x 28 images downscaled to 14 x 14 by 2 x 2 averaging."""
    small = images.reshape(len(images), 14, 2, 14, 2).astype(np.float64).mean(axis=(2, 4))
    return np.asarray(np.round(small), dtype=np.uint8)


def pneumonia_tiles(pneumonia: MedMNISTSplits) -> MedMNISTSplits:
    """The ordinal task: 2 x 2 mosaics graded by their number of pneumonia tiles (0-4)."""
    rng = np.random.default_rng(SEED)
    images, labels = {}, {}
    for split in Split:
        source, y = pneumonia.split(split)
        tiles = _tile(source)
        by_class = [np.flatnonzero(y[:, 0] == c) for c in (0, 1)]
        n = MOSAICS[split]
        positive = rng.random((n, 4)) < TILE_PNEUMONIA
        mosaics = np.zeros((n, 28, 28), dtype=np.uint8)
        for i in range(n):
            for q in range(4):
                pool = by_class[int(positive[i, q])]
                r, c = divmod(q, 2)
                mosaics[i, 14 * r : 14 * r + 14, 14 * c : 14 * c + 14] = tiles[rng.choice(pool)]
        images[split] = mosaics
        labels[split] = positive.sum(axis=1, keepdims=True).astype(np.int64)
    grades = tuple(f"{g} of 4 tiles pneumonia" for g in range(5))
    info = _info("pneumonia_tiles", TaskType.ORDINAL, grades, "Pneumonia tile count")
    return MedMNISTSplits(info=info, size=28, images=images, labels=labels, md5="0" * 32)


def _scores(values: dict[str, float], ece: float) -> dict[str, float]:
    keep = ("accuracy", "balanced_accuracy", "qwk", "auc")
    return {**{k: values[k] for k in keep if k in values}, "ece": ece}


def _one_task(data: MedMNISTSplits) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    result = train_image_model(data, CONFIG)
    task, preprocess = data.info.task, Preprocess(result.preprocess)
    val_logits, val_labels = split_logits(result.network, data, preprocess, Split.VAL)
    calibrator, rule = choose_on_validation(
        val_logits, val_labels, data.labels[Split.TRAIN], task, data.info.positive_index, SEED
    )
    # The test split, read once, after every choice is fixed.
    test_logits, test_labels = split_logits(result.network, data, preprocess, Split.TEST)
    report = evaluate_predictions(
        test_labels[:, 0], test_logits, val_logits, val_labels[:, 0], task, data.info.labels,
        data.info.positive_index, n_bootstrap=200, seed=SEED, calibrator=calibrator,
        decision_rule=rule,
    )  # fmt: skip
    former_t = fit_temperature(val_logits, val_labels[:, 0], task)
    former = apply_temperature(test_logits, former_t, task)
    counts = np.bincount(data.labels[Split.TRAIN][:, 0], minlength=data.info.num_classes)
    return {
        "task": str(task),
        "train_split_class_counts": counts.tolist(),
        "splits": {s.value: len(data.labels[s]) for s in Split},
        "epochs_run": result.epochs_run,
        "class_weighting": result.class_weighting,
        "calibration": calibrator.to_dict(),
        "decision_rule": None if rule is None else rule.to_dict(),
        "test_before": _scores(report.before_choices, report.ece_before),
        "test_after": _scores(report.metrics.values, report.ece_after),
        "test_after_intervals": {
            k: list(v)
            for k, v in report.metrics.intervals.items()
            if k in ("accuracy", "balanced_accuracy", "qwk")
        },
        "test_ece_former_temperature": {
            "temperature": former_t,
            "ece": expected_calibration_error(test_labels[:, 0], former, task),
        },
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
    }


def recipe_figures() -> dict[str, Any]:
    """Per task: the validation choices and the test figures before and after them.

    Raises:
        DataNotFoundError: a MedMNIST file is not in the data directory.
    """
    data_dir = get_settings().resolved_data_dir
    pneumonia = load_medmnist(data_dir, "pneumoniamnist")
    breast = load_medmnist(data_dir, "breastmnist")
    tasks = {
        "pneumoniamnist": pneumonia,
        "breastmnist": breast,
        "dataset_x_label": dataset_x_label(pneumonia, breast),
        "pneumonia_tiles": pneumonia_tiles(pneumonia),
    }
    return {
        "protocol": (
            f"one seed ({SEED}); compact CNN width 8, {EPOCHS} epochs, {PILOT_EPOCHS}-epoch "
            f"pilots per class weighting on imbalanced splits, at most {TRAIN_SUBSET} training "
            "images per task (seeded subset); every choice on validation; test read once"
        ),
        "config": CONFIG.to_dict(),
        "tasks": {name: _one_task(data) for name, data in tasks.items()},
    }


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def readme_section(figures: dict[str, Any]) -> str:
    """The Markdown table of the README."""
    lines = [
        "## Safety: the image recipe's validation choices (test split, before → after)",
        "",
        f"Run `benchmarks/safety.py --part imaging_recipe` ({figures['protocol']}; tasks "
        "and their construction in `benchmarks/imaging_recipe.py`). Before: the raw arg-max; "
        "after: the calibration and decision rule chosen on validation. Balanced accuracy "
        "is the mean recall over classes; QWK the quadratic weighted kappa (ordinal).",
        "",
        "| task | type | weighting | calibration | rule | accuracy | balanced acc. | QWK "
        "| ECE | ECE, former temperature |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in figures["tasks"].items():
        b, a = t["test_before"], t["test_after"]
        rule = "—" if t["decision_rule"] is None else t["decision_rule"]["name"]
        qwk = "—" if "qwk" not in a else f"{_fmt(b.get('qwk'))} → {_fmt(a.get('qwk'))}"
        lines.append(
            f"| {name} | {t['task']} | {t['class_weighting']['scheme']} "
            f"| {t['calibration']['method']} | {rule} "
            f"| {_fmt(b['accuracy'])} → {_fmt(a['accuracy'])} "
            f"| {_fmt(b['balanced_accuracy'])} → {_fmt(a['balanced_accuracy'])} | {qwk} "
            f"| {_fmt(b['ece'])} → {_fmt(a['ece'])} "
            f"| {_fmt(t['test_ece_former_temperature']['ece'])} |"
        )
    worse = [
        name
        for name, t in figures["tasks"].items()
        if t["test_after"]["ece"] > t["test_before"]["ece"]
    ]
    lower_ba = [
        name
        for name, t in figures["tasks"].items()
        if t["test_after"]["balanced_accuracy"] < t["test_before"]["balanced_accuracy"]
    ]
    lines += [
        "",
        f"Test ECE rose after the validation choice on: {', '.join(worse) or 'none'}; "
        f"balanced accuracy fell on: {', '.join(lower_ba) or 'none'}.",
        "",
        "One seed, small fixed epochs: the figures show what the choices do, not the "
        "recipe's best accuracy. The validation evidence of every choice (pilot AUCs, "
        "out-of-fold ECE and NLL per calibration, each rule's validation score) is in "
        "`results/safety.json` under `imaging_recipe`.",
    ]
    return "\n".join(lines)
