"""DICOM SEG masks read back onto their source images: one label mask per single-frame image.

`read_dicom_seg` turns a binary SEG into an H x W label mask aligned with the source
image it references (0 background, k the k-th segment in segment-number order).
`load_dicom_seg_folder` pairs every SEG of a folder with its source image (matched by
SOP Instance UID, never by file name) for training or evaluating a segmentation model.
Refused with a `DataError` each: a SEG that does not reference the given image, a size
mismatch, a segment that marks no pixel of the image, overlapping segments (a label mask
holds one label per pixel), a fractional SEG, an image without a SEG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage

from clinsight.data.dicom import read_dicom
from clinsight.data.source import DEFAULT_MAX_BYTES, SourceImage, read_source_bytes
from clinsight.errors import DataError, DataNotFoundError, UnsupportedImageError

__all__ = ["DicomSegPair", "SegMask", "load_dicom_seg_folder", "read_dicom_seg"]


@dataclass(frozen=True)
class SegMask:
    """A SEG as a label mask on one source image."""

    labels: NDArray[np.uint8]
    """H x W: 0 background, k the pixel of `label_names[k - 1]`."""
    label_names: tuple[str, ...]
    segment_numbers: tuple[int, ...]
    """The SEG's segment number of each label (the same order)."""
    source_sop_instance_uid: str
    seg_sop_instance_uid: str
    algorithms: tuple[str, ...]
    """'name version' of each automatic segment's algorithm, '' for a manual one."""


@dataclass(frozen=True)
class DicomSegPair:
    """A source image, decoded for a model, with its SEG's label mask."""

    image: SourceImage
    mask: SegMask
    image_path: Path
    seg_path: Path


