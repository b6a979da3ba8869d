"""Figures are written as real PNG files of the expected pixel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from clinsight.data.medmnist import TaskType
from clinsight.errors import DataError
from clinsight.evaluation.calibration import reliability_bins
from clinsight.evaluation.plots import plot_confusion, plot_reliability, plot_roc


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 16  # drawn on, not a blank canvas
        return image.size


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    probs: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)  # numpy's reductions: Any
    return probs


@pytest.fixture
def multiclass() -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    return y, _softmax(rng.normal(size=(200, 4)) + 2.0 * (y[:, None] == np.arange(4)))


def test_roc_binary(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    p0 = np.clip(0.4 * (y == 0) + 0.6 * rng.random(100), 0, 1)
    path = plot_roc(
        y,
        np.c_[p0, 1 - p0],
        TaskType.BINARY,
        tmp_path / "sub" / "roc.png",
        labels=("malignant", "benign"),
        positive_index=0,
    )
    assert path == tmp_path / "sub" / "roc.png"
    assert _png_size(path) == (720, 720)


def test_roc_multiclass_and_multilabel(
    tmp_path: Path, multiclass: tuple[NDArray[np.int64], NDArray[np.float64]]
) -> None:
    y, probs = multiclass
    assert _png_size(plot_roc(y, probs, TaskType.MULTI_CLASS, tmp_path / "mc.png")) == (720, 720)
    labels = (y[:, None] == np.arange(4)).astype(int)
    path = plot_roc(labels, probs, TaskType.MULTI_LABEL, tmp_path / "ml.png", labels="abcd")
    assert _png_size(path) == (720, 720)


def test_roc_rejects_undefined_or_mislabelled(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="No class has both positive and negative cases"):
        plot_roc([1, 1], [[0.2, 0.8], [0.4, 0.6]], TaskType.BINARY, tmp_path / "roc.png")
    with pytest.raises(DataError, match="Got 1 label names for 2 score columns"):
        plot_roc([0, 1], [[0.2, 0.8]] * 2, TaskType.BINARY, tmp_path / "roc.png", labels=["a"])
    assert not (tmp_path / "roc.png").exists()


def test_reliability_before_and_after(
    tmp_path: Path, multiclass: tuple[NDArray[np.int64], NDArray[np.float64]]
) -> None:
    y, probs = multiclass
    before = reliability_bins(y, probs, TaskType.MULTI_CLASS)
    after = reliability_bins(
        y, np.sqrt(probs) / np.sqrt(probs).sum(1, keepdims=True), TaskType.MULTI_CLASS
    )
    assert _png_size(plot_reliability(before, tmp_path / "one.png")) == (600, 600)
    assert _png_size(plot_reliability(before, tmp_path / "two.png", after=after)) == (1200, 600)
    coarse = reliability_bins(y, probs, TaskType.MULTI_CLASS, n_bins=5)
    with pytest.raises(DataError, match="must share their bins"):
        plot_reliability(before, tmp_path / "bad.png", after=coarse)


def test_confusion(tmp_path: Path) -> None:
    path = plot_confusion(
        [[5, 1, 0], [2, 7, 1], [0, 0, 9]],
        tmp_path / "cm.png",
        labels=["normal", "a very long class name that is cut", "other"],
    )
    assert _png_size(path) == (480, 480)
    with pytest.raises(DataError, match="must be square"):
        plot_confusion([[1, 2, 3]], tmp_path / "bad.png")
