"""DICOM SEG writing: real source images in several transfer syntaxes, read back with pydicom."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage

from clinsight.data.dicom_seg import read_dicom_seg
from clinsight.errors import DataError, UnsupportedImageError
from clinsight.interop.dicom_seg import LOCAL_CODING_SCHEME, build_seg, segment_code

# (file, what it exercises)
SOURCES = [
    ("pydicom_data/SC_rgb.dcm", "RGB secondary capture, explicit VR little endian"),
    ("pydicom_data/US1_J2KR.dcm", "YBR_RCT colour ultrasound, JPEG 2000 lossless"),
    ("pylibjpeg_data/CT1_JLSN.dcm", "CT with frame of reference, JPEG-LS near-lossless"),
    ("pydicom_data/OBXXXX1A_rle.dcm", "palette colour ultrasound, RLE lossless"),
    ("pydicom_data/JPEG-LL.dcm", "NM one-frame multi-frame object, JPEG lossless"),
]


@pytest.fixture(scope="module")
def dicom_dir(data_dir: Path) -> Path:
    return data_dir / "dicom"


def _two_labels(rows: int, columns: int) -> NDArray[np.uint8]:
    mask = np.zeros((rows, columns), dtype=np.uint8)
    mask[3:9, 2:7] = 1
    mask[20:30, 15:40] = 2
    mask[29, 39] = 1
    return mask


def _pydicom_labels(seg: Dataset) -> NDArray[np.uint8]:
    """The label mask from pydicom alone: frame i belongs to its referenced segment number."""
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    labels = np.zeros((seg.Rows, seg.Columns), dtype=np.uint8)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence, strict=True):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        labels[frame.astype(bool)] = number
    return labels


@pytest.mark.parametrize(("name", "what"), SOURCES, ids=[s[0].split("/")[1] for s in SOURCES])
def test_seg_references_its_source_and_round_trips(dicom_dir: Path, name: str, what: str) -> None:
    source = pydicom.dcmread(dicom_dir / name)
    mask = _two_labels(int(source.Rows), int(source.Columns))

    data = build_seg(
        source, mask, ["left lung", "right lung"], algorithm_name="lungs", algorithm_version="3"
    )

    seg = pydicom.dcmread(io.BytesIO(data))
    assert seg.SOPClassUID == SegmentationStorage
    assert seg.Modality == "SEG"
    assert seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert seg.PatientID == source.get("PatientID", "")
    assert seg.PatientName == source.get("PatientName", "")
    series = seg.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["left lung", "right lung"]
    assert [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence] == [
        "44029006",
        "3341006",
    ]
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("lungs", "3")
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123109"
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    np.testing.assert_array_equal(_pydicom_labels(seg), mask)
    read = read_dicom_seg(data, source)
    np.testing.assert_array_equal(read.labels, mask)
    assert read.label_names == ("left lung", "right lung")
    assert read.algorithms == ("lungs 3", "lungs 3")


def test_a_boolean_mask_is_one_segment(dicom_dir: Path) -> None:
    source = pydicom.dcmread(dicom_dir / "pydicom_data/SC_rgb.dcm")
    mask = np.zeros((100, 100), dtype=bool)
    mask[40:60, 10:90] = True
    data = build_seg(source, mask, ["polyp"], algorithm_name="polyps", algorithm_version="1")
    seg = pydicom.dcmread(io.BytesIO(data))
    category = seg.SegmentSequence[0].SegmentedPropertyCategoryCodeSequence[0]
    assert category.CodeValue == "49755003"
    np.testing.assert_array_equal(read_dicom_seg(data, source).labels, mask.astype(np.uint8))


def test_segment_codes_known_and_local() -> None:
    assert segment_code("Left_Lung").property_type.value == "44029006"
    assert segment_code(" heart ").property_type.value == "80891009"
    local = segment_code("Nasogastric tube")
    assert local.property_type.scheme_designator == LOCAL_CODING_SCHEME
    assert local.property_type.value == "nasogastric-tube"
    assert local.property_type.meaning == "Nasogastric tube"


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("pydicom_data/SC_rgb_2frame.dcm", "has 2 frames"),
        ("pydicom_data/693_UNCI.dcm", "no Frame Of Reference UID"),
        ("pydicom_data/liver.dcm", "itself a segmentation"),
        ("pydicom_data/HTJ2K_08_RGB.dcm", "no SeriesInstanceUID, StudyInstanceUID"),
    ],
)
def test_sources_a_seg_cannot_be_drawn_on_are_refused(
    dicom_dir: Path, name: str, match: str
) -> None:
    source = pydicom.dcmread(dicom_dir / name)
    mask = np.ones((int(source.Rows), int(source.Columns)), dtype=np.uint8)
    with pytest.raises(UnsupportedImageError, match=match):
        build_seg(source, mask, ["lung"], algorithm_name="a", algorithm_version="1")


@pytest.mark.parametrize(
    ("mask", "names", "match"),
    [
        (np.ones((100, 99), dtype=np.uint8), ["lung"], r"mask is 100x99 .* image is 100x100"),
        (np.ones((100, 100, 1), dtype=np.uint8), ["lung"], "3 dimension"),
        (np.ones((100, 100), dtype=np.float32), ["lung"], "float32 values"),
        (np.full((100, 100), 2, dtype=np.uint8), ["lung"], r"value\(s\) \[2\]"),
        (np.ones((100, 100), dtype=np.uint8), ["lung", "heart"], "heart mark no pixel"),
        (np.ones((100, 100), dtype=np.uint8), [], "at least one label"),
        (np.ones((100, 100), dtype=np.uint8), ["lung", "lung"], "names repeat"),
        (np.ones((100, 100), dtype=np.uint8), [" "], "blank name"),
    ],
)
def test_masks_and_labels_that_do_not_fit_are_refused(
    dicom_dir: Path, mask: NDArray[np.generic], names: list[str], match: str
) -> None:
    source = pydicom.dcmread(dicom_dir / "pydicom_data/SC_rgb.dcm")
    with pytest.raises(DataError, match=match):
        build_seg(source, mask, names, algorithm_name="a", algorithm_version="1")
