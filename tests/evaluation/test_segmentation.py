"""Segmentation metrics: MONAI's figures against an independent numpy/scipy computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.ndimage import binary_erosion, distance_transform_edt

from clinsight.errors import DataError
from clinsight.evaluation.plots import plot_dice_histogram, plot_worst_cases
from clinsight.evaluation.segmentation import image_metrics, segmentation_report


def _blob(seed: int, shape: tuple[int, int] = (48, 56)) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for _ in range(2):
        cy, cx, r = rng.integers(10, 38), rng.integers(10, 46), rng.integers(4, 10)
        mask |= (rows - cy) ** 2 + ((cols - cx) * 0.8) ** 2 <= r**2
    return mask.astype(np.uint8)


def _edges(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    return np.asarray(mask & ~binary_erosion(mask))


def _reference(pred: NDArray[np.uint8], true: NDArray[np.uint8],
               spacing: tuple[float, float], tol: float) -> dict[str, float]:  # fmt: skip
    p, t = pred.astype(bool), true.astype(bool)
    inter, union = (p & t).sum(), (p | t).sum()
    ep, et = _edges(p), _edges(t)
    to_true = distance_transform_edt(~et, sampling=spacing)[ep]
    to_pred = distance_transform_edt(~ep, sampling=spacing)[et]
    return {
        "dice": 2 * inter / (p.sum() + t.sum()),
        "iou": inter / union,
        "hd95": max(np.percentile(to_true, 95), np.percentile(to_pred, 95)),
        "boundary_precision": float(np.mean(to_true <= tol)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 0.8)])
def test_monai_metrics_match_an_independent_computation(
    seed: int, spacing: tuple[float, float]
) -> None:
    pred, true = _blob(seed), _blob(seed + 100)
    pred[true.astype(bool) & (np.arange(56) % 3 == 0)] = 1  # some overlap
    found = image_metrics(pred, true, 2, spacing=spacing, tolerance=2.0)
    expected = _reference(pred, true, spacing, 2.0)
    for metric, value in expected.items():
        assert found[metric][0] == pytest.approx(value, rel=1e-5, abs=1e-6), metric


def test_empty_masks_follow_the_stated_conventions() -> None:
    empty, blob = np.zeros((20, 20), np.uint8), _blob(0, (20, 20))
    both = image_metrics(empty, empty, 2)
    assert [both[m][0] for m in ("dice", "iou", "hd95", "boundary_precision")] == [1, 1, 0, 1]
    missed = image_metrics(empty, blob, 2)
    assert missed["dice"][0] == 0
    assert missed["iou"][0] == 0
    assert math.isnan(missed["hd95"][0])
    assert math.isnan(missed["boundary_precision"][0])


def test_report_means_intervals_and_labels() -> None:
    truths = [_blob(i) for i in range(6)]
    preds = [_blob(i) if i % 2 else np.roll(_blob(i), 3, axis=1) for i in range(6)]
    ids = [f"c{i}" for i in range(6)]
    report = segmentation_report(ids, preds, truths, ("background", "polyp"), n_bootstrap=200)
    dice = [image_metrics(p, t, 2)["dice"][0] for p, t in zip(preds, truths, strict=True)]
    assert report.values["dice"] == pytest.approx(np.mean(dice))
    low, high = report.intervals["dice"]
    assert low <= report.values["dice"] <= high < 1.0 + 1e-9
    assert report.worst(2) == sorted(range(6), key=lambda i: dice[i])[:2]
    again = segmentation_report(ids, preds, truths, ("background", "polyp"), n_bootstrap=200)
    assert again.intervals == report.intervals
    assert report.to_dict()["per_image"]["c1"]["dice"] == [1.0]


def test_multi_label_report_has_per_label_means() -> None:
    true = _blob(0).astype(np.uint8)
    true[_blob(5).astype(bool)] = 2
    report = segmentation_report(["a"], [true], [true], ("background", "lung", "heart"),
                                 n_bootstrap=0)  # fmt: skip
    assert report.values["lung.dice"] == 1.0
    assert report.values["heart.dice"] == 1.0
    assert report.values["dice"] == 1.0


def test_report_refuses_mismatched_masks() -> None:
    with pytest.raises(DataError, match="Masks must be 2D and alike"):
        segmentation_report(["a"], [np.zeros((4, 4))], [np.zeros((4, 5))], ("bg", "x"))
    with pytest.raises(DataError, match="one prediction and one truth per image"):
        segmentation_report([], [], [], ("bg", "x"))


def test_plots_are_written(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((48, 56, 3))
    histogram = plot_dice_histogram([0.2, 0.8, 0.9, float("nan")], tmp_path / "h.png")
    worst = plot_worst_cases([image, image[..., 0]], [_blob(0), _blob(1)], [_blob(2), _blob(3)],
                             ["a · 0.10", "b · 0.20"], tmp_path / "w.png")  # fmt: skip
    for path in (histogram, worst):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="No finite Dice"):
        plot_dice_histogram([float("nan")], tmp_path / "x.png")
