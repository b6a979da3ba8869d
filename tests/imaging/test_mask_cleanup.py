"""Mask clean-up: the largest pieces of each label kept, holes filled, specks dropped."""

from __future__ import annotations

import numpy as np
import pytest

from clinsight.errors import DataError
from clinsight.imaging.mask_cleanup import keep_largest


def _two_lungs() -> np.ndarray:
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[5:35, 3:15] = 1  # left field, 360 pixels
    mask[5:30, 22:36] = 1  # right field, 350 pixels
    return mask


def test_the_two_largest_pieces_are_kept_with_their_holes_filled() -> None:
    truth = _two_lungs()
    noisy = truth.copy()
    noisy[10:14, 6:10] = 0  # a hole inside the left field
    noisy[37:39, 37:39] = 1  # specks outside both
    noisy[0, 0] = 1
    noisy[36:39, 18:21] = 2  # another label's pieces: kept per label
    noisy[0:2, 38:40] = 2
    cleaned = keep_largest(noisy, 2)
    assert np.array_equal(cleaned == 1, truth == 1)
    assert (cleaned == 2).sum() == 9 + 4  # both pieces of label 2 are among its two largest
    assert np.array_equal(keep_largest(noisy, 2, fill_holes=False)[10:14, 6:10], np.zeros((4, 4)))
    only = keep_largest(noisy, 1)  # the hole makes the left field the smaller piece
    assert np.array_equal(only == 1, (truth == 1) & (np.arange(40) >= 20))


def test_an_empty_mask_stays_empty_and_bad_input_is_refused() -> None:
    assert not keep_largest(np.zeros((8, 8), dtype=np.uint8)).any()
    with pytest.raises(DataError, match="2-D"):
        keep_largest(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="at least one"):
        keep_largest(_two_lungs(), 0)
