"""Segmentation metrics per image with bootstrap intervals: Dice, IoU, HD95, boundary precision.

Each figure is MONAI's implementation (`compute_dice`, `compute_iou`,
`compute_hausdorff_distance` at the 95th percentile, and the edge distances of
`get_edge_surface_distance` for boundary precision: the share of predicted boundary pixels
within `tolerance` of the true boundary), computed per image and label on label masks at
the image's own resolution, with the pixel spacing when it is known (distances then in mm).

An image whose truth and prediction are both empty for a label scores Dice and IoU 1, HD95
0 and boundary precision 1; where only one is empty, Dice and IoU are 0 and the distances
are undefined (NaN, left out of their means and counted in `undefined`). Means over images
carry bootstrap percentile intervals (`evaluation.metrics.bootstrap_weights`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou
from monai.metrics.utils import get_edge_surface_distance
from numpy.typing import ArrayLike, NDArray
from torch.nn import functional

from clinsight.errors import DataError
from clinsight.evaluation.metrics import bootstrap_weights, json_float, percentile_interval

__all__ = [
    "METRICS",
    "SegmentationReport",
    "image_metrics",
    "segmentation_report",
]

METRICS = ("dice", "iou", "hd95", "boundary_precision")
BOUNDARY_TOLERANCE = 2.0
"""Pixels (or mm with a spacing) within which a predicted boundary pixel counts as right."""


def _one_hot(mask: NDArray[Any], k: int) -> torch.Tensor:
    tensor = torch.from_numpy(np.asarray(mask, dtype=np.int64))
    return functional.one_hot(tensor, k).permute(2, 0, 1)[None]


def image_metrics(
    predicted: ArrayLike,
    truth: ArrayLike,
    num_classes: int,
    *,
    spacing: tuple[float, float] | None = None,
    tolerance: float = BOUNDARY_TOLERANCE,
) -> dict[str, NDArray[np.float64]]:
    """Each metric of one image per foreground label (arrays of length K - 1).

    Raises:
        DataError: the masks differ in shape, are not 2D, or hold labels >= `num_classes`.
    """
    pred, true = np.asarray(predicted), np.asarray(truth)
    if pred.shape != true.shape or pred.ndim != 2:
        raise DataError(f"Masks must be 2D and alike; got {pred.shape} and {true.shape}.")
    if max(int(pred.max(initial=0)), int(true.max(initial=0))) >= num_classes:
        raise DataError(f"A mask holds a label outside 0..{num_classes - 1}.")
    p, t = _one_hot(pred, num_classes), _one_hot(true, num_classes)
    dice = compute_dice(p, t, include_background=False, ignore_empty=False)[0].double().numpy()
    iou = compute_iou(p, t, include_background=False, ignore_empty=False)[0].double().numpy()
    hd95 = np.full(num_classes - 1, np.nan)
    precision = np.full(num_classes - 1, np.nan)
    for label in range(1, num_classes):
        has_pred, has_true = bool(p[0, label].any()), bool(t[0, label].any())
        if not has_pred and not has_true:
            hd95[label - 1], precision[label - 1] = 0.0, 1.0
            continue
        if not (has_pred and has_true):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            distance = compute_hausdorff_distance(
                p[:, [0, label]], t[:, [0, label]], percentile=95, spacing=spacing
            )
            _, distances, _ = get_edge_surface_distance(
                p[0, label].bool(), t[0, label].bool(), spacing=spacing, warn_empty=False
            )
        hd95[label - 1] = float(distance[0, 0])
        precision[label - 1] = float((distances[0] <= tolerance).double().mean())
    return {"dice": dice, "iou": iou, "hd95": hd95, "boundary_precision": precision}


@dataclass(frozen=True)
class SegmentationReport:
    """Per-image metrics and their means over images with bootstrap intervals.

    `per_image[m]` is (N, K - 1); `values[m]` the mean over images of the labels' mean
    (and `values[f"{label}.{m}"]` per label when there are several labels).
    """

    case_ids: tuple[str, ...]
    labels: tuple[str, ...]
    per_image: dict[str, NDArray[np.float64]]
    values: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    undefined: dict[str, int]
    confidence: float = 0.95
    bootstrap_replicates: int = 0
    spacing: tuple[float, float] | None = None
    tolerance: float = BOUNDARY_TOLERANCE
    units: str = "pixels"
    extra: dict[str, Any] = field(default_factory=dict)

    def dice_per_image(self) -> NDArray[np.float64]:
        """Each image's Dice (mean over its foreground labels)."""
        return np.asarray(np.nanmean(self.per_image["dice"], axis=1), dtype=np.float64)

    def worst(self, count: int) -> list[int]:
        """Indices of the `count` images with the lowest Dice, worst first."""
        return [int(i) for i in np.argsort(self.dice_per_image(), kind="stable")[:count]]

    def to_dict(self, *, with_images: bool = True) -> dict[str, Any]:
        """JSON-ready form (NaN becomes None)."""
        out: dict[str, Any] = {
            "n": len(self.case_ids), "labels": list(self.labels),
            "values": {k: json_float(v) for k, v in self.values.items()},
            "intervals": {k: [json_float(lo), json_float(hi)]
                          for k, (lo, hi) in self.intervals.items()},
            "undefined": dict(self.undefined), "confidence": self.confidence,
            "bootstrap_replicates": self.bootstrap_replicates,
            "distance_units": self.units, "boundary_tolerance": self.tolerance,
        }  # fmt: skip
        if with_images:
            out["per_image"] = {
                case: {m: [json_float(v) for v in self.per_image[m][i]] for m in METRICS}
                for i, case in enumerate(self.case_ids)
            }
        return out