def read_dicom_seg(
    seg: Path | bytes | Dataset, source: Dataset, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> SegMask:
    """The label mask `seg` draws on `source` (a single-frame image).

    Raises:
        UnsupportedImageError: `seg` is not a DICOM Segmentation, cannot be parsed, or
            is fractional; `source` has several frames.
        DataError: the SEG does not reference `source`, its size differs from the
            image's, a segment marks no pixel of the image, or two segments overlap.
    """
    segmentation = _parse(seg, max_bytes=max_bytes)
    uid = str(source.get("SOPInstanceUID", ""))
    referenced = {str(sop) for _, _, sop in segmentation.get_source_image_uids()}
    if not uid or uid not in referenced:
        raise DataError(
            f"this SEG is drawn on {len(referenced)} other image(s), not on the given one "
            "(its SOP Instance UID is not among the SEG's references); pair the SEG with "
            "the image it was made on"
        )
    frames = int(source.get("NumberOfFrames") or 1)
    if frames > 1:
        raise UnsupportedImageError(
            f"the source image has {frames} frames; Clinsight reads SEGs of single-frame images"
        )
    size = (int(segmentation.Rows), int(segmentation.Columns))
    image_size = (int(source.Rows), int(source.Columns))
    if size != image_size:
        raise DataError(
            f"the SEG is {size[0]}x{size[1]} (rows x columns) but its image is "
            f"{image_size[0]}x{image_size[1]}; the SEG does not fit the image"
        )
    numbers, names, algorithms = _segments(segmentation)
    try:
        pixels = segmentation.get_pixels_by_source_instance(
            source_sop_instance_uids=[uid],
            segment_numbers=list(numbers),
            combine_segments=True,
            relabel=True,
        )
    except (ValueError, RuntimeError) as exc:  # highdicom refuses to combine overlapping segments
        raise DataError(
            "two segments of this SEG overlap; a label mask holds one label per pixel, so "
            "read it as separate binary masks or export it without overlaps"
        ) from exc
    labels = np.asarray(pixels[0], dtype=np.uint8)
    counts = np.bincount(labels.ravel(), minlength=len(numbers) + 1)
    empty = [name for name, count in zip(names, counts[1:], strict=True) if count == 0]
    if empty:
        raise DataError(
            f"segment(s) {', '.join(empty)} of this SEG mark no pixel of the image; an empty "
            "segment cannot be used as a mask"
        )
    return SegMask(
        labels=labels,
        label_names=names,
        segment_numbers=numbers,
        source_sop_instance_uid=uid,
        seg_sop_instance_uid=str(segmentation.SOPInstanceUID),
        algorithms=algorithms,
    )


def load_dicom_seg_folder(
    folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[DicomSegPair]:
    """Every SEG of `folder` (all files, recursively) with its decoded source image, sorted
    by the image's file name.

    Raises:
        DataNotFoundError: the folder does not exist, holds no SEG, a SEG's image is not
            in it, or an image has no SEG (a missing mask).
        DataError, UnsupportedImageError: as `read_dicom_seg` and `read_dicom`.
    """
    if not folder.is_dir():
        raise DataNotFoundError(f"the folder {folder.name} does not exist")
    segs: dict[Path, Dataset] = {}
    images: dict[str, tuple[Path, Dataset]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        dataset = _header(path)
        if dataset is None:
            continue
        if str(dataset.get("SOPClassUID", "")) == SegmentationStorage:
            segs[path] = dataset
        elif "Rows" in dataset:
            images[str(dataset.get("SOPInstanceUID", ""))] = (path, dataset)
    if not segs:
        raise DataNotFoundError(f"the folder {folder.name} holds no DICOM SEG")
    pairs: list[DicomSegPair] = []
    masked: set[str] = set()
    for seg_path in segs:
        segmentation = _parse(seg_path, max_bytes=max_bytes)
        uids = [str(sop) for _, _, sop in segmentation.get_source_image_uids()]
        present = [uid for uid in uids if uid in images]
        if not present:
            raise DataNotFoundError(
                f"the image that {seg_path.name} is drawn on is not in the folder; add it"
            )
        for uid in present:
            image_path, _ = images[uid]
            source = pydicom.dcmread(image_path, force=True)
            mask = read_dicom_seg(segmentation, source, max_bytes=max_bytes)
            image = read_dicom(image_path, max_bytes=max_bytes)
            pairs.append(DicomSegPair(image, mask, image_path, seg_path))
            masked.add(uid)
    unmasked = sorted(path.name for uid, (path, _) in images.items() if uid not in masked)
    if unmasked:
        raise DataNotFoundError(
            f"{len(unmasked)} image(s) have no SEG (first: {unmasked[0]}); add their masks or "
            "move them out of the folder"
        )
    return sorted(pairs, key=lambda pair: pair.image_path.name)


def _header(path: Path) -> Dataset | None:
    """The header of a DICOM file, None for a file that is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
        return None


def _parse(seg: Path | bytes | Dataset, *, max_bytes: int) -> hd.seg.Segmentation:
    if isinstance(seg, hd.seg.Segmentation):
        return seg
    if isinstance(seg, Dataset):
        dataset = seg
    else:
        data = read_source_bytes(seg, max_bytes=max_bytes)
        try:
            dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as exc:  # untrusted bytes: any parser failure means a malformed file
            raise UnsupportedImageError(
                "the SEG file cannot be parsed: it is malformed or truncated"
            ) from exc
    if str(dataset.get("SOPClassUID", "")) != SegmentationStorage:
        raise UnsupportedImageError("the file is not a DICOM Segmentation (SEG) object")
    if str(dataset.get("SegmentationType", "")).upper() != "BINARY":
        raise UnsupportedImageError(
            f"the SEG is {str(dataset.get('SegmentationType', 'untyped')).lower()}; Clinsight "
            "reads binary SEGs (export it as binary)"
        )
    try:
        return hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise UnsupportedImageError(
            "the SEG lacks attributes a Segmentation object must have; re-export it"
        ) from exc


def _segments(
    segmentation: hd.seg.Segmentation,
) -> tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
    """Segment numbers in increasing order, with their labels and algorithms."""
    items = sorted(segmentation.SegmentSequence, key=lambda item: int(item.SegmentNumber))
    numbers = tuple(int(item.SegmentNumber) for item in items)
    names = tuple(
        str(item.get("SegmentLabel", f"segment {n}"))
        for n, item in zip(numbers, items, strict=True)
    )
    algorithms = []
    for item in items:
        identification = item.get("SegmentationAlgorithmIdentificationSequence")
        if identification:
            first = identification[0]
            algorithms.append(
                f"{first.get('AlgorithmName', '')} {first.get('AlgorithmVersion', '')}".strip()
            )
        else:
            algorithms.append("")
    return numbers, names, tuple(algorithms)
