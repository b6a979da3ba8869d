"""Evaluation figures as PNG files: ROC curves, reliability diagrams, confusion matrices, and
for segmentation the per-image Dice histogram and the worst cases with their outlines.

Figures are drawn on matplotlib `Figure` objects with the Agg canvas, never through pyplot,
so they hold no global state and are safe inside a server or a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import ReliabilityBins
from clinsight.evaluation.metrics import check_predictions, roc_auc

__all__ = [
    "plot_confusion", "plot_dice_histogram", "plot_reliability", "plot_roc",
    "plot_worst_cases",
]  # fmt: skip

_DPI = 120


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=_DPI)
    return path


def _label_names(labels: Sequence[str] | None, k: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(k)]
    if len(labels) != k:
        raise DataError(
            f"Got {len(labels)} label names for {k} score columns; pass one per column."
        )
    return list(labels)


def plot_roc(
    y_true: ArrayLike,
    probs: ArrayLike,
    task: TaskType,
    path: Path,
    *,
    labels: Sequence[str] | None = None,
    positive_index: int = 1,
) -> Path:
    """ROC curve(s) with the AUC in the legend: the positive class for binary tasks, one curve
    per class (one-vs-rest) or label plus their macro average otherwise.

    Raises:
        DataError: the inputs are malformed or no class has both outcomes.
    """
    y, p = check_predictions(y_true, probs, task)
    names = _label_names(labels, p.shape[1])
    truth = y.astype(bool) if task == TaskType.MULTI_LABEL else y[:, None] == np.arange(p.shape[1])
    columns = [positive_index] if task == TaskType.BINARY else list(range(p.shape[1]))
    columns = [j for j in columns if 0 < truth[:, j].sum() < len(truth)]
    if not columns:
        raise DataError("No class has both positive and negative cases; ROC curves are undefined.")
    figure = Figure(figsize=(6.0, 6.0))
    axes = figure.add_subplot()
    grid = np.linspace(0.0, 1.0, 201)
    tprs, aucs = [], []
    for j in columns:
        fpr, tpr, _ = roc_curve(truth[:, j], p[:, j])
        auc = roc_auc(truth[:, j], p[:, j])
        aucs.append(auc)
        tprs.append(np.interp(grid, fpr, tpr))
        width = 2.0 if len(columns) == 1 else 1.0
        axes.plot(fpr, tpr, linewidth=width, label=f"{names[j]} (AUC = {auc:.3f})")
    if len(columns) > 1:
        macro = np.mean(tprs, axis=0)
        axes.plot(grid, macro, "k-", linewidth=2.5, label=f"macro (AUC = {np.mean(aucs):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (false positive rate)")
    axes.set_ylabel("Sensitivity (true positive rate)")
    axes.set_title("ROC curve" if len(columns) == 1 else "ROC curves (one-vs-rest)")
    axes.legend(loc="lower right", fontsize="small" if len(columns) <= 8 else "x-small")
    return _save(figure, path)


def _draw_reliability(axes: Axes, bins: ReliabilityBins, title: str) -> None:
    edges = np.asarray(bins.edges)
    counts = np.asarray(bins.counts)
    accuracy = np.nan_to_num(np.asarray(bins.accuracy, dtype=np.float64))
    confidence = np.asarray(bins.confidence, dtype=np.float64)
    filled = counts > 0
    width = np.diff(edges)
    axes.bar(
        edges[:-1][filled],
        accuracy[filled],
        width=width[filled],
        align="edge",
        edgecolor="black",
        color="tab:blue",
        label="accuracy",
    )
    axes.bar(
        edges[:-1][filled],
        (confidence - accuracy)[filled],
        bottom=accuracy[filled],
        width=width[filled],
        align="edge",
        color="tab:red",
        alpha=0.3,
        label="gap",
    )
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="Confidence", ylabel="Accuracy")
    axes.set_title(f"{title} (ECE = {bins.ece:.3f})")
    axes.legend(loc="upper left", fontsize="small")


def plot_reliability(
    before: ReliabilityBins, path: Path, *, after: ReliabilityBins | None = None
) -> Path:
    """Reliability diagram of `before`, side by side with `after` (temperature-scaled) if given.

    Raises:
        DataError: the two diagrams use different bins.
    """
    if after is not None and after.edges != before.edges:
        raise DataError("The reliability diagrams before and after scaling must share their bins.")
    panels = [(before, "Uncalibrated")] + ([(after, "Temperature-scaled")] if after else [])
    figure = Figure(figsize=(5.0 * len(panels), 5.0), layout="constrained")
    for axes, (bins, title) in zip(
        figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        _draw_reliability(axes, bins, title)
    return _save(figure, path)


def plot_confusion(
    confusion: Sequence[Sequence[int]], path: Path, *, labels: Sequence[str] | None = None
) -> Path:
    """Confusion matrix heat map (rows true, columns predicted) with the count in each cell.

    Raises:
        DataError: the matrix is not square.
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise DataError(f"A confusion matrix must be square; got shape {matrix.shape}.")
    names = _label_names(labels, len(matrix))
    side = max(4.0, 0.6 * len(matrix) + 2.0)
    figure = Figure(figsize=(side, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = np.arange(len(matrix))
    short = [name if len(name) <= 20 else name[:19] + "…" for name in names]
    axes.set_xticks(ticks, short, rotation=45, ha="right")
    axes.set_yticks(ticks, short)
    axes.set(xlabel="Predicted", ylabel="True", title="Confusion matrix")
    threshold = matrix.max() / 2.0
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > threshold else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=colour)
    return _save(figure, path)


def plot_dice_histogram(dice: ArrayLike, path: Path, *, title: str = "Dice per image") -> Path:
    """Histogram of per-image Dice in [0, 1] with the mean marked.

    Raises:
        DataError: no finite Dice value.
    """
    values = np.asarray(dice, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        raise DataError("No finite Dice value to plot.")
    figure = Figure(figsize=(6.0, 4.0))
    axes = figure.add_subplot()
    axes.hist(values, bins=[i / 20 for i in range(21)], color="#4c72b0", edgecolor="white")
    mean = float(values.mean())
    axes.axvline(mean, color="black", linestyle="--", label=f"mean {mean:.3f} (n = {values.size})")
    axes.set(xlim=(0, 1), xlabel="Dice", ylabel="Images", title=title)
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_worst_cases(
    images: Sequence[ArrayLike],
    truths: Sequence[ArrayLike],
    predictions: Sequence[ArrayLike],
    captions: Sequence[str],
    path: Path,
) -> Path:
    """One panel per case: the image with the true outline (green) and the predicted one
    (magenta), captioned (e.g. id and Dice); masks are label masks of the image's size.

    Raises:
        DataError: no case, or the lists differ in length.
    """
    if not images or not len(images) == len(truths) == len(predictions) == len(captions):
        raise DataError("Worst cases need one image, truth, prediction and caption each.")
    figure = Figure(figsize=(3.2 * len(images), 3.6))
    for i, (image, truth, predicted, caption) in enumerate(
        zip(images, truths, predictions, captions, strict=True)
    ):
        axes = figure.add_subplot(1, len(images), i + 1)
        pixels = np.asarray(image, dtype=np.float64)
        axes.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=1)
        for mask, colour in ((truth, "#00c000"), (predicted, "#ff00ff")):
            labels = np.asarray(mask)
            if labels.any():
                axes.contour(labels > 0, levels=[0.5], colors=colour, linewidths=1.2)
        axes.set_title(caption, fontsize="small")
        axes.axis("off")
    figure.suptitle("Worst cases: truth green, prediction magenta", fontsize="medium")
    return _save(figure, path)
