"""Segmentation loaders: the three layouts, their errors, and seeded image-level splits."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinsight.data.segmentation import (
    ImageSplit,
    kfold_ids,
    load_cxr_lungs,
    load_folder,
    load_kvasir,
    load_segmentation_dataset,
    read_case,
    seeded_split,
)
from clinsight.errors import DataError, DataNotFoundError
from tests.support.segmentation_models import write_blob_folder


def test_folder_reads_binary_masks(tmp_path: Path) -> None:
    dataset = load_folder(write_blob_folder(tmp_path / "f", 3), label="polyp")
    assert dataset.ids == ("case000", "case001", "case002")
    assert dataset.labels == ("background", "polyp")
    sample = read_case(dataset, dataset.cases[0])
    assert sample.image.shape == (40, 48, 3)
    assert sample.mask.shape == (40, 48)
    assert set(np.unique(sample.mask)) == {0, 1}


def test_kvasir_jpeg_masks_are_thresholded_at_127(tmp_path: Path) -> None:
    root = tmp_path / "kvasir-seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.full((20, 30, 3), 120, np.uint8)).save(root / "images" / "a.jpg")
    mask = np.zeros((20, 30), np.uint8)
    mask[:, :10], mask[:, 10:12] = 255, 128  # 128 > 127: polyp; JPEG keeps it near 128
    Image.fromarray(np.stack([mask] * 3, -1)).save(root / "masks" / "a.jpg", quality=100)
    dataset = load_segmentation_dataset(root)
    assert dataset.layout == "kvasir-seg"
    sample = read_case(dataset, dataset.cases[0])
    assert sample.mask[:, :12].all()
    assert not sample.mask[:, 14:].any()


def test_kvasir_missing_mask_is_named(tmp_path: Path) -> None:
    root = tmp_path / "kvasir-seg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "x1.jpg")
    with pytest.raises(DataError, match=r"'x1.jpg' has no mask masks/x1.jpg"):
        load_kvasir(root)


def _cxr(root: Path, resolution: str = "40x30") -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.full((30, 40), 90, np.uint8)).save(root / "images" / "r1.png")
    crops = {"m_left.png": (6, 10), "m_right.png": (6, 10), "m_heart.png": (4, 4)}
    for name, (h, w) in crops.items():
        crop = np.zeros((h, w, 4), np.uint8)
        crop[..., 0], crop[..., 3] = 255, 255
        crop[0, 0, :3] = 0  # background pixel inside the bounding box
        Image.fromarray(crop, "RGBA").save(root / "masks" / name)
    rows = [
        ("Left Lung", "m_left.png", 2, 3),
        ("Right Lung", "m_right.png", 2, 25),
        ("Cardiomediastinum", "m_heart.png", 5, 15),
        ("Airways", "m_heart.png", 0, 0),
    ]
    with (root / "structure.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["#", "Template Name", "Filename", "Mask", "Resolution", "Top", "Left"])
        for i, (template, mask, top, left) in enumerate(rows):
            writer.writerow([i, template, "r1.png", f"masks/{mask}", resolution, top, left])
    return root


def test_cxr_masks_are_pasted_at_left_top(tmp_path: Path) -> None:
    dataset = load_cxr_lungs(_cxr(tmp_path / "cxr"), heart=True)
    assert dataset.labels == ("background", "lung", "heart")
    assert dataset.channels == 1
    mask = read_case(dataset, dataset.cases[0]).mask
    expected = np.zeros((30, 40), np.uint8)
    expected[2:8, 3:13] = 1
    expected[2:8, 25:35] = 1
    expected[2, 3] = expected[2, 25] = 0
    expected[5:9, 15:19] = 2
    expected[5, 15] = 0
    np.testing.assert_array_equal(mask, expected)


def test_cxr_lungs_only_by_default(tmp_path: Path) -> None:
    dataset = load_segmentation_dataset(_cxr(tmp_path / "cxr"))
    assert dataset.labels == ("background", "lung")
    assert int(read_case(dataset, dataset.cases[0]).mask.max()) == 1


def test_cxr_resolution_mismatch(tmp_path: Path) -> None:
    dataset = load_cxr_lungs(_cxr(tmp_path / "cxr", resolution="41x30"))
    with pytest.raises(DataError, match=r"image is 40x30 but its masks are placed in 41x30"):
        read_case(dataset, dataset.cases[0])


def test_folder_errors(tmp_path: Path) -> None:
    root = write_blob_folder(tmp_path / "f", 1)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "images" / "lonely.png")
    with pytest.raises(DataError, match=r"'lonely.png' has no mask: put masks/lonely.png"):
        load_folder(root)
    Image.fromarray(np.zeros((41, 48), np.uint8)).save(root / "masks" / "lonely.png")
    dataset = load_folder(root)
    with pytest.raises(DataError, match=r"mask is 48x41 but the image is 48x40"):
        read_case(dataset, dataset.subset(["lonely"])[0])
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "masks" / "lonely.png")
    with pytest.raises(DataError, match=r"mask of case 'lonely' is empty"):
        read_case(dataset, dataset.subset(["lonely"])[0])
    grades = np.tile(np.array([0, 1, 2], np.uint8), (40, 16))
    Image.fromarray(grades).save(root / "masks" / "lonely.png")
    with pytest.raises(DataError, match=r"is not binary: it holds 3 values"):
        read_case(dataset, dataset.subset(["lonely"])[0])
    with pytest.raises(DataNotFoundError, match="images folder 'images' is missing"):
        load_folder(tmp_path / "nothing")


def test_seeded_split_is_fixed_and_disjoint() -> None:
    ids = [f"c{i}" for i in range(20)]
    split = seeded_split(ids, val=3, test=5, seed=7)
    assert split == seeded_split(list(reversed(ids)), val=3, test=5, seed=7)
    assert (len(split.train), len(split.val), len(split.test)) == (12, 3, 5)
    assert set(split.train) | set(split.val) | set(split.test) == set(ids)
    assert not set(split.train) & set(split.test)
    assert seeded_split(ids, val=3, test=5, seed=8).test != split.test
    assert ImageSplit.from_dict(split.to_dict()) == split
    with pytest.raises(DataError, match="leaves no training image"):
        seeded_split(ids[:4], val=2, test=2)


def test_kfold_ids_cover_every_image_once() -> None:
    folds = kfold_ids([f"c{i}" for i in range(11)], 5, seed=1)
    flat = [i for fold in folds for i in fold]
    assert sorted(flat) == sorted(f"c{i}" for i in range(11))
    assert len(flat) == 11
    assert sorted(len(f) for f in folds) == [2, 2, 2, 2, 3]
