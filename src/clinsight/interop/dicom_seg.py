"""DICOM Segmentation objects (binary SEG, highdicom) from a label mask drawn on one image.

`build_seg` turns an H x W mask of integer labels (0 background, k the k-th label name)
into one binary segment per label, identified as produced by an AI algorithm, referencing
the source image's SOP instance, series and study and carrying its patient module. A
viewer or PACS shows the SEG over its source; `data.dicom_seg.read_dicom_seg` reads it
back into the same mask.

Source images without pixel spacing in their own right (no Slice Thickness beside Pixel
Spacing, as in most secondary captures and projection radiographs) get a SEG without
Pixel Measures: highdicom cannot write half of that sequence, and a reader takes the
spacing from the source image. Multi-frame sources are refused: an H x W mask belongs
to one frame, and which one would be a guess.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage

from clinsight import __version__
from clinsight.errors import DataError, UnsupportedImageError

__all__ = ["LOCAL_CODING_SCHEME", "SegmentCode", "build_seg", "segment_code"]

LOCAL_CODING_SCHEME = "99CLINSIGHT"
"""Private coding scheme (DICOM PS3.16 reserves "99" prefixes) for a label with no known code."""

_ANATOMY = Code("91723000", "SCT", "Anatomical Structure")
_ABNORMAL = Code("49755003", "SCT", "Morphologically Abnormal Structure")
_LOCAL_CATEGORY = Code("segmented-region", LOCAL_CODING_SCHEME, "Segmented region")


@dataclass(frozen=True)
class SegmentCode:
    """What a segment is, coded: its category (CID 7150) and property type (CID 7151)."""

    category: Code
    property_type: Code


_KNOWN_CODES: dict[str, SegmentCode] = {
    "lung": SegmentCode(_ANATOMY, Code("39607008", "SCT", "Lung")),
    "lungs": SegmentCode(_ANATOMY, Code("39607008", "SCT", "Lung")),
    "left lung": SegmentCode(_ANATOMY, Code("44029006", "SCT", "Left lung")),
    "right lung": SegmentCode(_ANATOMY, Code("3341006", "SCT", "Right lung")),
    "heart": SegmentCode(_ANATOMY, Code("80891009", "SCT", "Heart")),
    "polyp": SegmentCode(_ABNORMAL, Code("68496003", "SCT", "Polyp of colon")),
}
# Type 2 attributes of the patient and study modules: present, possibly empty. Test and
# anonymised images often drop them; the SEG copies them, so they are added empty.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
_MAX_LABEL = 64  # Segment Label is an LO: 64 characters


def segment_code(label_name: str) -> SegmentCode:
    """The SNOMED CT codes of a known label ("left lung", "polyp"; case, '_' and '-' ignored),
    else a code of `LOCAL_CODING_SCHEME` whose meaning is the label itself."""
    key = re.sub(r"[\s_-]+", " ", label_name.strip().lower())
    known = _KNOWN_CODES.get(key)
    if known is not None:
        return known
    return SegmentCode(
        _LOCAL_CATEGORY, Code(key.replace(" ", "-"), LOCAL_CODING_SCHEME, label_name)
    )


def build_seg(
    source: Dataset,
    mask: NDArray[Any],
    label_names: Sequence[str],
    *,
    algorithm_name: str,
    algorithm_version: str,
    codes: Mapping[str, SegmentCode] | None = None,
    series_number: int = 900,
    series_description: str = "Clinsight segmentation",
    manufacturer: str = "Clinsight",
    device_serial_number: str = "unspecified",
) -> bytes:
    """A binary DICOM SEG of `mask` on `source`, one segment per label name, as file bytes.

    `mask[r, c] == k` puts pixel (r, c) in segment k (the k-th name); 0 is background.
    `codes` overrides `segment_code` for some label names.

    Raises:
        UnsupportedImageError: `source` is not one single-frame image with its study,
            series and instance UIDs (a SEG, a multi-frame object, a CT without frame of
            reference...).
        DataError: the mask is not H x W integers of the source's size, holds a value
            with no label, or a label marks no pixel (a SEG segment must mark one); the
            label names are empty, blank, repeated or longer than 64 characters.
    """
    _check_source(source)
    labels = _check_labels(label_names)
    label_mask = _check_mask(mask, source, labels)
    chosen = dict(codes or {})
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=algorithm_version,
        family=Code("123109", "DCM", "Artificial Intelligence"),
    )
    descriptions = []
    for number, name in enumerate(labels, start=1):
        code = chosen.get(name) or segment_code(name)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name,
                segmented_property_category=code.category,
                segmented_property_type=code.property_type,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
        )
    try:
        seg = hd.seg.Segmentation(
            source_images=[_highdicom_view(source)],
            pixel_array=label_mask,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=manufacturer,
            manufacturer_model_name=algorithm_name[:64],
            software_versions=f"clinsight {__version__}",
            device_serial_number=device_serial_number,
            content_label="SEGMENTATION",
            content_description=series_description[:64],
        )
    except (ValueError, AttributeError, TypeError) as exc:  # highdicom's checks of the source
        raise UnsupportedImageError(
            f"no DICOM SEG can be made for this image: {str(exc)[:200].rstrip('.')}; "
            "re-export the image from the PACS or modality with its full header"
        ) from exc
    seg.SeriesDescription = series_description[:64]
    out = io.BytesIO()
    seg.save_as(out)
    return out.getvalue()


def _check_source(source: Dataset) -> None:
    if str(source.get("SOPClassUID", "")) == SegmentationStorage:
        raise UnsupportedImageError(
            "the source is itself a segmentation; a SEG is drawn on the image it segments"
        )
    missing = [keyword for keyword in _REQUIRED_UIDS if not source.get(keyword)]
    if missing:
        raise UnsupportedImageError(
            f"the source image has no {', '.join(missing)}, so a SEG cannot reference it; "
            "re-export it from the PACS or modality with its full header"
        )
    if not source.get("Rows") or not source.get("Columns") or "PixelData" not in source:
        raise UnsupportedImageError("the source DICOM object holds no image (no pixel data)")
    frames = int(source.get("NumberOfFrames") or 1)
    if frames > 1:
        raise UnsupportedImageError(
            f"the source image has {frames} frames; a 2D mask belongs to one frame, so "
            "Clinsight writes a SEG only on single-frame images"
        )


def _check_labels(label_names: Sequence[str]) -> tuple[str, ...]:
    labels = tuple(label_names)
    if not labels:
        raise DataError("a SEG needs at least one label name")
    blank = [index for index, name in enumerate(labels, start=1) if not name.strip()]
    if blank:
        raise DataError(f"label number(s) {blank} have a blank name; name every label")
    if len(set(labels)) != len(labels):
        raise DataError(f"label names repeat ({', '.join(labels)}); each label needs its own")
    long = [name for name in labels if len(name) > _MAX_LABEL]
    if long:
        raise DataError(f"label name(s) longer than {_MAX_LABEL} characters: {long[0][:70]}...")
    return labels


def _check_mask(mask: NDArray[Any], source: Dataset, labels: tuple[str, ...]) -> NDArray[np.uint8]:
    array = np.asarray(mask)
    rows, columns = int(source.Rows), int(source.Columns)
    if array.ndim != 2:
        raise DataError(f"the mask has {array.ndim} dimension(s); a SEG mask is H x W labels")
    if array.shape != (rows, columns):
        raise DataError(
            f"the mask is {array.shape[0]}x{array.shape[1]} (rows x columns) but the image is "
            f"{rows}x{columns}; resize the mask to the image before writing the SEG"
        )
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise DataError(f"the mask holds {array.dtype} values; a label mask holds integers")
    values = np.unique(array)
    stray = [int(v) for v in values if v < 0 or v > len(labels)]
    if stray:
        raise DataError(
            f"the mask holds value(s) {stray[:5]} but only {len(labels)} label name(s) are "
            f"given (values 1 to {len(labels)}; 0 is background)"
        )
    empty = [name for number, name in enumerate(labels, start=1) if number not in values]
    if empty:
        raise DataError(
            f"label(s) {', '.join(empty)} mark no pixel; a SEG segment must mark at least one "
            "(leave out the labels that were not found)"
        )
    return array.astype(np.uint8)


def _highdicom_view(source: Dataset) -> Dataset:
    """A copy of `source` highdicom accepts: Type 2 attributes present, and no half pixel
    measures (Pixel Spacing without Slice Thickness) in a single-frame image."""
    view = deepcopy(source)
    for keyword in _TYPE2_COPIED:
        if keyword not in view:
            setattr(view, keyword, "")
    if "PixelSpacing" in view and "SliceThickness" not in view:
        del view.PixelSpacing
    return view
