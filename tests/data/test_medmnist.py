"""MedMNIST loader: the real files, checksums, and errors that say where to put a file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from clinsight.data.medmnist import (
    CATALOGUE,
    Split,
    TaskType,
    dataset_info,
    fetch_medmnist,
    load_medmnist,
    md5_of,
)
from clinsight.errors import ChecksumError, DataError, DataNotFoundError


@pytest.mark.parametrize(
    ("name", "sizes", "labels"),
    [
        ("pneumoniamnist", (4708, 524, 624), ("normal", "pneumonia")),
        ("breastmnist", (546, 78, 156), ("malignant", "normal, benign")),
    ],
)
def test_real_files_load_with_official_splits(
    data_dir: Path, name: str, sizes: tuple[int, int, int], labels: tuple[str, str]
) -> None:
    data = load_medmnist(data_dir, name)
    assert data.md5 == dataset_info(name).md5[28]
    for split, n in zip(Split, sizes, strict=True):
        images, labs = data.split(split)
        assert images.shape == (n, 28, 28)
        assert images.dtype == np.uint8
        assert labs.shape == (n, 1)
        assert set(np.unique(labs)) == {0, 1}
    assert data.info.labels == labels
    assert data.info.task is TaskType.BINARY


def test_breast_positive_class_is_malignant() -> None:
    info = dataset_info("breastmnist")
    assert info.labels[info.positive_index] == "malignant"


def test_catalogue_covers_every_2d_dataset_and_task_type() -> None:
    assert len(CATALOGUE) == 12
    assert {info.task for info in CATALOGUE.values()} == set(TaskType)
    assert dataset_info("ChestMNIST").num_classes == 14
    assert dataset_info("pathmnist").channels == 3
    assert dataset_info("pneumoniamnist").url(64).endswith("pneumoniamnist_64.npz?download=1")


def test_missing_file_names_the_place_and_the_url(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"medmnist/chestmnist\.npz.*zenodo\.org"):
        fetch_medmnist(tmp_path, "chestmnist", allow_download=False)


def test_corrupt_file_fails_the_checksum(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "medmnist" / "breastmnist.npz"
    target.parent.mkdir()
    shutil.copy(data_dir / "medmnist" / "breastmnist.npz", target)
    with target.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumError, match="delete it and fetch it again"):
        load_medmnist(tmp_path, "breastmnist")


def test_md5_of_matches_the_official_list(data_dir: Path) -> None:
    assert md5_of(data_dir / "medmnist" / "pneumoniamnist.npz") == (
        "28209eda62fecd6e6a2d98b1501bb15f"
    )


@pytest.mark.parametrize(
    ("name", "size", "match"),
    [
        ("nosuchmnist", 28, "Unknown MedMNIST dataset 'nosuchmnist'"),
        ("retinamnist", 128, "no official file at size 128; available sizes: 28, 64, 224"),
    ],
)
def test_bad_requests_are_explained(tmp_path: Path, name: str, size: int, match: str) -> None:
    with pytest.raises(DataError, match=match):
        fetch_medmnist(tmp_path, name, size, allow_download=False)
