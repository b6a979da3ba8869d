"""DICOM SEG reading: masks aligned to their source images, and the SEGs that are refused."""

from __future__ import annotations

import io
import shutil
from copy import deepcopy
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from clinsight.data.dicom_seg import load_dicom_seg_folder, read_dicom_seg
from clinsight.errors import DataError, DataNotFoundError, UnsupportedImageError
from clinsight.interop.dicom_seg import build_seg


@pytest.fixture(scope="module")
def dicom_dir(data_dir: Path) -> Path:
    return data_dir / "dicom"


@pytest.fixture(scope="module")
def source(dicom_dir: Path) -> Dataset:
    return pydicom.dcmread(dicom_dir / "pydicom_data/SC_rgb.dcm")


def _mask() -> NDArray[np.uint8]:
    mask = np.zeros((100, 100), dtype=np.uint8)
    mask[10:20, 10:20] = 1
    mask[50:70, 30:35] = 2
    return mask


def _highdicom_seg(source: Dataset, pixels: NDArray[Any], segments: int, kind: str) -> bytes:
    """A SEG written by highdicom directly, for shapes `build_seg` never writes."""
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=f"s{n}",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=codes.SCT.Lung,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n in range(1, segments + 1)
    ]
    view = deepcopy(source)
    del view.PixelSpacing
    seg = hd.seg.Segmentation(
        source_images=[view],
        pixel_array=pixels,
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    out = io.BytesIO()
    seg.save_as(out)
    return out.getvalue()


def test_a_manual_seg_reads_with_its_labels(source: Dataset) -> None:
    data = _highdicom_seg(source, _mask(), 2, "BINARY")
    read = read_dicom_seg(data, source)
    np.testing.assert_array_equal(read.labels, _mask())
    assert read.label_names == ("s1", "s2")
    assert read.segment_numbers == (1, 2)
    assert read.algorithms == ("", "")
    assert read.source_sop_instance_uid == source.SOPInstanceUID


def test_a_seg_of_other_images_is_refused(dicom_dir: Path, source: Dataset) -> None:
    with pytest.raises(DataError, match="drawn on 3 other image"):
        read_dicom_seg(dicom_dir / "pydicom_data/liver.dcm", source)


def test_a_size_mismatch_is_refused(source: Dataset) -> None:
    data = build_seg(source, _mask(), ["a", "b"], algorithm_name="x", algorithm_version="1")
    resized = deepcopy(source)
    resized.Rows = 120
    with pytest.raises(DataError, match=r"SEG is 100x100 .* image is 120x100"):
        read_dicom_seg(data, resized)


def test_an_empty_segment_is_refused(source: Dataset) -> None:
    only_first = (_mask() == 1).astype(np.uint8)
    data = _highdicom_seg(source, only_first, 2, "BINARY")
    with pytest.raises(DataError, match=r"segment.*s2 of this SEG mark no pixel"):
        read_dicom_seg(data, source)


def test_overlapping_segments_are_refused(source: Dataset) -> None:
    stacked = np.zeros((1, 100, 100, 2), dtype=np.uint8)
    stacked[0, 10:30, 10:30, 0] = 1
    stacked[0, 20:40, 20:40, 1] = 1
    data = _highdicom_seg(source, stacked, 2, "BINARY")
    with pytest.raises(DataError, match="overlap"):
        read_dicom_seg(data, source)


def test_fractional_and_non_seg_objects_are_refused(dicom_dir: Path, source: Dataset) -> None:
    fractional = _highdicom_seg(source, _mask().astype(np.float32) / 2, 1, "FRACTIONAL")
    with pytest.raises(UnsupportedImageError, match="fractional; Clinsight reads binary"):
        read_dicom_seg(fractional, source)
    with pytest.raises(UnsupportedImageError, match="not a DICOM Segmentation"):
        read_dicom_seg(dicom_dir / "pydicom_data/SC_rgb.dcm", source)
    with pytest.raises(UnsupportedImageError, match="not a DICOM Segmentation"):
        read_dicom_seg(b"not a dicom file at all" * 10, source)


def _folder_with_pairs(tmp_path: Path, dicom_dir: Path) -> Path:
    folder = tmp_path / "pairs"
    folder.mkdir()
    for name in ("SC_rgb.dcm", "US1_J2KR.dcm"):
        image = shutil.copy(dicom_dir / "pydicom_data" / name, folder / name)
        dataset = pydicom.dcmread(image)
        mask = np.zeros((int(dataset.Rows), int(dataset.Columns)), dtype=np.uint8)
        mask[5:25, 5:50] = 1
        seg = build_seg(dataset, mask, ["lesion"], algorithm_name="x", algorithm_version="1")
        (folder / "segs").mkdir(exist_ok=True)
        (folder / "segs" / f"{name}.seg.dcm").write_bytes(seg)
    (folder / "notes.txt").write_text("not DICOM")
    return folder


def test_a_folder_pairs_segs_with_their_images(tmp_path: Path, dicom_dir: Path) -> None:
    pairs = load_dicom_seg_folder(_folder_with_pairs(tmp_path, dicom_dir))
    assert [(p.image_path.name, p.seg_path.name) for p in pairs] == [
        ("SC_rgb.dcm", "SC_rgb.dcm.seg.dcm"),
        ("US1_J2KR.dcm", "US1_J2KR.dcm.seg.dcm"),
    ]
    assert pairs[1].image.pixels.shape == (480, 640, 3)
    assert pairs[1].mask.labels.shape == (480, 640)
    assert int(pairs[1].mask.labels.sum()) == 20 * 45


def test_a_folder_with_a_missing_mask_or_image_is_refused(tmp_path: Path, dicom_dir: Path) -> None:
    folder = _folder_with_pairs(tmp_path, dicom_dir)
    shutil.copy(dicom_dir / "pylibjpeg_data/CT1_JLSN.dcm", folder)
    with pytest.raises(
        DataNotFoundError, match=r"1 image\(s\) have no SEG \(first: CT1_JLSN.dcm\)"
    ):
        load_dicom_seg_folder(folder)
    (folder / "CT1_JLSN.dcm").unlink()
    (folder / "SC_rgb.dcm").unlink()
    with pytest.raises(DataNotFoundError, match=r"SC_rgb\.dcm\.seg\.dcm is drawn on is not in"):
        load_dicom_seg_folder(folder)
    with pytest.raises(DataNotFoundError, match="holds no DICOM SEG"):
        load_dicom_seg_folder(dicom_dir / "pylibjpeg_data")
