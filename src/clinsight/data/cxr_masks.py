"""Radiologist masks of the COVID-19 chest X-ray segmentations (GeneralBlockchain layout).

Each mask there is an RGBA PNG cropped to its object's bounding box; `structure.csv` says
where it goes: pasted at column `Left`, row `Top` into a zero image of `Resolution`
(W x H), any non-zero RGB is foreground. `cxr_structure_masks` rebuilds the full-size
mask of chosen structures (the union of their objects) for every image of the folder;
`cxr_lung_masks` is that for the left and right lung.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clinsight.errors import DataError, DataNotFoundError

__all__ = ["LUNG_TEMPLATES", "cxr_lung_masks", "cxr_structure_masks"]

LUNG_TEMPLATES = ("Left Lung", "Right Lung")
"""The `Template Name`s of the lungs in `structure.csv`."""


def cxr_lung_masks(folder: Path) -> dict[str, NDArray[np.bool_]]:
    """Full-size masks of both lungs (one union per image), keyed by image file name.

    Raises:
        DataNotFoundError, DataError: as `cxr_structure_masks`.
    """
    return cxr_structure_masks(folder, LUNG_TEMPLATES)


def cxr_structure_masks(folder: Path, templates: Sequence[str]) -> dict[str, NDArray[np.bool_]]:
    """For each image in `folder/images` with at least one object of `templates`, the union
    of those objects' masks at the image's `Resolution` (H x W booleans), by file name.

    Raises:
        DataNotFoundError: `structure.csv`, the `images/` folder or a listed mask is absent.
        DataError: a mask's size differs from its `Width` x `Height`, or it lies outside
            the image's `Resolution`.
    """
    table = folder / "structure.csv"
    images = folder / "images"
    if not table.is_file() or not images.is_dir():
        raise DataNotFoundError(
            f"{folder.name} is not a COVID-19 CXR segmentation folder (structure.csv and "
            "images/ are needed)"
        )
    present = {path.name for path in images.iterdir()}
    wanted = set(templates)
    masks: dict[str, NDArray[np.bool_]] = {}
    with table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = row.get("Filename", "")
            if name not in present or row.get("Template Name") not in wanted:
                continue
            width, height = (int(v) for v in row["Resolution"].lower().split("x"))
            full = masks.setdefault(name, np.zeros((height, width), dtype=bool))
            _paste(folder, row, full)
    return dict(sorted(masks.items()))


def _paste(folder: Path, row: dict[str, str], full: NDArray[np.bool_]) -> None:
    path = folder / row["Mask"]
    if not path.is_file():
        raise DataNotFoundError(f"the mask {row['Mask']} listed in structure.csv is missing")
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    top, left = int(row["Top"]), int(row["Left"])
    height, width = rgb.shape[:2]
    if (width, height) != (int(row["Width"]), int(row["Height"])):
        raise DataError(
            f"the mask {row['Mask']} is {width}x{height}, but structure.csv says "
            f"{row['Width']}x{row['Height']}"
        )
    if top < 0 or left < 0 or top + height > full.shape[0] or left + width > full.shape[1]:
        raise DataError(
            f"the mask {row['Mask']} at Left {left}, Top {top} falls outside its image of "
            f"{full.shape[1]}x{full.shape[0]}"
        )
    full[top : top + height, left : left + width] |= rgb.any(axis=2)
