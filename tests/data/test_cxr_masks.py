"""The COVID-19 CXR masks pasted at Left/Top into an image of Resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clinsight.data.cxr_masks import cxr_lung_masks, cxr_structure_masks
from clinsight.errors import DataError, DataNotFoundError

HEADER = "Filename,Template Name,Mask,Resolution,Top,Left,Width,Height\n"


def _folder(tmp_path: Path, rows: list[str], masks: dict[str, np.ndarray]) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.new("L", (6, 4)).save(tmp_path / "images" / "a.png")
    for name, pixels in masks.items():
        Image.fromarray(pixels).save(tmp_path / "masks" / name)
    (tmp_path / "structure.csv").write_text(HEADER + "".join(rows))
    return tmp_path


def _rgba(height: int, width: int, on: tuple[int, int]) -> np.ndarray:
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[on[0], on[1], 0] = 255
    return pixels


def test_masks_are_pasted_at_left_top_and_united(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        [
            "a.png,Left Lung,masks/l.png,6x4,1,2,2,2\n",
            "a.png,Right Lung,masks/r.png,6x4,0,0,3,1\n",
            "a.png,Heart,masks/h.png,6x4,0,0,1,1\n",
            "missing.png,Left Lung,masks/x.png,6x4,0,0,1,1\n",
        ],
        {"l.png": _rgba(2, 2, (1, 1)), "r.png": _rgba(1, 3, (0, 2)), "h.png": _rgba(1, 1, (0, 0))},
    )
    masks = cxr_lung_masks(folder)
    assert list(masks) == ["a.png"]
    expected = np.zeros((4, 6), dtype=bool)
    expected[2, 3] = True  # (1, 1) of the mask placed at Top 1, Left 2
    expected[0, 2] = True
    np.testing.assert_array_equal(masks["a.png"], expected)
    heart = cxr_structure_masks(folder, ["Heart"])["a.png"]
    assert heart.sum() == 1
    assert heart[0, 0]


def test_a_wrong_size_or_position_or_missing_mask_is_refused(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        ["a.png,Left Lung,masks/l.png,6x4,3,5,2,2\n"],
        {"l.png": _rgba(2, 2, (0, 0))},
    )
    with pytest.raises(DataError, match="falls outside its image of 6x4"):
        cxr_lung_masks(folder)
    (folder / "structure.csv").write_text(HEADER + "a.png,Left Lung,masks/l.png,6x4,0,0,3,2\n")
    with pytest.raises(DataError, match=r"is 2x2, but structure\.csv says 3x2"):
        cxr_lung_masks(folder)
    (folder / "structure.csv").write_text(HEADER + "a.png,Left Lung,masks/z.png,6x4,0,0,3,2\n")
    with pytest.raises(
        DataNotFoundError, match=r"masks/z\.png listed in structure\.csv is missing"
    ):
        cxr_lung_masks(folder)
    with pytest.raises(DataNotFoundError, match="not a COVID-19 CXR segmentation folder"):
        cxr_lung_masks(folder / "images")


def test_every_real_radiograph_has_a_lung_mask_of_its_size(data_dir: Path) -> None:
    folder = data_dir / "segmentation" / "covid19-cxr-segmentations"
    if not folder.is_dir():
        pytest.skip("the COVID-19 CXR segmentations are not in the shared data directory")
    masks = cxr_lung_masks(folder)
    assert len(masks) == 44
    name = "ARDSSevere.png"
    with Image.open(folder / "images" / name) as image:
        assert masks[name].shape == (image.height, image.width)
    assert all(mask.any() for mask in masks.values())