def _weighted_means(values: NDArray[np.float64], weights: NDArray[np.float64]) -> Any:
    finite = np.isfinite(values)
    counts = weights @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ np.where(finite, values, 0.0)) / counts


def segmentation_report(
    case_ids: Sequence[str],
    predicted: Sequence[ArrayLike],
    truth: Sequence[ArrayLike],
    labels: Sequence[str],
    *,
    spacing: tuple[float, float] | None = None,
    tolerance: float = BOUNDARY_TOLERANCE,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SegmentationReport:
    """Metrics of every image (labels[0] is the background) and their bootstrap means.

    Raises:
        DataError: no image, counts differ, or a pair of masks does not fit.
    """
    if not case_ids or not len(case_ids) == len(predicted) == len(truth):
        raise DataError("A segmentation report needs one prediction and one truth per image.")
    k = len(labels)
    rows = [image_metrics(p, t, k, spacing=spacing, tolerance=tolerance)
            for p, t in zip(predicted, truth, strict=True)]  # fmt: skip
    per_image = {m: np.stack([row[m] for row in rows]) for m in METRICS}
    values: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    undefined: dict[str, int] = {}
    series: dict[str, NDArray[np.float64]] = {}
    for metric in METRICS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # an all-NaN image row
            series[metric] = np.nanmean(per_image[metric], axis=1)
        undefined[metric] = int(np.sum(~np.isfinite(per_image[metric])))
        if k > 2:
            for j, label in enumerate(labels[1:]):
                series[f"{label}.{metric}"] = per_image[metric][:, j]
    n = len(case_ids)
    for key, column in series.items():
        values[key] = float(_weighted_means(column, np.ones((1, n)))[0])
        samples = np.concatenate(
            [_weighted_means(column, w) for w in bootstrap_weights(n, n_bootstrap, seed)]
        ) if n_bootstrap else np.array([])  # fmt: skip
        intervals[key] = percentile_interval(samples, confidence) if n_bootstrap else (
            math.nan, math.nan)  # fmt: skip
    return SegmentationReport(
        tuple(case_ids), tuple(labels), per_image, values, intervals, undefined, confidence,
        n_bootstrap, spacing, tolerance, "mm" if spacing else "pixels",
    )  # fmt: skip
