"""The share of a heat map's mass inside a mask, and the flag for a map mostly outside it."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from clinsight.errors import DataError
from clinsight.evaluation.explanation_overlap import MOSTLY_OUTSIDE_SHARE, heat_share_inside


def _top_half(size: int = 4) -> NDArray[np.bool_]:
    mask = np.zeros((size, size), dtype=bool)
    mask[: size // 2] = True
    return mask


def test_share_of_a_map_the_size_of_the_mask() -> None:
    heat = np.array(
        [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]]
    )
    overlap = heat_share_inside(heat, _top_half())
    assert overlap.share_inside == pytest.approx(2.0 / 4.0)
    assert overlap.mask_area_share == 0.5
    assert overlap.mostly_outside is False  # exactly half is not "mostly outside"


def test_a_map_mostly_outside_is_flagged() -> None:
    heat = np.zeros((4, 4))
    heat[3, :] = 1.0
    heat[0, 0] = 1.0
    overlap = heat_share_inside(heat, _top_half())
    assert overlap.share_inside == pytest.approx(0.2)
    assert overlap.mostly_outside is True
    assert heat_share_inside(heat, _top_half(), threshold=0.1).mostly_outside is False


def test_a_smaller_map_is_resized_bilinearly_to_the_mask() -> None:
    # 2x2 -> 8x8 with pixel-centre alignment: along each axis the top-left source pixel
    # weighs 1, 1, 0.875, 0.625 in the first half and 0.375, 0.125, 0, 0 in the second,
    # so the top-left quadrant holds 3.5**2 of the 4**2 total.
    mask = np.zeros((8, 8), dtype=bool)
    mask[:4, :4] = True
    overlap = heat_share_inside(np.array([[1.0, 0.0], [0.0, 0.0]]), mask)
    assert overlap.share_inside == pytest.approx(12.25 / 16.0)
    assert overlap.mask_area_share == 0.25
    flat = heat_share_inside(np.full((3, 5), 0.7), mask)
    assert flat.share_inside == pytest.approx(0.25)  # an even map scores the mask's area
    assert flat.mostly_outside is (MOSTLY_OUTSIDE_SHARE > 0.25)


def test_an_all_zero_map_has_no_share_and_no_flag() -> None:
    overlap = heat_share_inside(np.zeros((2, 2)), _top_half())
    assert overlap.share_inside is None
    assert overlap.mostly_outside is False
    assert overlap.to_dict() == {
        "share_inside": None,
        "mask_area_share": 0.5,
        "mostly_outside": False,
    }


@pytest.mark.parametrize(
    ("heat", "mask", "threshold", "match"),
    [
        (np.ones((2, 2, 1)), _top_half(), 0.5, "must be 2-D"),
        (np.full((2, 2), -0.1), _top_half(), 0.5, "non-negative"),
        (np.full((2, 2), np.nan), _top_half(), 0.5, "finite"),
        (np.ones((2, 2)), np.zeros((4, 4), dtype=bool), 0.5, "marks no pixel"),
        (np.ones((2, 2)), _top_half(), 1.5, r"threshold must lie in \[0, 1\]"),
    ],
)
def test_unusable_inputs_are_refused(
    heat: NDArray[np.float64], mask: NDArray[np.bool_], threshold: float, match: str
) -> None:
    with pytest.raises(DataError, match=match):
        heat_share_inside(heat, mask, threshold=threshold)
